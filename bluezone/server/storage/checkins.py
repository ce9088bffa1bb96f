"""Check-in reports (CWA CheckInProtectedReports, fakes among them) waiting for a venue-warning file,
and the record of the file that published them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from bluezone.errors import ServerStorageError
from bluezone.server.storage.batches import BatchRecord, ExportBookkeeping


class CheckInReports(ExportBookkeeping):
    """Venue check-in reports read for export and marked with the file that carried them."""

    def pending_venue_reports(self, min_day: int) -> list[tuple[int, int, bytes]]:
        """(id, day, report) of every venue report not yet exported whose day is ``min_day`` or later."""
        with self._transaction() as cur:
            rows = self._exec(
                cur, "SELECT id, day, report FROM venue_reports WHERE batch_id IS NULL AND day >= ? ORDER BY id", [min_day]
            ).fetchall()
        return [(int(i), int(d), bytes(r)) for i, d, r in rows]

    def add_venue_batch(self, record: BatchRecord, report_ids: Sequence[int]) -> None:
        """Record a written venue-warning file and mark its reports exported, in one transaction; if
        another export published some of them meanwhile, nothing is recorded (ServerStorageError) and
        the caller drops its file, as ``add_batches`` does for keys."""
        with self._transaction() as cur:
            batch_id = self._record_batch(cur, record)
            ids = np.sort(np.asarray(report_ids, dtype=np.int64))
            if self._mark_exported(cur, "venue_reports", "batch_id", np.full(len(ids), batch_id), ids) != len(ids):
                raise ServerStorageError(
                    f"another export published, or a code revocation withheld, some of these {len(ids)} check-ins"
                    " meanwhile: nothing recorded (the next export writes the rest)"
                )

    def _mark_exported(self, cur: Any, table: str, column: str, batch_ids: np.ndarray, ids: np.ndarray) -> int:
        """Set ``column`` (venue reports' batch_id) of the rows ``ids`` (ascending) of ``table`` to ``batch_ids``,
        where it is still NULL; how many rows were set.

        One statement, one pass over the rows in the table's own order: each (id, batch) is packed into
        one integer of a JSON array that SQLite unpacks as it goes.  A million keys: ~1.4x faster than
        one prepared UPDATE per row, which was 2.4x faster than one ``IN (json_each)`` per batch (that
        visits the table once per batch, its ids scattered through it)."""
        if not len(ids):
            return 0
        shift = int(batch_ids.max()).bit_length()
        if int(ids.max()).bit_length() + shift > 62:  # not in an int64: one UPDATE per row instead
            cur.executemany(
                f"UPDATE {table} SET {column} = ? WHERE id = ? AND {column} IS NULL", zip(batch_ids.tolist(), ids.tolist())
            )
            return int(cur.rowcount)
        packed = (ids.astype(np.int64) << shift) | batch_ids.astype(np.int64)
        return int(self._exec(
            cur,
            f"UPDATE {table} SET {column} = j.value & ? FROM json_each(?) AS j"
            f" WHERE {table}.id = j.value >> ? AND {table}.{column} IS NULL",
            [(1 << shift) - 1, json.dumps(packed.tolist()), shift],
        ).rowcount)

    def count_venue_reports(self) -> int:
        with self._transaction() as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM venue_reports").fetchone()[0])
