"""Retention: what the key server deletes, and when (keys 14 days after their validity ends, codes and
failed tries once expired, export records with their files, secrets and signing keys after them).
"""

from __future__ import annotations

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD
from bluezone.server.storage.queues import ExportQueues


class Retention(ExportQueues):
    """``purge``: every table's expired rows in one transaction."""

    def purge(self, before_interval: int, records_before: float, batches_before: float | None = None) -> int:
        """Drop keys that ended before ``before_interval``, and failure records and codes (used or
        not) that expired before ``records_before``: a code past its expiry opens nothing, and the
        table would otherwise grow for ever and make new codes collide with old ones.  With
        ``batches_before``, the records of export files whose day ended before it (their files gone)."""
        with self._transaction() as cur:
            # the expired keys' ids by their index (schema 8), then out of the queues by id (keys never exported:
            # a server off for weeks): PostgreSQL took a queue just emptied by an export for empty and walked
            # all its dead entries (1M: 0.1-0.3 s), when it would look up no expired key
            expired = self._exec(
                cur, "SELECT id FROM exposure_keys WHERE rolling_start + rolling_period < ? ORDER BY id", [before_interval]
            ).fetchall()
            if expired:
                for table in ("export_queue", "revision_queue", "key_revisions"):
                    self._dequeue(cur, table, np.array([i for (i,) in expired], np.int64))
            n = self._exec(
                cur, "DELETE FROM exposure_keys WHERE rolling_start + rolling_period < ?", [before_interval]
            ).rowcount
            self._exec(cur, "DELETE FROM venue_reports WHERE day < ?", [before_interval // ROLLING_PERIOD])
            if batches_before is not None:  # (a file whose check-ins are still kept stays recorded with them)
                self._exec(
                    cur,
                    "DELETE FROM batches WHERE end_timestamp < ?"
                    " AND id NOT IN (SELECT batch_id FROM venue_reports WHERE batch_id IS NOT NULL)",
                    [batches_before],
                )
            # an export day's files hold keys of that day at the latest, gone 14 days on: its secret a day after
            self._exec(cur, "DELETE FROM padding_secrets WHERE day < ?", [before_interval // ROLLING_PERIOD - 2])
            # and a signing key once the last file it signed has left (no roll-up reads that file again)
            self._exec(cur, "DELETE FROM export_signing_keys WHERE last_used < ?",
                       [(before_interval // ROLLING_PERIOD - 2) * DAY_SECONDS])
            self._exec(cur, "DELETE FROM code_tries WHERE window_start < ?", [records_before])
            self._exec(cur, "DELETE FROM codes WHERE expires_at < ?", [records_before])
        return max(n, 0)
