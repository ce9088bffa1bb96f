"""The embedded default backend: one SQLite file in WAL mode, private to its owner."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bluezone.errors import InputError, ServerStorageError
from bluezone.server.storage.database import CLOSE_APART_WAIT
from bluezone.server.storage.interface import Storage

log = logging.getLogger(__name__)


#: SQLite's words for a migration meeting tables other than its schema version's (the transaction is rolled back).
_NOT_AS_STATED = ("no such column", "no such table", "duplicate column name", "table ", "index ")


class SQLiteStorage(Storage):
    """The embedded default: one SQLite file in WAL mode."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():  # a directory, FIFO or device: SQLite's "disk I/O error"
            raise InputError(f"key server database {self.path} is not a regular file: give a database file")
        if not create and not self.path.exists():
            # a typo in --server-db must not hand out codes (or export) from a new, empty database nobody serves
            raise InputError(f"key server database {self.path} does not exist (the server creates it on its first"
                             " start; add --create-db to create it here)")
        if not create and self.path.stat().st_size == 0:
            # `touch server.db`, or a shell redirect's target: SQLite takes an empty file for a new database, so
            # the typo's harm above (a code the running server rejects) came back through it
            raise InputError(f"key server database {self.path} is an empty file (the server creates its tables on"
                             " its first start; add --create-db to create them here)")
        if self.path.exists() and self.path.stat().st_nlink > 1:
            # SQLite keeps the WAL and its index beside the name it was opened by: a server and an export (or two
            # servers) under two names write through two WALs, which corrupts the database
            raise InputError(
                f"key server database {self.path} has {self.path.stat().st_nlink} names (hard links, as ln or cp -al"
                " make): SQLite keeps its write-ahead log by name, so two processes using two names corrupt it; keep"
                " one name (cp the file to copy it)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder must be ("File exists"), no permission: the operator's to fix
            raise InputError(
                f"cannot make the folder of key server database {self.path}: {_why(exc, self.path.parent)} (check --server-db)"
            ) from None
        try:
            # 0600 before SQLite opens it (its -wal/-shm take the same mode): it holds keys not yet published,
            # the addresses of the failed-code budgets, and short codes' HMACs (10 digits: whoever also reads
            # the code key beside the signing key recovers the codes still unused).
            loose = self.path.exists() and bool(stat.S_IMODE(self.path.stat().st_mode) & 0o077)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
                os.chmod(self.path, 0o600)  # the mode above is filtered by the umask
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("PRAGMA foreign_keys=ON")
            # 128 MiB of page cache at most (SQLite's default is 2 MiB): an export reads, then marks, a million
            # rows; with the table and the queue's index kept in cache between the passes it took 3.4 s, not 4.4
            self._conn.execute("PRAGMA cache_size=-131072")
            self._utf8 = self._conn.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"
            tables = sorted(row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            if tables and "meta" not in tables:
                # another program's file, or a node's sighting store: the server's tables added to it (as
                # `server status --server-db ~/.local/share/bluezone/bluezone.db` did) mix two databases for good
                self._conn.close()
                raise InputError(
                    f"{self.path} is not a key server database (it has tables {', '.join(tables[:3])}): check --server-db"
                )
            if loose:  # only once it is the server's: a wrong file's error is one line, not under this warning
                log.warning("key server database %s is readable by others; chmod 600 it", self.path)
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                # the operator named the wrong file: a usage error (exit 2, which systemd does not restart)
                raise InputError(f"{self.path} is not a key server database (SQLite: {exc}): check --server-db") from None
            raise ServerStorageError(f"cannot open key server database {self.path}: {exc}") from None
        try:
            self._create_schema()
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith(_NOT_AS_STATED):
                raise
            self._conn.close()
            # a raw 'OperationalError: no such column: id', exit 1 (a database of 3746de4, whose keys had no id yet)
            raise InputError(
                f"key server database {self.path} is not as its schema version says, so it cannot be upgraded (SQLite:"
                f" {exc}); it was left as it was: one made by a build of bluezone between releases, or edited by hand"
            ) from None

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                # IMMEDIATE: the write lock from the start, so two writers never meet half way (SQLITE_BUSY
                # deadlocks); a reader in WAL mode reads a snapshot and needs no lock writers wait for
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()
            finally:
                cur.close()

    def close(self) -> None:
        # the read-only readiness connection first: closed last, it could neither checkpoint nor remove the
        # WAL, which stayed beside the database after every stop that followed a /readyz during an export
        self._end_apart(CLOSE_APART_WAIT)
        # once a transaction under way has ended: a connection closed under another thread's statement
        # crashed the process (a server stopped while a request or an export still ran)
        with self._lock:
            self._conn.close()

    def _connect_apart(self) -> sqlite3.Connection:
        # read-only: in WAL mode a reader waits for no writer (and a SELECT alone begins no transaction)
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5, check_same_thread=False)


def _why(exc: OSError, folder: Path) -> str:
    """Why ``folder`` could not be made, in words: "File exists" said nothing of the file in the way."""
    if isinstance(exc, FileExistsError) or exc.errno == errno.ENOTDIR:
        in_the_way = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        if not in_the_way.is_dir():
            return f"{in_the_way} is a file, not a folder"
    return exc.strerror or str(exc)
