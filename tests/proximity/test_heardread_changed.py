"""A store changed between a check's early read (``heardread.EarlyRead``) and the check's open: what the
open takes from the early read still names every RPI the store holds then.  (device, inode) tells a file
moved over the path (``os.replace``), not one written in place: the daemon's new rows, a ``cp`` or a
backup restored over the store, or one deleted and made again (ext4 hands the freed inode to the next
file at once).  And a close that comes between two of the read's statements stops it too: SQLite drops
an interrupt that finds no statement running."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from bluezone.proximity.store import SightingStore
from bluezone.proximity.store import heardread
from bluezone.proximity.store.heardread import EarlyRead
from tests.proximity.stored_rows_helpers import repeated_rows


def _store(path: Path, rows: np.ndarray) -> Path:
    with SightingStore.open(path, purge_now=float(rows["time"].max())) as store:
        store.add_sightings(rows)
    return path


def _rpis(rows: np.ndarray) -> set[bytes]:
    return {bytes(r) for r in rows["rpi"]}


def _taken_from_the_early_read(path: Path, early: EarlyRead) -> set[bytes] | None:
    read = early.result()
    assert read is not None
    with SightingStore.open(path, create=False) as store:
        arrays = store.heard_rpis_read_before(read, 2)
    return None if arrays is None else {bytes(r) for r in arrays[0]}


def test_rows_stored_after_the_early_read_are_not_missed(tmp_path: Path) -> None:
    """The daemon stores a new RPI while the check imports numpy: the early read must not stand for the
    store without it (a contact met that minute went unreported, its sightings counted)."""
    old, new = repeated_rows(1, 30, 3), repeated_rows(2, 1, 3)
    path = _store(tmp_path / "s.db", old)
    with EarlyRead(path, 2) as early:
        assert early.result() is not None
        with SightingStore.open(path, create=False) as daemon:
            daemon.add_sightings(new)
        taken = _taken_from_the_early_read(path, early)
    assert taken is None or taken >= _rpis(old) | _rpis(new)


@pytest.mark.parametrize("how", ["restored", "copied"])
def test_a_store_written_over_in_place_is_not_taken_for_the_one_read_early(tmp_path: Path, how: str) -> None:
    """The same inode, another store's rows: ``sqlite3 s.db ".restore backup.db"`` or ``cp backup.db s.db``."""
    kept = repeated_rows(4, 25, 3)
    backup = _store(tmp_path / "backup.db", kept)
    path = _store(tmp_path / "s.db", repeated_rows(3, 20, 3))
    emptied = sqlite3.connect(path)
    with emptied:
        emptied.execute("DELETE FROM sightings")  # what the early read finds: nothing heard
    emptied.close()  # its WAL checkpointed and gone: the file alone is the store
    with EarlyRead(path, 2) as early:
        assert early.result() is not None
        if how == "restored":
            with sqlite3.connect(backup) as source, sqlite3.connect(path) as target:
                source.backup(target)
        else:
            shutil.copyfile(backup, path)  # written into the same file
        taken = _taken_from_the_early_read(path, early)
    assert taken is None or taken >= _rpis(kept)


#: Counts to 30 million: seconds of work, unless it is stopped.
LONG = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 30000000) SELECT COUNT(*) FROM n"


@pytest.mark.timeout(120)
def test_a_close_between_two_statements_of_the_read_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``close`` (Ctrl-C, a bad key file) calls ``interrupt`` while the read is between two statements:
    the next one must stop at once, not run to its end while ``close`` waits for it."""
    path = _store(tmp_path / "s.db", repeated_rows(5, 20, 3))
    between, stopping = threading.Event(), threading.Event()
    finished: list[int] = []

    class Watched(EarlyRead):
        @property  # type: ignore[override]
        def _stopped(self) -> bool:
            return bool(self.__dict__.get("stopped", False))

        @_stopped.setter
        def _stopped(self, value: bool) -> None:
            self.__dict__["stopped"] = value
            if value:
                stopping.set()

    def two_statements(conn: sqlite3.Connection, *args: object) -> heardread.HeardBlobs:
        conn.execute("SELECT 1").fetchone()
        between.set()
        assert stopping.wait(30)
        with early._lock:  # close() holds it while it interrupts: past this, interrupt() has been called
            pass
        finished.append(conn.execute(LONG).fetchone()[0])
        return heardread.HeardBlobs(False, 2, ())

    monkeypatch.setattr(heardread, "read_heard", two_statements)
    early = Watched(path, 2)
    assert between.wait(30)
    early.close()
    assert finished == [] and early.result() is None


def test_the_early_read_looks_at_its_stop_flag_rarely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each look at the stop flag is a call into Python, which takes the GIL from the imports running beside
    the read: a look every 1,000 of SQLite's steps made the read of a million sightings end ~20-27 ms later,
    and a two-job check's workers wait for it.  Reading 60,000 sightings looks a few times, not hundreds."""
    path = _store(tmp_path / "s.db", repeated_rows(5, 20_000, 3))
    looks = []
    connect = sqlite3.connect

    class Counting(sqlite3.Connection):
        def set_progress_handler(self, handler, n):  # type: ignore[no-untyped-def]
            def counted() -> int:
                looks.append(1)
                return handler()

            super().set_progress_handler(counted, n)

    monkeypatch.setattr(heardread.sqlite3, "connect", lambda *a, **k: connect(*a, factory=Counting, **k))
    with EarlyRead(path, 2) as early:
        assert early.result() is not None
    assert len(looks) < 50  # ~3 here (the stop itself: test_a_close_between_two_statements_of_the_read_stops_it)
