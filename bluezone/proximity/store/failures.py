"""SQLite's errors as one line each: another program's file, a damaged one, a full disk (worth a retry)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from bluezone.errors import NotAStoreError, StoreError, StoreReadOnlyError, StoreWriteError


#: SQLite errors that may pass (space freed, the disk back, the lock released): worth a retry.
TRANSIENT = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED")


def unusable(path: Path | None, exc: sqlite3.DatabaseError) -> StoreError:
    """The one line for a database SQLite cannot use: another program's file (exit 2) or a
    damaged one (exit 1), never a bare ``DatabaseError``."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(TRANSIENT):
        return StoreWriteError(f"cannot write to {path or ':memory:'} now: {exc}{_full_disk_hint(path)}")
    if name == "SQLITE_READONLY_DIRECTORY" and path is not None:  # even a read needs the WAL's files beside it
        return StoreReadOnlyError(
            f"cannot open {path}: to read or write a WAL store SQLite makes its {path.name}-wal and -shm files beside"
            f" it, and its folder {path.parent} is read-only (to this user, or a read-only file system): run as the"
            " store's owner, make the folder writable, or copy the store into a writable folder and give the copy with --db"
        )
    if name.startswith("SQLITE_READONLY"):  # it reads fine: it is not "not a usable sighting database"
        return StoreReadOnlyError(
            f"cannot write to {path or ':memory:'}: it is read-only ({exc}); check the owner and permissions of the"
            " file, its -wal and -shm files and its folder, or whether its file system is mounted read-only"
        )
    error = NotAStoreError if name == "SQLITE_NOTADB" else StoreError
    hint = ""
    if name.startswith("SQLITE_CORRUPT"):
        hint = " (it is damaged: move it away, and `bluezone run` starts a new one, or restore a copy)"
    return error(f"{path or ':memory:'} is not a usable sighting database: {exc}{hint}")


#: Free bytes under which a failing write is put down to a full disk.
FULL_DISK_BYTES = 1_000_000


def _full_disk_hint(path: Path | None) -> str:
    """What to do when the disk is full: SQLite says it as 'disk I/O error' when it cannot make the
    WAL's 32 KiB index, which every reader needs, so a stopped daemon's store could not even be read."""
    try:
        free = shutil.disk_usage(Path(path).resolve().parent).free if path is not None else None
    except OSError:
        return ""
    return "" if free is None or free >= FULL_DISK_BYTES else f" (the disk is full: {free // 1000} kB free; free some space)"
