"""What a real check's exposure step costs a window against a stored receiver context, beside an older tree.

    .venv/bin/python benchmarks/stored_context_bench.py [--phones 80] [--contacts 60] [--passes 3]
        [--repeat 5] [--baseline-src DIR] [--json]

The store (SQLite in memory, written by the tree measured) holds one day: ``--phones`` neighbours around
for ten busy hours and one all day (so the quiet hours' minutes have too few other links and ask for the
day's reference, which reads the day), every RPI heard 16 times, and ``--contacts`` diagnosis keys each
met once, 5-40 minutes, somewhere in the day (``tests/matching/matching_helpers``).  Each pass is a fresh
interpreter importing bluezone from this tree or ``--baseline-src`` (a ``git archive`` of an older
commit), which runs ``check_store`` (the distinct RPIs, the keys derived, the rows found read, every window
judged with the default scorer against a ``StoredReceiverContext``) ``--repeat`` times and reports the CPU
seconds (median) and a hash of the exposures; passes alternate between the trees.  Both trees must hash
the same: a faster form that changes an exposure is no speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CHILD = r"""
import hashlib, json, statistics, sys, time
sys.path.insert(0, sys.argv[1])  # tests/matching: the scene's helpers, built on the tree imported
import numpy as np
from matching_helpers import DAY, SCORERS, encounter, make_keys, neighbours
import bluezone.matching.receiver as module
from bluezone.matching.check import check_store
from bluezone.proximity.store import SightingStore
phones, contacts, repeat = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(18)
teks = [bytes(rng.bytes(16)) for _ in range(contacts)]
parts = [neighbours(rng, DAY + 48, 60, phones, 16), neighbours(rng, DAY, 144, 1, 16)]
for tek in teks:
    parts.append(encounter(tek, DAY + int(rng.integers(0, 140)), int(rng.integers(5, 40)), rssi=int(rng.integers(-90, -60))))
rows = np.concatenate(parts)
store = SightingStore.open(":memory:")
store.add_sightings(rows[rng.permutation(len(rows))])  # rowids not in time order, as a daemon's batches leave them
keys = make_keys([(tek, DAY, 144) for tek in teks], risk=3)
scorer = SCORERS["bluezone"]
check_store(keys, store, scorer)  # warm: first calls import and allocate
cpu = []
for _ in range(repeat):
    t = time.process_time()
    count, exposures = check_store(keys, store, scorer)
    cpu.append(time.process_time() - t)
digest = hashlib.sha256(repr([e.as_dict() for e in exposures]).encode()).hexdigest()[:16]
print(json.dumps({"src": module.__file__, "s": statistics.median(cpu), "windows": len(exposures),
                  "sightings": len(rows), "hash": digest}))
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))  # tree_passes.py, beside this script (also when loaded by path)
    import tree_passes
    from check_bench import _at_least_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=_at_least_one, default=80)
    parser.add_argument("--contacts", type=_at_least_one, default=60)
    parser.add_argument("--repeat", type=_at_least_one, default=5, help="checks within a pass (median)")
    tree_passes.add_options(parser)
    args = parser.parse_args(argv)
    trees = tree_passes.trees(parser, args)
    argv_child = ["-c", CHILD, str(HERE.parent / "tests" / "matching"), str(args.phones), str(args.contacts), str(args.repeat)]
    passes = tree_passes.alternate(trees, args.passes, lambda src: tree_passes.child(src, argv_child))
    first = passes["now"][0]
    report: dict[str, Any] = {
        "sightings": first["sightings"], "windows": first["windows"], "passes": args.passes, "load": os.getloadavg()[0], "trees": {},
    }
    for name, runs in passes.items():
        seconds = statistics.median(r["s"] for r in runs)
        report["trees"][name] = {
            "src": str(trees[name]),
            "check_cpu_s_median": round(seconds, 4),
            "ms_per_window": round(seconds / max(first["windows"], 1) * 1e3, 3),
            "check_cpu_s_passes": [round(r["s"], 4) for r in runs],
            "hash": tree_passes.one_hash(runs),
        }
    tree_passes.compare(report, "check_cpu_s_median", "same_exposures", "ratio_baseline_over_now")
    lines = [f"{report['sightings']} sightings, {report['windows']} windows, {args.passes} alternating passes, "
             f"load {report['load']:.2f}; CPU s a check (median)"]
    lines += [f"{name:>9}: {t['check_cpu_s_median']} s ({t['ms_per_window']} ms a window) {t['check_cpu_s_passes']}"
              for name, t in report["trees"].items()]
    return tree_passes.finish(report, args, lines, ("ratio_baseline_over_now", "same_exposures"))


if __name__ == "__main__":
    main()
