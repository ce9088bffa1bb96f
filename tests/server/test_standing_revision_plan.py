"""A key's standing revision (``queues.STANDING_REVISION``) is found through its key, not by reading every
later revision.  PostgreSQL read MAX(r.id) as the first row of key_revisions' primary key, backwards, whose
key_id matched, whenever the table had no statistics yet: schema 17's migration fills it and queues from it
in one transaction, so it read every revision above each queued key's (30,000 revisions, 3,000 queued: 37 s,
quadratic; srv19 measured the migration on SQLite only)."""

from __future__ import annotations

from typing import Any

from bluezone.server.storage import open_storage
from bluezone.server.storage.queues import STANDING_REVISION

KEYS = 3000


def _removed_by_filter(plan: Any) -> int:
    """Rows every node of an EXPLAIN (ANALYZE, FORMAT JSON) plan read and dropped."""
    if isinstance(plan, list):
        return sum(_removed_by_filter(p) for p in plan)
    if isinstance(plan, dict):
        return int(plan.get("Rows Removed by Filter", 0)) + sum(_removed_by_filter(v) for v in plan.values())
    return 0


def test_the_oldest_keys_standing_revision_reads_its_own_rows_only(postgres_dsn: str) -> None:
    storage = open_storage(postgres_dsn)
    try:
        with storage._transaction() as cur:  # filled and read in one transaction, as the migration does
            cur.execute(
                "INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk, report_type,"
                " received_at, revised_report_type, revised_at) SELECT decode(lpad(to_hex(g), 32, '0'), 'hex'),"
                f" 2940000, 144, 0, 2, 0, 1, 1 FROM generate_series(1, {KEYS}) g"
            )
            cur.execute("INSERT INTO key_revisions (key_id, report_type, revised_at) SELECT id, 1, 1 FROM exposure_keys"
                        " ORDER BY id")
            oldest = cur.execute("SELECT MIN(id) FROM exposure_keys").fetchone()[0]
            (plan,) = cur.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT {STANDING_REVISION} FROM exposure_keys k WHERE k.id = %s",
                [oldest],
            ).fetchone()
            found = cur.execute(f"SELECT {STANDING_REVISION} FROM exposure_keys k WHERE k.id = %s", [oldest]).fetchone()
            first = cur.execute("SELECT MIN(id) FROM key_revisions").fetchone()
    finally:
        storage.close()
    assert found == first
    assert _removed_by_filter(plan) < 10  # was KEYS - 1: every later revision read

