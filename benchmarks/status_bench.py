"""`bluezone server status` while many IPv4 addresses fail codes (a botnet guessing), or many IPv6 /48s of
providers' /32s, on SQLite or PostgreSQL, for one or two versions of bluezone alternating:

    git archive <commit> bluezone | tar -x -C DIR
    .venv/bin/python benchmarks/status_bench.py [--rows 100000] [--ipv6] [--repeat 5] [--baseline-src DIR]
        [--postgres URL] [--json]

Each version gets a database written by its own code (untimed; SQLite files in ``--workdir``, or one database
per version on the ``--postgres`` server) whose failed-try table holds ``--rows`` IPv4 addresses in the current
window, a third of them in one /16 (the rest spread over 255 others), as the per-client budgets leave them after
an attack; with ``--ipv6``, as many /48s' shared budgets, a third in one /32 (the rest spread thin).  Each run is a fresh process
importing one version (``PYTHONPATH``): it times one ``server_status`` call (what `server status` reads and
computes: the busiest /16 or /32 among them).  Medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bench import _postgres_database  # noqa: E402  (a directory that is not a checkout)
from tree_passes import alternate, child, trees  # noqa: E402


def _clients(rows: int, seed: int, ipv6: bool) -> list[str]:
    """``rows`` distinct failing clients: IPv4 addresses, a third in 203.0.0.0/16 and the rest in 255 other /16s;
    or (``ipv6``) /48s' shared budgets, a third in 2001:cb00::/32 and the rest spread over many other /32s."""
    import ipaddress

    import numpy as np

    rng = np.random.default_rng(seed)
    busy = min(rows // 3, 65_536)
    numbers = set((203 << 24 | rng.choice(65_536, busy, replace=False)).tolist())
    while len(numbers) < rows:
        numbers.update(((rng.integers(1, 256, rows) << 24) | rng.integers(0, 1 << 24, rows)).tolist())
    ordered = sorted(numbers)[: rows]
    if ipv6:  # the same numbers, their high half a /32 (2001:cb00::/32 the busy one), their low half a /48 within it
        return [f"shared:{ipaddress.IPv6Network((0x2001 << 112 | (n >> 16) << 96 | (n & 0xffff) << 80, 48))}" for n in ordered]
    return [f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in ordered]


def _fill(db: str, rows: int, seed: int, now: float, ipv6: bool) -> None:
    """The failed-try rows, written once with the driver itself (a publish would take hours for 100,000)."""
    from bluezone.server.storage import open_storage

    storage = open_storage(db)
    try:
        if storage.count_try_rows() == rows:
            return
    finally:
        storage.close()
    values = [(client, now, 3) for client in _clients(rows, seed, ipv6)]
    if "://" in db:
        import psycopg

        with psycopg.connect(db) as conn:
            conn.execute("DELETE FROM code_tries")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO code_tries (client, window_start, failures) VALUES (%s, %s, %s)", values)
    else:
        import sqlite3

        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM code_tries")
            conn.executemany("INSERT INTO code_tries (client, window_start, failures) VALUES (?, ?, ?)", values)
        conn.close()


def worker(db: str, rows: int, seed: int, ipv6: bool) -> dict[str, Any]:
    """One run in this process, with whichever ``bluezone`` is on the path."""
    import bluezone
    from bluezone.server.status import server_status
    from bluezone.server.storage import open_storage

    now = time.time()
    _fill(db, rows, seed, now - 60, ipv6)
    storage = open_storage(db)
    t0 = time.perf_counter()
    status = server_status(storage, now)
    seconds = time.perf_counter() - t0
    storage.close()
    return {"status_seconds": seconds, "busiest": status.busiest_network if ipv6 else status.busiest_ipv4_network,
            "storage": type(storage).__name__, "src": bluezone.__file__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-src", type=Path, help="directory holding an older bluezone/")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-status-bench")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL instead of SQLite (postgresql://...)")
    parser.add_argument("--ipv6", action="store_true", help="IPv6 /48s of many /32s failing, not IPv4 addresses")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.seed, args.ipv6)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    versions = trees(parser, args)
    named = {src: name for name, src in versions.items()}

    def one(src: Path) -> dict[str, Any]:
        label = f"{named[src]}_{args.rows}_{args.seed}{'_ipv6' if args.ipv6 else ''}"
        db = (_postgres_database(args.postgres, f"bluezone_status_bench_{label}") if args.postgres
              else str(args.workdir / f"{label}.db"))
        done = child(src, [str(Path(__file__).resolve()), "--worker", db, "--rows", str(args.rows), "--seed", str(args.seed),
                           *(["--ipv6"] if args.ipv6 else [])])
        if not args.json:
            print(f"{named[src]}: {done}", file=sys.stderr)
        return done

    runs = alternate(versions, args.repeat, one)
    result: dict[str, Any] = {"backend": "PostgreSQL" if args.postgres else "SQLite", "rows": args.rows, "ipv6": args.ipv6,
                              "repeat": args.repeat, "load_average": os.getloadavg()}
    for name, rows in runs.items():
        result[name] = {
            "status_seconds": statistics.median(row["status_seconds"] for row in rows),
            "status_seconds_runs": [round(row["status_seconds"], 4) for row in rows],
            "busiest": rows[0]["busiest"],
        }
    if len({json.dumps(row["busiest"]) for rows in runs.values() for row in rows}) != 1:
        raise SystemExit(f"the runs named different networks: {runs}")
    if "baseline" in result:
        result["speedup_vs_baseline"] = result["baseline"]["status_seconds"] / result["now"]["status_seconds"]
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
