"""The store's purge and ingest as the daemon does them, for docs/benchmarks.md (the cost of zeroing deletions
and emptying the WAL after a purge).

    .venv/bin/python benchmarks/purge_bench.py [--rows 500000] [--hours 6] [--batches 200] [--per-rpi 1]
        [--build-without-secure-delete] [--json]

A store of ``--rows`` sightings over 15 days is purged an hour later ``--hours`` times (each purge deletes
the hour that aged out, as the daemon's hourly purge does), then ``--batches`` batches of 100 sightings are
added (the daemon's flushes).  Medians of each, wall and CPU; and the store's build (20 batches), once.
``--per-rpi N``: N consecutive sightings share an RPI (100: a real store's shape; 1, the default, every sighting
its own RPI, the worst case for what the store keeps per RPI: ``rpi_days``).  ``--build-without-secure-delete`` starts every
connection with ``secure_delete`` off, as SQLite builds without SQLITE_SECURE_DELETE do (Debian's has it on).
Run it from two trees in alternating processes to compare them (PYTHONPATH=TREE).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

START = 1_790_000_000.0
DAY = 86_400.0


def sightings(n: int, start: float, span: float, rng: np.random.Generator, per_rpi: int = 1) -> np.ndarray:
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = np.sort(start + rng.uniform(0, span, n))
    out["rpi"] = np.repeat(np.frombuffer(rng.bytes(16 * -(-n // per_rpi)), "V16"), per_rpi)[:n]
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rng.integers(-100, -40, n)
    out["tx_power"] = -128
    return out


def timed(job: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    job()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node.db"
        now = START + 15 * DAY
        with SightingStore.open(path, purge_now=START) as store:
            chunks = [sightings(len(chunk), START + chunk[0] / args.rows * 15 * DAY, 15 * DAY / 20, rng, args.per_rpi)
                      for chunk in np.array_split(np.arange(args.rows), 20)]
            build = timed(lambda: [store.add_sightings(chunk) for chunk in chunks])
            purges = []
            store.purge(now)
            for hour in range(1, args.hours + 1):
                at = now + hour * 3600
                purges.append(timed(lambda: store.purge(at)))
            batches = []
            t = now + args.hours * 3600
            for i in range(args.batches):
                batch = sightings(100, t + i, 1.0, rng, args.per_rpi)
                batches.append(timed(lambda: store.add_sightings(batch)))
        return {
            "rows": args.rows,
            "hours": args.hours,
            "per_rpi": args.per_rpi,
            "build_wall_s": build[0],
            "build_cpu_s": build[1],
            "build_without_secure_delete": args.build_without_secure_delete,
            "purge_wall_ms": 1e3 * statistics.median(w for w, _ in purges),
            "purge_cpu_ms": 1e3 * statistics.median(c for _, c in purges),
            "batch_wall_ms": 1e3 * statistics.median(w for w, _ in batches),
            "batch_cpu_ms": 1e3 * statistics.median(c for _, c in batches),
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--hours", type=int, default=6, help="hourly purges timed")
    ap.add_argument("--batches", type=int, default=200, help="batches of 100 sightings timed")
    ap.add_argument("--per-rpi", type=int, default=1, help="consecutive sightings sharing an RPI")
    ap.add_argument("--build-without-secure-delete", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.build_without_secure_delete:
        connect = sqlite3.connect

        def off_by_default(*a: object, **k: object) -> sqlite3.Connection:
            conn = connect(*a, **k)  # type: ignore[arg-type]
            conn.execute("PRAGMA secure_delete = OFF")
            return conn

        sqlite3.connect = off_by_default  # type: ignore[assignment]
    result = measure(args)
    print(json.dumps(result) if args.json else "\n".join(f"{k:28} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
