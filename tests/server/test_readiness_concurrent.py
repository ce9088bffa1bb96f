"""Two readiness checks at once both hear the database's answer.

A second ``/readyz`` arriving while the first one's database check was still under way (a millisecond on an idle
server, longer while uploads fill the thread pool) was answered ``503 the last database check has not ended yet``
at once: two load balancers (one per zone, each checking on its own) or a balancer and a monitor polling together
saw a healthy server flap to "not ready".  Now it waits for that same check, within its own timeout; a check
already older than the timeout (a hung connection) still gets 503 at once (test_readiness.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey
from bluezone.server.storage import open_storage


def test_a_check_while_another_is_under_way_waits_for_its_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = open_storage(tmp_path / "s.db")
    pinged = threading.Event()
    ping = storage.ping

    def announced_ping(**kw: object) -> None:
        pinged.set()
        ping(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "ping", announced_ping)
    answers: dict[str, tuple[int, dict]] = {}
    try:
        with TestClient(create_app(storage, code_key=CodeKey(bytes(32)), ready_timeout=60)) as http:

            def ask(name: str) -> None:
                r = http.get("/readyz")
                answers[name] = (r.status_code, r.json())

            first, second = (threading.Thread(target=ask, args=(name,)) for name in ("first", "second"))
            with storage._lock:  # the first check's query waits a moment for the connection (an upload holds it)
                first.start()
                assert pinged.wait(30)
                second.start()  # arrives while the first check is under way
                second.join(0.5)
                assert "second" not in answers, answers  # not told "not ready" while the database is answering
            first.join(30)
            second.join(30)
            assert answers == {"first": (200, {"status": "ready"}), "second": (200, {"status": "ready"})}
    finally:
        storage.close()
