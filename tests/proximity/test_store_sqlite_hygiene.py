"""What the store deletes leaves its files: a purge's sightings are zeroed where SQLite's build does not zero
deletions by default (``PRAGMA secure_delete`` was never turned on), the WAL's older frames holding them are
emptied (the checkpoint's result was never read: a reader kept them, silently), an owed vacuum stays owed
until its WAL is emptied too, and a read-only store owing one says so in one line, not two with wrong advice."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.schema import VACUUM_OWED

from .conftest import NOON, bluezone_without_write_access, random_sightings

DAY = 86_400.0
#: The RPI of every sighting the purge deletes: looked for, byte for byte, in the store's files.
MARK = b"\xa5\x5a\xc3\x3c" * 4


def _bytes_of(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _with_old_marked_sightings(store: SightingStore) -> None:
    """200 sightings 20 days old carrying ``MARK`` among 2,000 of this morning."""
    old = random_sightings(200, NOON - 20 * DAY, 3600, seed=1)
    old["rpi"] = np.frombuffer(MARK * len(old), "V16")
    store.add_sightings(old)
    store.add_sightings(random_sightings(2000, NOON - 3 * 3600, 3600, seed=2))


@pytest.fixture
def build_without_secure_delete(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SQLite as built without SQLITE_SECURE_DELETE (most distributions but Debian's and Android's): a
    connection starts with secure_delete off, so a deleted row's bytes stay in the page's free space."""
    connect = sqlite3.connect

    def off_by_default(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", off_by_default)
    yield


def test_a_purge_zeroes_what_it_deletes_where_the_build_would_not(tmp_path: Path, build_without_secure_delete: None) -> None:
    path = tmp_path / "node.db"
    with SightingStore.open(path, purge_now=NOON - 20 * DAY) as store:
        _with_old_marked_sightings(store)
    assert MARK in _bytes_of(path)  # (no vacuous pass)
    with SightingStore.open(path, create=False, purge_now=NOON) as store:
        assert store.purged_on_open is not None and store.purged_on_open["sightings_deleted"] == 200
    assert MARK not in _bytes_of(path)
    with SightingStore.open(path, create=False, purge_now=NOON) as store:
        assert store.stats()["secure_delete"] is True  # (`status` says when a build cannot)


def test_a_purge_empties_the_wal_that_held_the_rows_it_deleted(tmp_path: Path) -> None:
    """The rows were written through the WAL; a purge zeroed them in the file's pages, but the WAL's older
    frames kept them (until overwritten, or the last connection closed) while the daemon ran."""
    path = tmp_path / "node.db"
    with SightingStore.open(path, purge_now=NOON - 20 * DAY) as store:
        _with_old_marked_sightings(store)
        assert MARK in Path(f"{path}-wal").read_bytes()
        assert store.purge(NOON)["sightings_deleted"] == 200
        assert MARK not in _bytes_of(path)  # the store still open: what the daemon's hourly purge leaves
        assert store.count_sightings() == 2000


def test_a_reader_keeps_the_wal_and_the_next_purge_empties_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A checkpoint a reader blocks was silent, and nothing tried again: the purged rows stayed in the WAL."""
    path = tmp_path / "node.db"
    with SightingStore.open(path, purge_now=NOON - 20 * DAY) as store:
        _with_old_marked_sightings(store)
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM sightings").fetchone()  # a check's read, mid-transaction
        with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
            assert store.purge(NOON)["sightings_deleted"] == 200
        assert "keeps the purged rows' old pages until the next purge: a reader was in it" in caplog.text
        assert MARK in _bytes_of(path)
        reader.execute("COMMIT")
        reader.close()
        assert store.purge(NOON)["sightings_deleted"] == 0  # nothing more to delete, the WAL still owed
        assert MARK not in _bytes_of(path)


def test_an_owed_vacuum_whose_wal_a_reader_holds_stays_owed(
    schema11_credentials_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The vacuum's own checkpoint was unchecked and the debt deleted first: a reader at that moment left the
    vacuumed-out passwords in the file's pages (the new ones waiting in the WAL) with nothing owed any more."""
    path = schema11_credentials_store
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    with caplog.at_level(logging.WARNING, logger="bluezone.proximity.store"):
        SightingStore.open(path, create=False, purge_now=1_763_640_000.0).close()
    assert "could not finish vacuuming" in caplog.text and "a reader kept its WAL from being emptied" in caplog.text
    assert reader.execute("SELECT COUNT(*) FROM daemon_state WHERE name = ?", (VACUUM_OWED,)).fetchone() == (0,)
    reader.execute("COMMIT")
    owed = reader.execute("SELECT COUNT(*) FROM daemon_state WHERE name = ?", (VACUUM_OWED,)).fetchone()
    assert owed == (1,)  # still owed, now that the reader sees the store as it is
    reader.close()
    with SightingStore.open(path, create=False, purge_now=1_763_640_000.0) as store:
        assert store.stats()["vacuum_owed"] is False
    assert b"s3cret-Pa55" not in _bytes_of(path)


def test_a_read_only_store_owing_a_vacuum_says_so_in_one_line(schema11_credentials_store: Path) -> None:
    """Every open of it warned twice: the vacuum's failure with advice for a full disk ("run sqlite3 ... VACUUM
    with room on the disk") and the purge postponed as read-only.  Now one line, and `status` says what is owed."""
    path = schema11_credentials_store
    SightingStore.open(path, create=False, purge_now=1_763_640_000.0).close()  # migrated and vacuumed
    with sqlite3.connect(path) as conn:  # as a migration leaves it when its vacuum cannot run
        conn.execute("INSERT INTO daemon_state (name, value, updated_at) VALUES (?, 'schema 12', 0)", (VACUUM_OWED,))
    conn.close()
    path.chmod(0o400)
    done = bluezone_without_write_access("status", "--db", str(path))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "older than 14 days (and the vacuum a migration owes" in warnings[0], warnings
    assert "room on the disk" not in done.stderr
    assert "vacuum     OWED: a migration deleted secrets" in done.stdout
    path.chmod(0o600)


def test_a_vacuum_with_no_room_in_the_temporary_directory_says_where_room_is_needed(schema11_credentials_store: Path) -> None:
    """VACUUM copies a database larger than its page cache into a temporary file in SQLite's temporary directory
    (SQLITE_TMPDIR, else TMPDIR, else /var/tmp or /tmp), not beside the database: the advice said "with room on the
    disk", the database's, which may have room while /tmp has none.  Here the temporary directory is /proc (a
    directory where no file can be made): the warning names it and how to give another."""
    path = schema11_credentials_store
    rng, now = np.random.default_rng(5), time.time()
    with sqlite3.connect(path) as conn:  # ~4 MB of the last day: past SQLite's 2 MB page cache, so the copy needs a file
        conn.executemany("INSERT INTO sightings (time, rpi, aem, rssi, tx_power) VALUES (?, ?, ?, -60, -10)",
                         [(now - i, rng.bytes(16), rng.bytes(4)) for i in range(80_000)])
    conn.close()
    env = {**os.environ, "SQLITE_TMPDIR": "/proc"}
    done = subprocess.run([sys.executable, "-m", "bluezone.cli", "status", "--db", str(path)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "could not vacuum" in done.stderr and "room on the disk" not in done.stderr
    assert "in SQLite's temporary directory (/proc: SQLITE_TMPDIR, else TMPDIR" in done.stderr
    assert "vacuum     OWED" in done.stdout  # the migration stands; the next open tries again
    with SightingStore.open(path, create=False, purge_now=now) as store:
        assert store.stats()["vacuum_owed"] is False and store.count_sightings() > 80_000 - 100


def test_a_temporary_directory_sqlite_cannot_use_is_no_damaged_store(tmp_path: Path) -> None:
    """A purge of many rows needs a temporary file (its statement journal, past 64 KiB) in SQLite's temporary
    directory: where none can be made there, every command opening the store said "is not a usable sighting
    database: unable to open database file" (exit 1), and `doctor` advised moving it away, as for a damaged file.
    Now the purge on open is postponed with one line naming that directory, and the store reads as it is."""
    path, now = tmp_path / "me.db", time.time()
    with SightingStore.open(path, purge_now=now - 30 * DAY) as store:
        store.add_sightings(random_sightings(80_000, now - 20 * DAY, DAY, seed=1))  # past the 14 days: purged on open
        store.add_sightings(random_sightings(100, now - 3600, 600, seed=2))
    env = {**os.environ, "SQLITE_TMPDIR": "/proc"}  # a directory where no file can be made
    done = subprocess.run([sys.executable, "-m", "bluezone.cli", "status", "--db", str(path), "--json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "not a usable sighting database" not in done.stderr
    assert "retention purge on open postponed" in done.stderr and "temporary directory /proc" in done.stderr
    assert json.loads(done.stdout)["sightings"] == 100  # read as if purged
    with SightingStore.open(path, create=False, purge_now=now) as store:  # a usable directory: purged then
        assert store.purged_on_open["sightings_deleted"] == 80_000 and store.count_sightings() == 100
