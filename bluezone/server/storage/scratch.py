"""The benchmark's claim on a database: it adds random keys and re-exports every key, so it may use only
a scratch database, never a key server's own.
"""

from __future__ import annotations

from bluezone.errors import NotScratchDatabaseError
from bluezone.server.storage.queues import ExportQueues


class BenchmarkScratch(ExportQueues):
    """Marking a database as a benchmark's scratch, and putting every key back in the queue."""

    def claim_for_benchmark(self) -> None:
        """Mark the database as a benchmark's scratch, or refuse one that holds a key server's own data.

        The benchmark adds random keys and re-exports every key, forgetting the batches: on a real
        server's database it would publish nonsense and keep the real keys waiting from ever being
        published.  An empty database, or one an earlier benchmark marked, may be used."""
        with self._transaction() as cur:
            if self._exec(cur, "SELECT 1 FROM meta WHERE name = 'benchmark_scratch'").fetchone():
                return
            held = [
                table
                for table in ("exposure_keys", "codes", "batches", "venue_reports")
                if self._exec(cur, f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            ]
            if held:
                raise NotScratchDatabaseError(
                    f"the database holds a key server's data ({', '.join(held)}): the benchmark adds random keys and "
                    "re-exports every key, so it needs a scratch database (a new one, or one an earlier benchmark used)"
                )
            self._exec(cur, "INSERT INTO meta (name, value) VALUES ('benchmark_scratch', '1')")

    def release_from_benchmark(self) -> None:
        """A key server's command uses this database: an earlier benchmark's mark goes, so that a later
        benchmark refuses it once it holds the server's data (marked, it was taken as scratch for good)."""
        with self._transaction(write=False) as cur:
            marked = self._exec(cur, "SELECT 1 FROM meta WHERE name = 'benchmark_scratch'").fetchone()
        if marked:
            with self._transaction() as cur:
                self._exec(cur, "DELETE FROM meta WHERE name = 'benchmark_scratch'")

    def reset_exported(self) -> None:
        """Put every key back in the export queue and forget the batches (benchmarks only)."""
        with self._transaction() as cur:
            self._exec(cur, "DELETE FROM export_queue")
            self._exec(cur, "DELETE FROM revision_queue")
            self._exec(cur, "UPDATE key_revisions SET carried = 0")
            self._queue_keys(cur, "export_queue", "1 = 1")
            self._queue_keys(cur, "revision_queue", "k.revised_at IS NOT NULL")
            self._exec(cur, "DELETE FROM batches")
