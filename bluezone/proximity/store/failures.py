"""SQLite's errors as one line each: another program's file, a damaged one, a full disk (worth a retry)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from bluezone.errors import NotAStoreError, StoreError, StoreReadOnlyError, StoreWriteError
from bluezone.proximity.store.files import on_read_only_file_system


#: SQLite errors that may pass (space freed, the disk back, the lock released): worth a retry.
TRANSIENT = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED")


def unusable(path: Path | None, exc: sqlite3.DatabaseError) -> StoreError:
    """The one line for a database SQLite cannot use: another program's file (exit 2) or a
    damaged one (exit 1), never a bare ``DatabaseError``."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) and path is not None and on_read_only_file_system(path):
        return StoreReadOnlyError(
            f"cannot write to {path}: it is on a read-only file system; commands that only read it (status, checkins,"
            " check) do: to change it, copy it into a writable folder and give the copy with --db"
        )
    if name.startswith(TRANSIENT):
        return StoreWriteError(f"cannot write to {path or ':memory:'} now: {exc}{_full_disk_hint(path)}")
    if name == "SQLITE_CANTOPEN" and path is not None and path.is_file():  # the file itself opened: not it
        return StoreWriteError(
            f"cannot write to {path} now: SQLite could not make a file it needs ({exc}): its {path.name}-wal or -shm"
            f" beside it, or a temporary file in its temporary directory {sqlite_temp_dir()} (SQLITE_TMPDIR, else"
            " TMPDIR, else /var/tmp or /tmp; a large purge or vacuum needs one): check that directory's room and"
            " permissions, or give another with SQLITE_TMPDIR=DIR"
        )
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
    WAL's 32 KiB index, which every reader needs, so a stopped daemon's store could not even be read.
    Or the temporary directory's disk (a large purge's statement journal, a vacuum's copy go there)."""
    import shutil  # here: a check's start (before its store's thread reads) needs it nowhere else (~2.5 ms)

    temp = sqlite_temp_dir()
    for where, hint in ((Path(path).resolve().parent if path is not None else None, "the disk is full"),
                        (Path(temp), f"SQLite's temporary directory {temp} is full (SQLITE_TMPDIR=DIR gives another)")):
        try:
            free = shutil.disk_usage(where).free if where is not None else None
        except OSError:
            continue
        if free is not None and free < FULL_DISK_BYTES:
            return f" ({hint}: {free // 1000} kB free; free some space)"
    return ""


def sqlite_temp_dir() -> str:
    """The directory SQLite (unix) puts its temporary files in: the first of SQLITE_TMPDIR, TMPDIR, /var/tmp, /usr/tmp,
    /tmp and "." that is a directory this process may write."""
    for candidate in (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"), "/var/tmp", "/usr/tmp", "/tmp", "."):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return "."
