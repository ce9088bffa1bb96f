"""What every part of ``SightingStore`` works on: one SQLite connection (and the store's path), and a
time range as SQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bluezone.proximity.store.failures import unusable

if TYPE_CHECKING:
    import sqlite_utils


#: How long a store's connection waits for another's write lock (a daemon's flush, a command's purge, the daemon's
#: rewrite in its thread) before SQLite says the database is locked.
BUSY_SECONDS = 10.0


@contextlib.contextmanager
def waiting_at_most(conn: sqlite3.Connection, seconds: float) -> Iterator[sqlite3.Connection]:
    """``conn`` whose statements wait at most ``seconds`` for another connection's lock in the block (SQLite's busy
    timeout; the store's own is ``BUSY_SECONDS``); the wait before comes back after it.  A connection closed or broken,
    before or meanwhile, is left as it is: its own error is said where it is used next (the block's statement)."""
    try:
        before: int | None = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        conn.execute(f"PRAGMA busy_timeout = {round(seconds * 1000)}")
    except sqlite3.Error:
        before = None
    if before is None:
        yield conn
        return
    try:
        yield conn
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute(f"PRAGMA busy_timeout = {before}")


class StoreBase:
    """The connection and path every part of the store reads and writes through."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path
        self._db: sqlite_utils.Database | None = None
        self.purged_on_open: dict[str, Any] | None = None  # what ``open`` purged (``purge``'s result)
        #: The retention's cutoff at the clock the store was opened (or last purged) with: no read returns a
        #: sighting or check-in before it, whatever the purge did (on a read-only file it cannot run).
        self.retained_since: float | None = None
        #: A purge deleted rows whose old pages the WAL still holds (a reader kept it from being emptied).
        self._wal_owed = False
        self._held = False  # inside ``_write_held``: each write joins its transaction
        #: The vacuum a migration owes waits for a writable open (the file is read-only to this user).
        self.vacuum_postponed = False
        #: SQLite zeroes what is deleted (``PRAGMA secure_delete``): False on a build that cannot.
        self.secure_delete = False
        #: The schema cookie before and after this connection's last rewrite of the file (``Retention._rewrite``).
        self._rewritten_cookies: tuple[int, int] | None = None
        #: A rewrite that could not run has been warned of: a daemon retries at every purge (an hour), and says so once.
        self._rewrite_failure_said = False
        #: The adapters this connection noted in use (``adapters.py``): address -> (id, when noted).
        self._adapter_ids: dict[str, tuple[int, float]] = {}

    def _cookie_stands(self, read: int) -> bool:
        """Whether the schema cookie is still ``read`` (an early read's), or moved from it only by this store's own
        rewrite: a VACUUM keeps every row, rowid and value, but moves the cookie on as a restore over the file does."""
        cookie = int(self._conn.execute("PRAGMA schema_version").fetchone()[0])
        return cookie == read or self._rewritten_cookies == (read, cookie)

    def _empty_wal(self, conn: sqlite3.Connection | None = None) -> bool:
        """Copy the WAL into the file and truncate it, without waiting for readers; True when done.  ``conn``:
        another connection to the store's file than its own (a thread's).

        A deleted row's bytes stay in the WAL's older frames until they are overwritten: a reader in a
        transaction (another command's read) keeps them, and SQLite says so only in the result."""
        if self.path is None:
            return True
        with waiting_at_most(self._conn if conn is None else conn, 0.0) as used:  # the daemon's loop must not wait
            busy = used.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]  # out a reader's 10 s
        return not busy

    @contextlib.contextmanager
    def commits_synced(self) -> Iterator[None]:
        """Each commit in the block on the disk before it returns (``PRAGMA synchronous=FULL``: the WAL synced), for
        a write that a file made after it relies on (an export's key cut, its new chain): the store's own ``NORMAL``,
        cheap for the daemon's flushes, leaves a commit to the next checkpoint, and a power cut before it undoes it."""
        try:
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise unusable(self.path, exc) from exc
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):  # (a connection broken meanwhile says so at its next use)
                self._conn.execute("PRAGMA synchronous=NORMAL")

    @contextlib.contextmanager
    def _write_held(self) -> Iterator[None]:
        """One transaction, taken for writing before its first read (``BEGIN IMMEDIATE``): another process's write
        waits for it (its busy timeout); committed when the block ends, rolled back if it raises.  SQLite's errors as
        the store's other methods raise them (a lock held past the busy timeout, a full disk: ``StoreWriteError``),
        which their guard, around the call that makes this manager, does not reach."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise unusable(self.path, exc) from exc
        try:
            self._held = True
            try:
                yield
            finally:
                self._held = False
            self._conn.commit()
        except sqlite3.DatabaseError as exc:  # (the commit's)
            self._conn.rollback()
            raise unusable(self.path, exc) from exc
        except BaseException:
            self._conn.rollback()
            raise

    def _write(self) -> contextlib.AbstractContextManager[Any]:
        """A write's transaction: its own, or the held one's (``_write_held``: committed when that ends)."""
        return contextlib.nullcontext() if self._held else self._conn

    def waits_at_most(self, seconds: float) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """In the block, statements wait at most ``seconds`` for another connection's lock (the daemon's loop, which
        must go on receiving; ``waiting_at_most``)."""
        return waiting_at_most(self._conn, seconds)

    @property
    def db(self) -> sqlite_utils.Database:
        """The store as a ``sqlite_utils.Database`` on the same connection (for the migrations).

        Made on first use: a check or a status, on a store already at the current schema, never
        imports sqlite-utils (whose import and plugin discovery cost more than the rest of an open).
        Plugins are not run: nothing from outside changes how this private database is read."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self._conn, execute_plugins=False)
        return self._db

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _since(self, since: float | None, table: str = "sightings", column: str = "time") -> float | None:
        """``since``, or the retention's cutoff where that is later and ``table`` holds a row before it (one
        seek of the ``column`` index: where the purge ran there is none, and a bound the scan would test each
        index entry against cost ``heard_rpis()`` ~18 % on a million sightings)."""
        cutoff = self.retained_since
        if cutoff is None or (since is not None and float(since) >= cutoff):
            return since
        older = self._conn.execute(f"SELECT 1 FROM {table} WHERE {column} < ? LIMIT 1", (cutoff,)).fetchone()
        return since if older is None else cutoff

    def _time_filter(self, since: float | None, until: float | None, table: str = "sightings") -> tuple[str, list[float]]:
        where, params = "", []
        since = self._since(since, table)
        if since is not None:
            where += " AND time >= ?"
            params.append(float(since))
        if until is not None:
            where += " AND time < ?"
            params.append(float(until))
        return where, params
