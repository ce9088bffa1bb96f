"""/healthz is liveness (the process answers; no database), /readyz readiness (the database answers
within a short timeout).  /healthz said ``ok`` while PostgreSQL was down, so a load balancer kept
sending uploads to a server that answered each with 500."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey
from bluezone.server.storage import open_storage

KEY = CodeKey(bytes(32))


def _get(http: TestClient, path: str) -> tuple[int, dict]:
    r = http.get(path)
    return r.status_code, r.json()


def _ready_soon(http: TestClient, within: float = 60) -> tuple[int, dict]:
    """The first answer that is not a 503, asking again meanwhile.  A check that answers 200 must finish within the
    app's short timeout, and on a loaded machine a thread can wait longer than that for a core (an honest 503,
    which a load balancer's next check corrects); ``within`` only bounds a test that would never see ready."""
    deadline = time.monotonic() + within
    while (answer := _get(http, "/readyz"))[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.01)
    return answer


def test_ready_while_the_database_answers_and_not_while_it_is_stuck(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "s.db")
    try:
        with TestClient(create_app(storage, code_key=KEY, ready_timeout=0.2)) as http:  # one event loop, as uvicorn
            assert _ready_soon(http) == (200, {"status": "ready"})
            with storage._lock:  # the database stuck (a hung connection, a lock held): every request would wait
                # (the bound under test: load can only make the stuck check later, never make it answer)
                stuck = (503, {"code": "not_ready", "error": "the database did not answer within 0.2 s"})
                assert _get(http, "/readyz") == stuck
                # the stuck check still holds its thread: the next one does not start another behind it
                busy = (503, {"code": "not_ready", "error": "the last database check has not ended yet"})
                assert _get(http, "/readyz") == busy
                assert _get(http, "/healthz") == (200, {"status": "ok"})  # liveness: the process itself is fine
            assert _ready_soon(http) == (200, {"status": "ready"})  # once the stuck check has ended
    finally:
        storage.close()


def _counting_connections(storage: object, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every database connection ``storage`` opens from now on, as it opens it (SQLite or PostgreSQL)."""
    opened: list[object] = []
    if hasattr(storage, "_dsn"):  # PostgreSQL: every connection of the storage goes through its _connect
        connect = storage._connect  # type: ignore[attr-defined]
        monkeypatch.setattr(storage, "_connect", lambda *a, **k: opened.append(connect(*a, **k)) or opened[-1])
    else:
        connect = sqlite3.connect
        monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: opened.append(connect(*a, **k)) or opened[-1])
    return opened


def _is_closed(conn: object) -> bool:
    if isinstance(conn, sqlite3.Connection):
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError:
            return True
        return False
    return bool(conn.closed)  # type: ignore[attr-defined]


class _HeldByTheExport:
    """The storage's connection lock while the export holds the connection: anyone else asking for it is told at
    once, where the real lock would have them wait until the export ends."""

    def __enter__(self) -> None:
        raise AssertionError("asked for the connection the export holds: a readiness check would wait behind it")

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_ready_while_its_own_export_holds_the_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`server run`'s scheduled export runs in the server's process and holds its database connection for
    seconds on a large day: /readyz, waiting behind it, said 503 (1M keys on SQLite at load 14: 18 of 113
    answers in one export; benchmarks/readyz_during_export.py), and a load balancer took a healthy server
    out for being busy with its own export.  While that export runs, readiness asks the database on a
    connection of its own; otherwise a held connection still means not ready (the test above).
    That connection is one an export: each check opened and closed one (~11 ms a check on PostgreSQL at
    load 14 against 0.07 ms on a kept connection; 0.15 against 0.006 ms on SQLite), a backend forked for
    every load balancer check through an export of minutes.  The first check after the export closes it."""
    from bluezone.server.signing import keygen

    db = tmp_path / "s.db" if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    storage = open_storage(db)
    holding, release = threading.Event(), threading.Event()
    read_queue = storage.pending_keys
    connection_lock = storage._lock

    def slow_read(*args: object, **kwargs: object) -> object:  # a large queue read: the connection held meanwhile
        with connection_lock:
            storage._lock = _HeldByTheExport()  # type: ignore[assignment]
            holding.set()
            release.wait(60)
            storage._lock = connection_lock
        return read_queue(*args, **kwargs)

    storage.pending_keys = slow_read  # type: ignore[method-assign]
    # A check that waited behind the export fails at once (the held connection refuses it, above), not by a timeout,
    # so no timeout here has to be shorter than the slowest answer of a loaded machine: a 0.2 s one failed twice at
    # load 15-17 (a thread's turn for a core, a PostgreSQL backend forked), and the bound itself is the first test's.
    app = create_app(storage, code_key=KEY, export_dir=tmp_path / "e", signer=keygen(tmp_path / "k"), export_every=3600,
                     ready_timeout=60)
    try:
        with TestClient(app) as http:  # the schedule's first export starts now, in a thread
            assert holding.wait(60)
            opened = _counting_connections(storage, monkeypatch)
            try:
                assert [_get(http, "/readyz") for _ in range(3)] == [(200, {"status": "ready"})] * 3
                assert len(opened) == 1
            finally:
                release.set()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the export has ended: the first check after it closes the
                assert _get(http, "/readyz") == (200, {"status": "ready"})  # connection (a held connection without
                # an export under way is a stuck one, 503, as before: the first test)
                if _is_closed(opened[0]):
                    break
                time.sleep(0.05)
            assert len(opened) == 1 and _is_closed(opened[0])
    finally:
        release.set()
        storage.close()


def test_a_kept_check_connection_that_postgresql_dropped_is_opened_again(postgres_dsn: str) -> None:
    """The connection kept for checks during an export goes with an outage: the check fails (not ready),
    and once PostgreSQL takes connections again the next check opens a new one (ready)."""
    storage = open_storage(postgres_dsn)
    with psycopg.connect(postgres_dsn) as conn:
        dbname = conn.info.dbname
    admin_dsn = postgres_dsn.replace(f"@/{dbname}?", "@/postgres?")
    try:
        storage.ping(own_connection=True)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [dbname])
            try:
                for _ in range(2):  # the dropped connection, then a refused new one
                    with pytest.raises(Exception):  # noqa: B017 - whatever psycopg or the storage raises
                        storage.ping(own_connection=True)
            finally:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        storage.ping(own_connection=True)
    finally:
        storage.close()


def test_not_ready_while_postgresql_refuses_connections_and_ready_once_it_is_back(postgres_dsn: str) -> None:
    """PostgreSQL going away (here: the database refusing new connections after dropping the server's),
    then coming back: /readyz says 503 and then 200 by itself, /healthz 200 throughout."""
    storage = open_storage(postgres_dsn)
    with psycopg.connect(postgres_dsn) as conn:
        dbname = conn.info.dbname
    admin_dsn = postgres_dsn.replace(f"@/{dbname}?", "@/postgres?")
    try:
        http = TestClient(create_app(storage, code_key=KEY, ready_timeout=5))
        assert _get(http, "/readyz")[0] == 200
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [dbname])
            try:
                assert _get(http, "/readyz") == (503, {"code": "not_ready", "error": "the database failed"})
                assert _get(http, "/healthz")[0] == 200
            finally:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        assert _get(http, "/readyz") == (200, {"status": "ready"})
    finally:
        storage.close()


def test_readyz_is_in_the_openapi_spec(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "s.db")
    try:
        spec = TestClient(create_app(storage, code_key=KEY)).get("/openapi.json").json()
        assert {"/healthz", "/readyz"} <= set(spec["paths"])
    finally:
        storage.close()

