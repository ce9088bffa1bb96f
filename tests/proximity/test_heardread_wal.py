"""A check's early reader of a store whose ``-wal`` a killed writer left (the daemon killed, the power
cut): a check that never opens the store (a bad key file, one job) leaves it as it found it, as before
the early reader.  Its connection was read-write, and the last connection to close checkpoints the WAL
into the file and removes it; beside a ``-wal`` already there it now reads read-only.  (The ``-shm``, an
index of the WAL that any reader rebuilds, is not the store's data.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.heardread import EarlyRead
from tests.proximity.stored_rows_helpers import repeated_rows

KILLED_WRITER = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute("DELETE FROM sightings WHERE rowid <= 10")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if not name.endswith("-shm")}


def test_an_early_read_leaves_a_killed_writers_wal_as_it_found_it(tmp_path: Path) -> None:
    rows = repeated_rows(6, 30, 3)
    path = tmp_path / "s.db"
    with SightingStore.open(path, purge_now=float(rows["time"].max())) as store:
        store.add_sightings(rows)
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], check=False)
    assert (tmp_path / "s.db-wal").stat().st_size > 0
    before, listed = _files(tmp_path), sorted(os.listdir(tmp_path))
    with EarlyRead(path, 2) as early:
        read = early.result()
    assert read is not None
    assert sorted(os.listdir(tmp_path)) == listed and _files(tmp_path) == before
