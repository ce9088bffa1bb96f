"""`bluezone server run` stopped (SIGTERM from systemd, Ctrl-C) closes its database before it exits.

uvicorn 0.29 and later raise the signal that stopped the server again once it has shut down: under the
default handler that killed the process (exit 143) before `server run` closed the storage, so SQLite's
WAL stayed beside the database (a copy of server.db alone, taken after `systemctl stop`, lacked the last
writes) and PostgreSQL connections were cut rather than closed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from server_helpers import free_port, until_it_answers

from bluezone.server.signing import keygen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_server_leaves_its_sqlite_database_closed(tmp_path: Path, sig: signal.Signals) -> None:
    keygen(tmp_path / "k")
    db, port = tmp_path / "server.db", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluezone.cli", "server", "run", "--server-db", str(db), "--port", str(port),
         "--signing-key-dir", str(tmp_path / "k"), "--export-every", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        until_it_answers(proc, f"http://127.0.0.1:{port}/readyz")
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("server-exports/index.txt")):  # a scheduled export wrote through the WAL
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert Path(f"{db}-wal").exists()
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output  # was -15 (SIGTERM)
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists(), output  # closed: checkpointed


def test_closing_after_a_readiness_check_during_an_export_leaves_no_wal(tmp_path: Path) -> None:
    """/readyz during an export reads on a read-only connection of its own; closed after the main one, it
    was the last, which cannot checkpoint: the WAL stayed beside the database after such a stop."""
    from bluezone.server.storage import SQLiteStorage

    storage = SQLiteStorage(tmp_path / "server.db")
    storage.note_export_run(1.0, 4)  # something in the WAL
    storage._ping_apart()  # what /readyz does while this process exports
    storage.close()
    assert not (tmp_path / "server.db-wal").exists() and not (tmp_path / "server.db-shm").exists()
