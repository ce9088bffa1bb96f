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


class Database(ABC):
    """One connection and the transactions on it; each job's part of ``Storage`` builds on this."""

    _param = "?"
    _serial = "INTEGER"
    _int64 = "INTEGER"  # SQLite: an INTEGER PRIMARY KEY is the rowid, so a queue is one small b-tree of ids
    _blob = "BLOB"
    _utf8 = True  # SQLite: the database stores text as UTF-8 (the default; UTF-16 if made so before)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- plumbing each backend provides --
    @abstractmethod
    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor inside one transaction: committed on exit, rolled back on error.  ``write=False``:
        it only reads (SQLite then holds off no writer meanwhile)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _ping_apart(self) -> None:
        """Read the schema version on a connection of its own, opened and closed for it (``Storage.ping``)."""

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
