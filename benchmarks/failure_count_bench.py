"""What one IPv6 /48 spraying wrong codes leaves in the key server's database (loopback-free).

A /48 has 65,536 /64s, each allowed 10 failed codes an hour.  Up to schema 9 every failed try was a
row of code_failures, kept two days: ~655,000 rows an hour.  Schema 10 keeps one row per client and
window in code_tries, and the next try drops rows whose window ended.  Measured in one run: the
database's size after one hour of such failures in each layout (the old one grows by that every hour
for the two days it keeps them), and the median time of a publish's claim on the new table full.

    python benchmarks/failure_count_bench.py [--clients 65536] [--tries 10] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bluezone.server.storage import SQLiteStorage, schema

NOW = 1_700_000_000.0


def _client(i: int) -> str:
    return f"2001:db8:1:{i:x}::/64"


def old_layout_bytes(path: Path, clients: int, tries: int) -> int:
    """A schema-9 database after an hour of ``tries`` failures from each of ``clients``."""
    version = schema.SCHEMA_VERSION
    schema.SCHEMA_VERSION = 9
    try:
        storage = SQLiteStorage(path)
    finally:
        schema.SCHEMA_VERSION = version
    rows = [(_client(i), NOW - (i * tries + j) % 3600, "invalid") for i in range(clients) for j in range(tries)]
    with storage._transaction() as cur:
        cur.executemany("INSERT INTO code_failures (client, at, reason) VALUES (?, ?, ?)", rows)
    storage.close()
    return os.path.getsize(path)


def new_layout(path: Path, clients: int, tries: int, repeats: int) -> tuple[int, float]:
    """The schema-10 database after the same hour, and the median seconds of one claim_code_try then."""
    storage = SQLiteStorage(path)
    rows = [(_client(i), NOW - i % 3600, tries) for i in range(clients)]
    with storage._transaction() as cur:
        cur.executemany("INSERT INTO code_tries (client, window_start, failures) VALUES (?, ?, ?)", rows)
    times = []
    for k in range(repeats):
        start = time.perf_counter()
        token = storage.claim_code_try(f"192.0.2.{k % 250}", NOW, NOW - 3600, tries)
        times.append(time.perf_counter() - start)
        assert token is not None
    storage.close()
    return os.path.getsize(path), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=65_536)
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = old_layout_bytes(Path(tmp) / "old.db", args.clients, args.tries)
        new, claim = new_layout(Path(tmp) / "new.db", args.clients, args.tries, args.repeats)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    print(f"one hour of {args.tries} failures from each of {args.clients:,} clients: schema 9 {old / 2**20:.1f} MiB"
          f" (x48 hours kept: {48 * old / 2**30:.2f} GiB), schema 10 {new / 2**20:.1f} MiB (not growing with time);"
          f" a claim with the table full: {claim * 1000:.2f} ms (median of {args.repeats})")


if __name__ == "__main__":
    main()
