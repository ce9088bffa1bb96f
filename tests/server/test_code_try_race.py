"""The per-client limit on failed verification codes holds for tries made at the same time.

The limit was counted before a try and the failure recorded after it, so requests in flight
together all passed the count: 50 at once from one client made 40 tries against a limit of 10.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from server_helpers import KEY, NOW

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import PublishError
from bluezone.server.codes import issue_code
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.storage import Storage, open_storage

LIMIT = 3
TRIES = 12


def _body(code: str) -> bytes:
    day = rolling_start(NOW) - ROLLING_PERIOD
    return (
        '{"temporaryExposureKeys": [{"key": "AAAAAAAAAAAAAAAAAAAAAA==", "rollingStartNumber": %d}],'
        ' "verificationPayload": "%s"}' % (day, code)
    ).encode()


def _status(storage: Any, code: str) -> int:
    try:
        publish(storage, _body(code), "192.0.2.7", NOW, PublishConfig(max_failures_per_client=LIMIT), code_key=KEY)
    except PublishError as exc:
        return exc.status
    return 200


def _all_at_once(two_servers: list[Storage], method: str, one: Callable[[int], Any], monkeypatch: Any) -> Counter[Any]:
    """Run ``one(i)`` for TRIES threads, each held at ``storage.<method>`` (both connections) until all
    the others have either reached it too or been answered: the most that can be in flight together.
    Returns how often each outcome came back."""
    gate = threading.Event()
    waiting = Counter[str]()
    lock = threading.Lock()

    def held(call: Any) -> Any:
        def held_call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                waiting["at_gate"] += 1
            gate.wait(30)
            return call(*args, **kwargs)

        return held_call

    def counted(i: int) -> Any:
        try:
            return one(i)
        finally:
            with lock:
                waiting["answered"] += 1

    for storage in two_servers:
        monkeypatch.setattr(storage, method, held(getattr(storage, method)))
    with ThreadPoolExecutor(TRIES) as pool:
        futures = [pool.submit(counted, i) for i in range(TRIES)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if waiting["at_gate"] + waiting["answered"] >= TRIES:  # none still on its way
                    break
            time.sleep(0.005)
        gate.set()
        return Counter(f.result() for f in futures)


@pytest.fixture(params=["sqlite", "postgres"])
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Storage]]:
    """Two connections to one database, as two server processes have."""
    db = str(tmp_path / "server.db") if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    opened = [open_storage(db), open_storage(db)]
    yield opened
    for s in opened:
        s.close()


def test_concurrent_wrong_codes_get_no_more_tries_than_the_limit(two_servers: list[Storage], monkeypatch: Any) -> None:
    """Every try is held at the code's redemption until all the others have either reached it too or
    been answered: the most tries that can be in flight together (half through each connection)."""
    statuses = _all_at_once(two_servers, "publish", lambda i: _status(two_servers[i % 2], f"{i:016d}"), monkeypatch)
    assert statuses == {403: LIMIT, 429: TRIES - LIMIT}
    assert two_servers[0].count_failures(0, "192.0.2.7") == LIMIT


def test_a_good_code_and_a_bad_request_are_not_failures(storage: Any) -> None:
    assert _status(storage, "0" * 16) == 403
    code = issue_code(storage, NOW, key=KEY).code
    assert _status(storage, code) == 200
    # a request refused before its code is redeemed (a key in the future) leaves nothing either
    future = _body(issue_code(storage, NOW, key=KEY).code).replace(
        str(rolling_start(NOW) - ROLLING_PERIOD).encode(), str(rolling_start(NOW) + 2 * ROLLING_PERIOD).encode()
    )
    with pytest.raises(PublishError) as refused:
        publish(storage, future, "192.0.2.7", NOW, PublishConfig(max_failures_per_client=LIMIT), code_key=KEY)
    assert refused.value.code == "key_timing_invalid"
    assert storage.count_failures(0, "192.0.2.7") == 1
    assert [_status(storage, "1" * 16) for _ in range(3)] == [403, 403, 429]


def test_a_try_another_server_process_is_recording_counts(two_servers: list[Storage], monkeypatch: Any) -> None:
    """One process has recorded its try and not yet committed: another's try waits for it and counts it
    (PostgreSQL: an advisory lock per client; SQLite: BEGIN IMMEDIATE), so the limit is not passed by one."""
    first, second = two_servers
    client = "192.0.2.7"
    for _ in range(LIMIT - 1):
        assert first.claim_code_try(client, NOW, 0, LIMIT) is not None
    recorded, release = threading.Event(), threading.Event()
    execute = first._exec

    def paused(cur: Any, sql: str, params: Any = ()) -> Any:
        out = execute(cur, sql, params)
        if sql.startswith(("INSERT INTO code_tries", "UPDATE code_tries SET failures = failures + 1")):
            recorded.set()
            release.wait(30)
        return out

    monkeypatch.setattr(first, "_exec", paused)
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(first.claim_code_try, client, NOW, 0, LIMIT)
        assert recorded.wait(30)
        other = pool.submit(second.claim_code_try, client, NOW, 0, LIMIT)
        time.sleep(0.3)  # long enough for the other try to pass a count that does not wait
        release.set()
        assert held.result() is not None
        assert other.result() is None
    assert first.count_failures(0, client) == LIMIT


def test_concurrent_recursive_uploads_get_no_more_than_the_hourly_limit(
    two_servers: list[Storage], monkeypatch: Any
) -> None:
    """The hour's recursive (close contact) uploads were counted before the code was redeemed, so
    uploads at the same moment all passed the limit (100 an hour: each of a server's 40 threads one
    more).  They are counted as each code is redeemed now: uploads held together at the redemption
    give exactly the limit, and the codes of the others are not burned."""
    import datetime as dt

    exposed = dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=3)
    codes = [issue_code(two_servers[0], NOW, key=KEY, test_type="recursive", exposure_date=exposed).code for _ in range(TRIES)]
    config = PublishConfig(max_recursive_per_hour=LIMIT)

    def one(i: int) -> int:
        body = _body(codes[i]).replace(b"AAAAAAAAAAAAAAAAAAAAAA==", base64.b64encode(bytes([i + 1]) * 16))  # own keys
        try:
            publish(two_servers[i % 2], body, f"192.0.2.{i}", NOW, config, code_key=KEY)
            return 200
        except PublishError as exc:
            return exc.status

    statuses = _all_at_once(two_servers, "publish", one, monkeypatch)
    assert statuses == {200: LIMIT, 429: TRIES - LIMIT}
    assert two_servers[0].count_codes(4, used_since=0) == LIMIT  # the refused codes stay unused


def test_concurrent_recursive_codes_get_no_more_than_the_daily_limit(
    two_servers: list[Storage], monkeypatch: Any
) -> None:
    """The day's recursive codes were counted before the new one was stored, so operators issuing at
    the same moment (two `issue-code --type recursive`, two server processes) each passed the limit.
    They are counted as each code is stored now: issues held together at the store give exactly the
    limit, and the others store nothing."""
    import datetime as dt

    from bluezone.errors import CodeLimitError

    exposed = dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=3)
    def one(i: int) -> str:
        try:
            issue_code(
                two_servers[i % 2], NOW, key=KEY, test_type="recursive", exposure_date=exposed, max_recursive_per_day=LIMIT
            )
            return "issued"
        except CodeLimitError:
            return "refused"

    outcomes = _all_at_once(two_servers, "add_code", one, monkeypatch)
    assert outcomes == {"issued": LIMIT, "refused": TRIES - LIMIT}
    assert two_servers[0].count_codes(4, issued_since=0) == LIMIT
