"""The store's reads of sightings that a check and ``status`` make, on a busy 14-day store, beside older
versions of bluezone in the same run (each read timed in a fresh process per version, alternating).

    .venv/bin/python benchmarks/store_read_bench.py [--sightings 1000000] [--repeat 5] [--baseline-src DIR ...]

``--baseline-src DIR`` holds an older ``bluezone/`` (``git archive <commit> bluezone | tar -x -C DIR``).
Each version's store (the same rows, written once by that version in ``--workdir``; every sighting its
own RPI: the worst case for ``heard_rpis``)
is opened as ``check`` opens it (``purge_now`` the wall clock); each read is timed on its own, CPU
seconds, best of three within a process, median over ``--repeat`` processes."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Run in the child, with the version under test first on sys.path: each read's CPU seconds as JSON.
CHILD = """
import json, sys, time
from bluezone.proximity.store import SightingStore
db, now = sys.argv[1], float(sys.argv[2])
day = 86400.0
reads = {
    "heard_rpis()": lambda s: s.heard_rpis(),
    "heard_rpis(14 days)": lambda s: s.heard_rpis(now - 14 * day, now + day),
    "heard_intervals()": lambda s: s.heard_intervals(),
    "count_usable(14 days)": lambda s: s.count_usable(now - 14 * day, now + day),
    "usable_sightings(1 day)": lambda s: s.usable_sightings(now - 2 * day, now - day),
    "sightings_with_rpis(1 in 1,000)": lambda s: s.sightings_with_rpis(some, now - 14 * day, now + day),
    "stats()": lambda s: s.stats(),
}
out = {}
with SightingStore.open(db, create=False, purge_now=now) as store:
    some = store.heard_rpis()[0][::1000]
    for name, read in reads.items():
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            read(store)
            best = min(best, time.process_time() - start)
        out[name] = best
print(json.dumps(out))
"""


#: Run in the child, with the version under test first on sys.path: its own store of the saved rows.
WRITE = """
import sys, time, numpy
from bluezone.proximity.store import SightingStore
with SightingStore.open(sys.argv[1], purge_now=time.time()) as store:
    store.add_sightings(numpy.load(sys.argv[2]))
"""


def make_stores(workdir: Path, sightings: int, versions: dict[str, Path]) -> dict[str, Path]:
    """Each version's store (its own schema) of the same ``sightings`` random sightings over the 14 days
    up to tomorrow's UTC midnight, made once."""
    import numpy as np

    from bluezone.crypto.intervals import DAY_SECONDS
    from bluezone.matching.benchmark import synthetic_data

    tomorrow = (int(time.time()) // DAY_SECONDS + 1) * DAY_SECONDS
    rows = workdir / f"reads-{sightings}-{tomorrow}.npy"
    if not rows.exists():
        np.save(rows, synthetic_data(1, sightings, seed=0, planted=0, end_time=tomorrow)[1])
    stores = {}
    for name, src in versions.items():
        stores[name] = workdir / f"{rows.stem}-{abs(hash(str(src)))}.db"
        if not stores[name].exists():
            subprocess.run([sys.executable, "-c", WRITE, str(stores[name]), str(rows)], check=True,
                           env={**os.environ, "PYTHONPATH": str(src)}, cwd=workdir)
    return stores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, nargs="*", default=[])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-store-read-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    versions = {"this tree": ROOT, **{f"baseline {src.name}": src.resolve() for src in args.baseline_src}}
    stores, now = make_stores(args.workdir, args.sightings, versions), time.time()
    load = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in versions}
    for _ in range(args.repeat):
        for name, src in versions.items():  # alternating: load from elsewhere falls on all alike
            env = {**os.environ, "PYTHONPATH": str(src)}
            done = subprocess.run([sys.executable, "-c", CHILD, str(stores[name]), str(now)], capture_output=True, text=True,
                                  check=True, env=env, cwd=args.workdir)
            runs[name].append(json.loads(done.stdout))
    medians = {name: {read: round(statistics.median(r[read] for r in rs) * 1e3, 2) for read in rs[0]} for name, rs in runs.items()}
    print(json.dumps({"sightings": args.sightings, "median_cpu_ms": medians,
                      "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]]}))


if __name__ == "__main__":
    main()
