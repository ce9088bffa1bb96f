"""The daily rewrite of a purged store (VACUUM at the first purge of a UTC day, docs/proximity.md "What a
deletion leaves in the file"): its cost beside an hourly purge, for docs/benchmarks.md.

    PYTHONPATH=TREE .venv/bin/python benchmarks/purge_rewrite_bench.py [--rows 1000000] [--per-rpi 100] [--repeat 3]

A store of ``--rows`` sightings over 15 days (benchmarks/purge_bench.py's shape: ``--per-rpi 100`` is a real
store's) is copied afresh for each round, then purged as the daemon does at 00:30 UTC (the first purge of the
day: deletes the hour that aged out and, from this change, rewrites the file), at 01:30 (the next, whose page
cache the rewrite emptied) and at 02:30-04:30 (hourly purges).
Each is timed (wall, CPU, bytes written by this process: /proc/self/io wchar, the WAL's and VACUUM's temporary
copy included) while a second connection inserts a row every 20 ms as the daemon's writer would, and the
longest of its waits is reported.  Run it from two trees in alternating processes to compare (PYTHONPATH=TREE).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from purge_bench import DAY, START, sightings

from bluezone.proximity.store import SightingStore


def _written() -> int:
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["wchar"])


def _writer(path: Path, stop: threading.Event, waits: list[float]) -> None:
    """A row every 20 ms from another connection; each insert's wall time (the wait for the purge's lock)."""
    conn = sqlite3.connect(path, timeout=60)
    while not stop.wait(0.02):
        began = time.perf_counter()
        with conn:
            conn.execute("INSERT INTO daemon_state (name, value, updated_at) VALUES ('bench', '', 0)"
                         " ON CONFLICT(name) DO UPDATE SET updated_at = updated_at + 1")
        waits.append(time.perf_counter() - began)
    conn.close()


def timed_purge(store: SightingStore, now: float) -> dict[str, float]:
    stop, waits = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(store.path, stop, waits))
    writer.start()
    time.sleep(0.1)
    wall, cpu, written = time.perf_counter(), time.process_time(), _written()
    store.purge(now)
    result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "written_mb": (_written() - written) / 1e6}
    time.sleep(0.1)
    stop.set()
    writer.join()
    result["writer_longest_wait_s"] = max(waits)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-rpi", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-purge-rewrite-bench")
    args = ap.parse_args()
    args.workdir.mkdir(exist_ok=True)
    # whole days: the store's first day starts at a UTC midnight, so 00:30 fifteen days on deletes its first half hour
    start = START // DAY * DAY
    base = args.workdir / f"store-{args.rows}-x{args.per_rpi}.db"
    if not base.exists():
        rng = np.random.default_rng(0)
        with SightingStore.open(base, purge_now=start) as store:
            for chunk in np.array_split(np.arange(args.rows), 60):
                store.add_sightings(sightings(len(chunk), start + chunk[0] / args.rows * 15 * DAY, 15 * DAY / 60, rng, args.per_rpi))
    rounds: dict[str, list[dict[str, float]]] = {"first_of_day": [], "next_hour": [], "hourly": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            path = Path(tmp) / "node.db"
            shutil.copy(base, path)
            with SightingStore.open(path, purge_now=start + 14 * DAY) as store:  # (nothing to delete yet)
                store.purge(start + 14 * DAY)
                rounds["first_of_day"].append(timed_purge(store, start + 14 * DAY + 1800))
                rounds["next_hour"].append(timed_purge(store, start + 14 * DAY + 5400))  # (a cache the rewrite emptied)
                rounds["hourly"] += [timed_purge(store, start + 14 * DAY + 1800 + hour * 3600) for hour in (2, 3, 4)]
                size = path.stat().st_size
    out = {"rows": args.rows, "per_rpi": args.per_rpi, "file_mb": size / 1e6, "load": os.getloadavg()[0]}
    for name, runs in rounds.items():
        for key in runs[0]:
            out[f"{name}_{key}"] = round(statistics.median(r[key] for r in runs), 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
