"""What recording the adapter per sighting (schema 14) costs the daemon's writes, A/B against another tree.

    .venv/bin/python benchmarks/adapter_ingest_bench.py --baseline /tmp/main-tree [--rows 200000] [--rounds 7]

Each round writes ``--rows`` random sightings (``proximity_bench.random_rows``, seed 0) into a new store in 2,000-row
batches, as the daemon's flush does, in a fresh process of each tree, alternating which goes first; this tree names
the adapter (``add_sightings(rows, addresses, adapter)``), the baseline tree writes as it does.  Reported: the
medians of the writes' CPU time, their ratio, and the file's bytes per sighting once its WAL is checkpointed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]

ROUND = r"""
import inspect, json, sys, tempfile, time
from pathlib import Path
# the tree named, not an editable install's (its finder comes before PYTHONPATH)
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path[:0] = [sys.argv[3], sys.argv[3] + "/benchmarks"]
from proximity_bench import random_rows
from bluezone.proximity.store import SightingStore
rows = random_rows(int(sys.argv[1]))
named = "adapter" in inspect.signature(SightingStore.add_sightings).parameters
path = Path(sys.argv[2]) / "s.db"
with SightingStore.open(path) as store:
    started = time.process_time()
    for i in range(0, len(rows), 2000):
        batch = rows[i : i + 2000]
        if named:
            store.add_sightings(batch, [None] * len(batch), "00:1A:7D:DA:71:13")
        else:
            store.add_sightings(batch, [None] * len(batch))
    cpu = time.process_time() - started
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
import bluezone
print(json.dumps({"cpu": cpu, "bytes": path.stat().st_size / len(rows), "named": named, "tree": bluezone.__file__}))
"""


def one_round(tree: Path, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        out = subprocess.run([sys.executable, "-c", ROUND, str(rows), scratch, str(tree)], env=env, check=True,
                             capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the tree to compare with")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    trees = {"this": HERE, "baseline": args.baseline.resolve()}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name in (("this", "baseline") if r % 2 == 0 else ("baseline", "this")):
            results[name].append(one_round(trees[name], args.rows))
    cpu = {name: statistics.median(x["cpu"] for x in rs) for name, rs in results.items()}
    for name, rs in results.items():
        print(f"{name}: median {cpu[name]:.3f} s CPU for {args.rows:,} rows ({args.rows / cpu[name]:,.0f} rows/s),"
              f" {rs[0]['bytes']:.1f} bytes a sighting, adapter named: {bool(rs[0]['named'])} ({rs[0]['tree']});"
              f" rounds {[round(x['cpu'], 3) for x in rs]}")
    print(f"ratio this/baseline: {cpu['this'] / cpu['baseline']:.3f}")


if __name__ == "__main__":
    main()
