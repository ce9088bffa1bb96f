"""The per-client failed-code count every publish makes, with many failures on record (loopback-free).

An attacker owning an IPv6 /48 has 65,536 /64s, each allowed 10 failed codes an hour: the
code_failures table then holds ~650,000 rows of the last hour.  Each publish (valid ones too)
counts its own client's failures first.  Measured in one run on the same rows: ``before`` with only
the index on time (schema 5), ``after`` with the (client, at) index of schema 6.  Medians of --repeats.

    python benchmarks/failure_count_bench.py [--failures 500000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bluezone.server.storage import SQLiteStorage

NOW = 1_700_000_000.0


def timed(storage: SQLiteStorage, repeats: int) -> float:
    """Median seconds of one count_failures call for a client with no failures."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        storage.count_failures(NOW - 3600, "192.0.2.1")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storage = SQLiteStorage(Path(tmp) / "s.db")
        rows = [(f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64", NOW - (i % 3600), "invalid") for i in range(args.failures)]
        with storage._transaction() as cur:
            cur.executemany("INSERT INTO code_failures (client, at, reason) VALUES (?, ?, ?)", rows)
        after = timed(storage, args.repeats)
        storage._conn.execute("DROP INDEX code_failures_client")
        before = timed(storage, args.repeats)
        storage.close()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"count_failures with {args.failures:,} failures in the hour: before {before * 1000:.2f} ms, "
          f"after {after * 1000:.3f} ms ({before / max(after, 1e-9):,.0f}x)")


if __name__ == "__main__":
    main()
