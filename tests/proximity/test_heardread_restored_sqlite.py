"""A store changed between a check's early read (``EarlyRead``) and the check's open in ways the file's stamp does
not see.  A backup restored over the store through SQLite (``sqlite3 bluezone.db ".restore backup.db"``, the
backup API) while the daemon runs: the restored pages wait in the WAL, so the file's stamp is unchanged, and the
restored rows end before the last one read, so no row lies past it; the early read of the store as it was (other
RPIs) was used, and a contact heard only in the backup was missed (attack24's test, the first here).  Now the
early read stands for the store only with the same schema cookie (which SQLite's backup bumps) and the same last
row (which another store lacks), or that row purged."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np

from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.heardread import EarlyRead

T = 1_780_000_000.0


def _rows(rpi: bytes, n: int) -> np.ndarray:
    rows = np.zeros(n, SIGHTING_DTYPE)
    rows["rpi"] = np.frombuffer(rpi * n, "V16")
    rows["time"] = T + np.arange(n)
    rows["rssi"] = -60
    return rows


def _backup(source: Path, target: Path) -> None:
    """``source`` copied over ``target`` through SQLite's backup API."""
    source_conn, target_conn = sqlite3.connect(source), sqlite3.connect(target)
    source_conn.backup(target_conn)
    source_conn.close()
    target_conn.close()


def test_a_backup_restored_through_sqlite_after_the_early_read_is_read_again(tmp_path: Path) -> None:
    live, backup = tmp_path / "bluezone.db", tmp_path / "backup.db"
    with SightingStore.open(backup, purge_now=T) as store:
        store.add_sightings(_rows(b"\xbb" * 16, 50))
    with SightingStore.open(live, purge_now=T) as daemon:  # running throughout: the WAL is never emptied
        daemon.add_sightings(_rows(b"\xaa" * 16, 100))
        early = EarlyRead(live, 2)
        read = early.result()
        assert read is not None  # (no vacuous pass)
        _backup(backup, live)  # `sqlite3 bluezone.db ".restore backup.db"`
        assert early.result() is read  # the file's stamp did not see it
        with SightingStore.open(live, create=False, purge_now=T) as store:
            assert store.heard_rpis_read_before(read, 2) is None
            every, _ = store.heard_rpis(repeated=2)
            assert [bytes(rpi) for rpi in every] == [b"\xbb" * 16]


def test_a_backup_of_this_store_restored_through_sqlite_with_its_last_row_is_read_again(tmp_path: Path) -> None:
    """A backup taken of this very store after its last row was written, restored through SQLite after the early
    read: the last row is the same, but rows deleted since the backup (here ``purge --dated-ahead``'s) are back.
    Told by the schema cookie, which SQLite's backup sets to the one it overwrote plus one."""
    live, backup = tmp_path / "bluezone.db", tmp_path / "backup.db"
    ahead = _rows(b"\xcc" * 16, 20)
    ahead["time"] += 30 * 86400  # written while the clock ran a month ahead
    with SightingStore.open(live, purge_now=T) as daemon:
        daemon.add_sightings(ahead)
        daemon.add_sightings(_rows(b"\xaa" * 16, 100))
        _backup(live, backup)
        assert daemon.purge_dated_ahead(T) == 20
        early = EarlyRead(live, 2)
        read = early.result()
        assert read is not None
        assert {bytes(rpi) for rpi in daemon.heard_rpis(repeated=2)[0]} == {b"\xaa" * 16}
        _backup(backup, live)  # `sqlite3 bluezone.db ".restore backup.db"`
        assert early.result() is read  # the file's stamp did not see it
        with SightingStore.open(live, create=False, purge_now=T) as store:
            assert store._conn.execute("SELECT MAX(rowid) FROM sightings").fetchone()[0] == read.last_row[0]  # (the same last row)
            assert store.heard_rpis_read_before(read, 2) is None
            every, _ = store.heard_rpis(repeated=2)
            assert {bytes(rpi) for rpi in every} == {b"\xaa" * 16, b"\xcc" * 16}


def test_an_untouched_store_is_read_early_through_the_daemon_s_other_writes_and_the_open_s_purge(tmp_path: Path) -> None:
    """No false alarm where the sightings did not change: the daemon's state written meanwhile, the open's purge
    deleting the oldest rows (not the last), its checkpoint after the early read's stamp was compared."""
    live = tmp_path / "bluezone.db"
    with SightingStore.open(live, purge_now=T) as daemon:
        old = _rows(b"\xdd" * 16, 10)
        old["time"] -= 20 * 86400
        daemon.add_sightings(old)
        daemon.add_sightings(_rows(b"\xaa" * 16, 100))
        early = EarlyRead(live, 2)
        read = early.result()
        assert read is not None
        daemon.save_daemon_state({"radio": "ok"}, T)
        with SightingStore.open(live, create=False, purge_now=T) as store:
            arrays = store.heard_rpis_read_before(read, 2)
            assert arrays is not None
            assert [bytes(rpi) for rpi in store.heard_rpis(repeated=2)[0]] == [b"\xaa" * 16]


def test_a_backup_copied_over_the_store_after_its_stamp_was_compared_is_read_again(tmp_path: Path) -> None:
    """``cp backup.db bluezone.db`` after ``EarlyRead.result`` compared the file's stamp, before the open: the
    same schema cookie (stores made alike), no row past the last read; told by the last row, which it lacks."""
    live, backup = tmp_path / "bluezone.db", tmp_path / "backup.db"
    with SightingStore.open(backup, purge_now=T) as store:
        store.add_sightings(_rows(b"\xbb" * 16, 50))
    with SightingStore.open(live, purge_now=T) as store:
        store.add_sightings(_rows(b"\xaa" * 16, 100))
    early = EarlyRead(live, 2)
    read = early.result()
    assert read is not None
    shutil.copyfile(backup, live)
    with SightingStore.open(live, create=False, purge_now=T) as store:
        assert store._conn.execute("PRAGMA schema_version").fetchone()[0] == read.schema_version  # (not told by it)
        assert store.heard_rpis_read_before(read, 2) is None
        every, _ = store.heard_rpis(repeated=2)
        assert [bytes(rpi) for rpi in every] == [b"\xbb" * 16]
