"""A check's early reader of its store (``heardread.EarlyRead``, sqlite3 alone, started before numpy is
imported): what it reads is the store's own ``heard_rpis()`` where the open's purge deletes nothing, and
a superset where it does; it reads only a store the check would open unchanged (this schema, WAL mode,
no lock) and otherwise gives None; and once joined it leaves no connection, no file and no reader in the
WAL behind (a reader in the WAL would keep the purge's TRUNCATE checkpoint from emptying it)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.proximity.store import SCHEMA_VERSION, SightingStore
from bluezone.proximity.store.heardread import EarlyRead, file_identity
from tests.open_files_helpers import open_on
from tests.proximity.stored_rows_helpers import NOON, damage, repeated_rows, utf16_file


def _store(path: Path, rows: np.ndarray, utf16: bool = False) -> Path:
    if utf16:
        utf16_file(path)
    with SightingStore.open(path, purge_now=float(rows["time"].max())) as store:
        store.add_sightings(rows)
    return path


def _as_bytes(rpis: np.ndarray) -> set[bytes]:
    return {bytes(r) for r in rpis}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), per_rpi=st.sampled_from([1, 2, 3, 9]), damaged=st.booleans(), utf16=st.booleans(),
    purged_hours=st.one_of(st.none(), st.floats(0, 80)),
)
def test_the_early_read_is_the_store_s_read_or_a_superset_of_it_after_the_purge(
    tmp_path_factory, seed: int, per_rpi: int, damaged: bool, utf16: bool, purged_hours: float | None
) -> None:
    """Both shapes (SQLite groups from 8 sightings an RPI, numpy below), a UTF-16 file, damaged rows: with
    no purge the same arrays as ``heard_rpis()``; with one, every RPI and every repeated one of the purged
    store is among the early read's (``HeardRpis`` may hold a superset: tests/matching/test_stored_context_reads.py)."""
    path = tmp_path_factory.mktemp("early") / "s.db"
    rows = repeated_rows(seed, 40, per_rpi)
    _store(path, rows, utf16)
    if damaged:
        with SightingStore.open(path, purge_now=float(rows["time"].max())) as store:
            damage(store, rows)
    with EarlyRead(path, 2) as early:
        read = early.result()
    assert read is not None and read.identity == file_identity(path)
    # as a check opens it: a purge at the retention's end moved back by purged_hours (the oldest rows go)
    now = None if purged_hours is None else NOON - 1.5 * 86400 + purged_hours * 3600 + 14 * 86400
    conn = sqlite3.connect(path)
    stored = conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
    conn.close()
    with SightingStore.open(path, create=False, purge_now=now) as store:
        arrays = store.heard_rpis_read_before(read, 2)
        every, repeated = store.heard_rpis(repeated=2)
        kept = store.count_sightings()
    assert arrays is not None
    early_every, early_repeated = arrays
    if kept == stored:
        np.testing.assert_array_equal(early_every, every)
        np.testing.assert_array_equal(early_repeated, repeated)
    assert _as_bytes(early_every) >= _as_bytes(every)
    assert _as_bytes(early_repeated) >= _as_bytes(repeated)
    assert _as_bytes(early_repeated) <= _as_bytes(early_every)


def test_the_early_read_leaves_the_store_as_it_found_it(tmp_path) -> None:
    """No file made or left (its connection is read-write, so its close removes the -wal and -shm it made),
    no byte changed, no descriptor open, and the WAL free: a purge's TRUNCATE checkpoint empties it."""
    path = _store(tmp_path / "s.db", repeated_rows(1, 50, 3))
    before = (sorted(os.listdir(tmp_path)), path.read_bytes())
    with EarlyRead(path, 2) as early:
        assert early.result() is not None
        assert not open_on(path)
    assert (sorted(os.listdir(tmp_path)), path.read_bytes()) == before
    with SightingStore.open(path, create=False) as store:
        assert store._empty_wal()


def test_a_store_the_check_would_not_open_unchanged_is_not_read_early(tmp_path) -> None:
    """None, at once (no wait for a lock), its thread ended and its connection closed, for: no file, a
    directory, another schema version (the open migrates it), a file in rollback mode (a reader there holds
    back every writer), a store locked by another connection, a file that is not SQLite."""
    rows = repeated_rows(2, 30, 3)
    good = _store(tmp_path / "good.db", rows)
    older = tmp_path / "older.db"
    shutil.copy(good, older)
    conn = sqlite3.connect(older)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.close()
    rollback = tmp_path / "rollback.db"
    shutil.copy(good, rollback)
    conn = sqlite3.connect(rollback)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    locked = tmp_path / "locked.db"
    shutil.copy(good, locked)
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM daemon_state")
    (tmp_path / "dir.db").mkdir()
    (tmp_path / "text.db").write_text("not a store\n")
    try:
        for path in (tmp_path / "missing.db", tmp_path / "dir.db", older, rollback, locked, tmp_path / "text.db"):
            early = EarlyRead(path, 2)
            assert early.result() is None, path
            assert early._thread.done()
            assert path == locked or not open_on(path), path
            early.close()
        assert not (tmp_path / "missing.db").exists()  # never created
    finally:
        holder.close()
    # SQLite keeps a closed connection's descriptor while another connection of the process holds a lock on
    # that file (closing it would drop that lock): given back once the lock is
    assert not open_on(locked)
    with EarlyRead(good, 2) as early:
        assert early.result() is not None  # and the same file, unlocked, is read


def test_a_store_replaced_after_its_early_read_is_read_again(tmp_path) -> None:
    """The early read names the file it read (device, inode): a store moved over it at the same path
    before the open is another file, so the open reads that one itself."""
    path = _store(tmp_path / "s.db", repeated_rows(3, 20, 3))
    other = _store(tmp_path / "other.db", repeated_rows(4, 25, 3))
    with EarlyRead(path, 2) as early:
        read = early.result()
    assert read is not None
    os.replace(other, path)
    with SightingStore.open(path, create=False) as store:
        assert store.heard_rpis_read_before(read, 2) is None
        assert len(store.heard_rpis()[0]) == 25


def test_closing_an_early_read_joins_its_thread_whenever_it_is_closed(tmp_path) -> None:
    """Closed at once (a check that stops before it needs the store: a bad option, Ctrl-C) or after its
    result: the thread has ended and its connection is closed, and closing again does nothing."""
    path = _store(tmp_path / "s.db", repeated_rows(5, 200, 3))
    for take_result in (False, True):
        early = EarlyRead(path, 2)
        if take_result:
            assert early.result() is not None
        early.close()
        assert early._thread.done() and not open_on(path)
        early.close()
    with SightingStore.open(path, create=False) as store:
        assert store._empty_wal()
