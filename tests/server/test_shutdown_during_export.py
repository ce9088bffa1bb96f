"""The key server stops (SIGTERM: a restart, a deploy) while its scheduled export runs: the export
finishes before the app's shutdown returns, as the caller then closes the database under it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from server_helpers import NOW
from starlette.testclient import TestClient

from bluezone.clock import VirtualClock
from bluezone.server import exportclock
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey
from bluezone.server.signing import keygen
from bluezone.server.storage import SQLiteStorage


def test_shutdown_waits_for_the_export_under_way(tmp_path: Path, monkeypatch) -> None:
    """Cancelling the export's task left its thread working on the storage: `server run` then closed
    the database under it (SQLite: a crash of the process in a full test run; PostgreSQL: an export
    failing half way through its transaction)."""
    storage = SQLiteStorage(tmp_path / "server.db")
    signer = keygen(tmp_path / "signing")
    started, finished = threading.Event(), threading.Event()
    real = exportclock.export_batches  # what the schedule calls, unless its clock jumped

    def slow_export(*args, **kwargs):
        started.set()
        time.sleep(0.5)  # still signing when the server is told to stop
        try:
            return real(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(exportclock, "export_batches", slow_export)
    app = create_app(
        storage, code_key=CodeKey.load(tmp_path / "signing"), export_dir=tmp_path / "out", signer=signer,
        clock=VirtualClock(NOW), export_every=3600,
    )
    with TestClient(app):  # runs the lifespan: the first export starts at once
        assert started.wait(30)
    assert finished.is_set()  # the shutdown returned only once the export was done with the storage
    storage.close()


def test_closing_the_sqlite_storage_waits_for_a_transaction_under_way(tmp_path: Path) -> None:
    """Whatever thread still works on it (a request the shutdown gave up on), closing the connection
    under a transaction crashed the process; now close waits for the transaction to end."""
    storage = SQLiteStorage(tmp_path / "server.db")
    inside, release = threading.Event(), threading.Event()

    def writing() -> None:
        with storage._transaction() as cur:
            inside.set()
            release.wait(10)
            storage._exec(cur, "INSERT INTO meta (name, value) VALUES ('written', '1')")

    writer = threading.Thread(target=writing)
    writer.start()
    assert inside.wait(10)
    closer = threading.Thread(target=storage.close)
    closer.start()
    closer.join(0.2)
    alive = closer.is_alive()
    release.set()
    writer.join(10)
    closer.join(10)
    assert alive  # close waited for the transaction
    reopened = SQLiteStorage(tmp_path / "server.db")
    with reopened._transaction(write=False) as cur:
        assert reopened._exec(cur, "SELECT value FROM meta WHERE name = 'written'").fetchone() == ("1",)
    reopened.close()
