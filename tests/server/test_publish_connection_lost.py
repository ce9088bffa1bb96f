"""PostgreSQL lost in the middle of an upload's transaction is ``503 {"code": "database_unavailable"}`` too.

c1e0bb2 made PostgreSQL away *before* a request a 503 and one WARNING line; a connection lost *inside* the
transaction (a restart, a failover, an administrator's ``pg_terminate_backend``) still raised psycopg's
OperationalError past it: starlette's plain-text 500 and a traceback.  Here the storage's own backend is ended
between the code's ``UPDATE`` and the first key's ``INSERT``: nothing of the upload is stored, the code is
not used up, and the same upload goes through on the next request (on a new connection).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import psycopg
import pytest
from server_helpers import JSON_HEADERS
from starlette.testclient import TestClient

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey, issue_code
from bluezone.server.storage import open_storage

KEY = CodeKey(bytes(32))


def _body(code: str, now: float) -> str:
    key = {"key": base64.b64encode(b"\x29" * 16).decode(), "rollingStartNumber": rolling_start(now) - ROLLING_PERIOD}
    return json.dumps({"temporaryExposureKeys": [key], "verificationPayload": code})


def test_a_connection_lost_mid_upload_is_503_with_nothing_stored_and_the_code_unused(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    storage = open_storage(postgres_dsn)
    now = time.time()
    code = issue_code(storage, now, key=KEY, test_type="confirmed").code
    ended: list[int] = []
    run = storage._exec

    def exec_ending_the_backend_before_the_first_key(cur: Any, sql: str, params: Any = ()) -> Any:
        if sql.startswith("INSERT INTO exposure_keys") and not ended:
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:  # waits until it is gone (5 s at most)
                pid = cur.connection.info.backend_pid
                assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)
            ended.append(pid)
        return run(cur, sql, params)

    monkeypatch.setattr(storage, "_exec", exec_ending_the_backend_before_the_first_key)
    try:
        http = TestClient(create_app(storage, code_key=KEY), raise_server_exceptions=False)
        r = http.post("/v1/publish", content=_body(code, now), headers=JSON_HEADERS)
        assert ended and r.status_code == 503, r.text
        assert r.json()["code"] == "database_unavailable" and "try again" in r.json()["error"]
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "PostgreSQL" in warnings[0], warnings
        assert storage.count_keys() == 0  # on a new connection: nothing of the upload was committed
        r = http.post("/v1/publish", content=_body(code, now), headers=JSON_HEADERS)
        assert r.status_code == 200 and r.json()["insertedExposures"] == 1, r.text  # the code was not used up
        assert storage.count_keys() == 1
    finally:
        storage.close()
