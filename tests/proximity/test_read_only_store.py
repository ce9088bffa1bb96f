"""A store that can be read but not written (its file or folder read-only, a read-only mount): every
command, `status` included, said "... is not a usable sighting database: attempt to write a readonly
database", exit 1, as for a damaged file (whose advice, move it away, is wrong here).  Now commands that
only read it work (the purge on open is postponed, as on a full disk), and a write says it is read-only."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bluezone.crypto.intervals import rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import StoreReadOnlyError
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.failures import unusable

from .conftest import random_sightings


def _without_write_access() -> list[str]:
    """The command prefix under which permissions hold: none for a user, for root ``setpriv`` without
    the capabilities that override them (root reads and writes any file)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root, and no setpriv to give up the override of file permissions")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def _bluezone(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_without_write_access(), sys.executable, "-m", "bluezone.cli", *args],
                          capture_output=True, text=True, timeout=120)


READ_ONLY = ("it is read-only (attempt to write a readonly database); check the owner and permissions of the file, its"
             " -wal and -shm files and its folder, or whether its file system is mounted read-only")


@pytest.fixture(params=["file", "file and folder"])
def read_only_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    db = tmp_path / "store" / "s.db"
    now = time.time()
    with SightingStore.open(db) as store:
        store.add_sightings(random_sightings(20, now - 3600, 1))
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(now)))
    db.chmod(0o400)
    if request.param == "file and folder":
        db.parent.chmod(0o500)
    yield db
    db.parent.chmod(0o700)


def test_status_reads_a_read_only_store_or_says_why_it_cannot(read_only_store: Path) -> None:
    """A read-only file in a folder it may write (SQLite's -shm there) is read; in a read-only folder
    SQLite cannot read a WAL store at all (SQLITE_READONLY_DIRECTORY): then that is said."""
    done = _bluezone("status", "--db", str(read_only_store))
    assert "not a usable" not in done.stderr
    if read_only_store.parent.stat().st_mode & 0o200:  # the folder writable
        assert done.returncode == 0, done.stderr
        assert "sightings  20" in done.stdout and "retention purge on open postponed: cannot write to" in done.stderr
    else:
        assert done.returncode == 1 and done.stderr.splitlines()[-1] == f"Error: cannot write to {read_only_store}: {READ_ONLY}"


def test_a_write_to_a_read_only_store_says_so_in_one_line(read_only_store: Path) -> None:
    before = read_only_store.read_bytes()
    done = _bluezone("purge", "--db", str(read_only_store))
    assert done.returncode == 1, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert error == [f"Error: cannot write to {read_only_store}: {READ_ONLY}"], done.stderr
    assert read_only_store.read_bytes() == before


@pytest.mark.parametrize("name", ["SQLITE_READONLY", "SQLITE_READONLY_DIRECTORY", "SQLITE_READONLY_CANTINIT"])
def test_sqlites_read_only_errors_are_said_as_read_only(tmp_path: Path, name: str) -> None:
    exc = sqlite3.OperationalError("attempt to write a readonly database")
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    error = unusable(tmp_path / "s.db", exc)
    assert isinstance(error, StoreReadOnlyError) and "is read-only" in str(error) and "not a usable" not in str(error)
