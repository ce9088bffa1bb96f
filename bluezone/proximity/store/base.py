"""What every part of ``SightingStore`` works on: one SQLite connection (and the store's path), and a
time range as SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils


class StoreBase:
    """The connection and path every part of the store reads and writes through."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path
        self._db: sqlite_utils.Database | None = None
        self.purged_on_open: dict[str, Any] | None = None  # what ``open`` purged (``purge``'s result)

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

    @staticmethod
    def _time_filter(since: float | None, until: float | None) -> tuple[str, list[float]]:
        where, params = "", []
        if since is not None:
            where += " AND time >= ?"
            params.append(float(since))
        if until is not None:
            where += " AND time < ?"
            params.append(float(until))
        return where, params
