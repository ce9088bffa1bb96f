"""The plumbing every part of the key server's storage stands on: one connection behind a lock,
one transaction per call, and the SQL written once for SQLite and PostgreSQL (``?`` placeholders,
column types filled in per backend).  The backends (sqlite.py, postgres.py) provide the
connection and, on PostgreSQL, the named locks SQLite's BEGIN IMMEDIATE makes unnecessary.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: What a readiness check reads: one row, from a table every version of the schema has.
PING_SQL = "SELECT value FROM meta WHERE name = 'schema_version'"
#: Seconds ``close`` waits for a readiness check under way before leaving its connection to the process's end.
CLOSE_APART_WAIT = 5.0


class Database(ABC):
    """One connection and the transactions on it; each job's part of ``Storage`` builds on this."""

    _param = "?"
    _serial = "INTEGER"
    _int64 = "INTEGER"  # SQLite: an INTEGER PRIMARY KEY is the rowid, so a queue is one small b-tree of ids
    _unreused_id = "INTEGER PRIMARY KEY AUTOINCREMENT"  # the largest id deleted is not drawn again
    _blob = "BLOB"
    _utf8 = True  # SQLite: the database stores text as UTF-8 (the default; UTF-16 if made so before)
    #: Appended to a SELECT of exposure_keys ``k`` whose rows are then changed: SQLite's one writer needs none
    _lock_keys = ""
    #: The same for the queue rows ``q`` a SELECT reads (an export judging a revision replaced meanwhile)
    _lock_queued = ""
    #: The same for the revision rows ``r`` a revocation stands a key on (an export marking one carried is waited for)
    _lock_revisions = ""
    #: Failing clients of ``code_tries`` grouped by the provider's block an operator may block (``server status``):
    #: which rows, and the block's key.  IPv4 addresses (digits and three dots) by their /16, its first two octets;
    #: IPv6 /48s' shared budgets (``shared:2001:db8:1::/48``, SHARED_BUDGET's prefix) by their /32, its first two
    #: groups (``2001::/48``'s second is 0).  No ``%`` in them: psycopg would take it for a parameter.
    _blocks = {
        "ipv4": (
            "client GLOB '[0-9]*.[0-9]*.[0-9]*.[0-9]*' AND client NOT GLOB '*[^0-9.]*'"
            " AND length(client) - length(replace(client, '.', '')) = 3",
            "substr(client, 1, instr(client, '.') + instr(substr(client, instr(client, '.') + 1), '.') - 1)",
        ),
        "ipv6": (
            "client GLOB 'shared:*:*/48'",
            "coalesce(nullif(substr(client, 8, instr(substr(client, 8), ':') - 1), ''), '0') || ':' || coalesce(nullif("
            "substr(substr(client, 8 + instr(substr(client, 8), ':')), 1, instr(substr(client, 8 + instr(substr(client, 8),"
            " ':')), ':') - 1), ''), '0')",
        ),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: the readiness check's own connection while this process exports (``_ping_apart``), and its lock
        self._apart: Any = None
        self._apart_lock = threading.Lock()

    # -- plumbing each backend provides --
    @abstractmethod
    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor inside one transaction: committed on exit, rolled back on error.  ``write=False``:
        it only reads (SQLite then holds off no writer meanwhile)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _connect_apart(self) -> Any:
        """A second connection, for readiness checks only: any thread may use it, and a read on it leaves
        no transaction open."""

    def _ping_apart(self) -> None:
        """Read the schema version on a connection of its own (``Storage.ping``), opened on first use and
        kept until ``_end_apart``: a check a second through a long export opened one each time (~11 ms on
        PostgreSQL at load 14, 150x the read itself).  A connection that failed is dropped: the next check
        opens another, so a database back after an outage reads as ready again."""
        with self._apart_lock:
            if self._apart is None:
                self._apart = self._connect_apart()
            try:
                self._apart.execute(PING_SQL).fetchone()
            except BaseException:
                self._close_apart()
                raise

    def _end_apart(self, wait: float = -1) -> None:
        """Close the readiness connection, if one is open (the export has ended, or the storage closes).
        ``wait``: seconds to wait for a check under way (-1: as long as it takes); past them it is left."""
        if self._apart_lock.acquire(timeout=wait):
            try:
                self._close_apart()
            finally:
                self._apart_lock.release()

    def _close_apart(self) -> None:
        conn, self._apart = self._apart, None
        if conn is not None:
            conn.close()

    def _sql(self, sql: str) -> str:
        return sql if self._param == "?" else sql.replace("?", self._param)

    def _exec(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def _lock_name(self, cur: Any, name: str) -> None:
        """Hold off other connections' transactions that lock ``name`` until this one ends (SQLite: BEGIN IMMEDIATE does)."""

    def _try_lock_name(self, cur: Any, name: str) -> bool:
        """``_lock_name`` if nobody holds it now, else False at once (SQLite: BEGIN IMMEDIATE has already waited)."""
        return True

    def _lock_key_inserts(self, cur: Any) -> None:
        """Hold off other connections' key inserts until this transaction ends (SQLite: BEGIN IMMEDIATE does)."""
