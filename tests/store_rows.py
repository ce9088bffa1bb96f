"""What a store's file holds, read past the store: its reads hide rows past the retention that a purge has
not deleted yet, and a test of the purge or the rewrite must see those."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def rows_in_file(path: Path, table: str) -> int:
    """Rows of ``table`` in the store's file at ``path``, on a connection of this call's own."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()
