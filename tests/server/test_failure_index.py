"""Every publish counts its client's failed codes of the last hour.  With only an index on the
time, that count read every failure of the hour: 500,000 of them (the /64s of one IPv6 /48, 10
each) made each publish, valid ones too, cost about 0.5 s of database time (schema 6 indexes
(client, at))."""

from __future__ import annotations

from pathlib import Path

from bluezone.server.storage import SQLiteStorage

NOW = 1_700_000_000.0


def test_counting_a_clients_failures_reads_only_that_client(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "s.db")
    try:
        for i in range(50):
            storage.record_failure(f"2001:db8:0:{i:x}::/64", NOW - i, "invalid")
        storage.record_failure("192.0.2.1", NOW, "invalid")
        assert storage.count_failures(NOW - 3600, "192.0.2.1") == 1
        assert storage.count_failures(NOW - 3600) == 51
        plan = storage._conn.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM code_failures WHERE at >= ? AND client = ?", [NOW - 3600, "x"]
        ).fetchall()
        detail = " ".join(str(row[-1]) for row in plan)
        assert "code_failures_client" in detail and "client=?" in detail, detail
    finally:
        storage.close()
