"""What the bluezone scorer's verdict credit costs a window, beside an older tree in the same run.

    .venv/bin/python benchmarks/verdict_bench.py [--windows 400] [--passes 3] [--repeat 5]
        [--baseline-src DIR] [--json]

The windows are what the simulator's receivers store (``tests/matching/matching_helpers.scanned``: a
2-s scan every 10 s, adverts at 4.5 Hz, 20 % lost) for pairs near 18-30 minutes, scored bare (no
receiver context): the verdict's own cost, not the reference's.  Each pass is a fresh interpreter
that imports bluezone from this tree (or from ``--baseline-src``, e.g. a ``git archive`` of an older
commit), scores every window ``--repeat`` times with each credit below, alternating, and reports
the CPU microseconds a window (median of its repeats) and a hash of every Score; passes alternate
between the trees, and the medians over the passes are printed with the ratios.  Both trees must
give the same hash for every credit: a faster form that changes a verdict is no speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The credits compared: the earlier verdict at 15 minutes and each of the verdict's own credits.
CREDITS = {
    "same@15": {"verdict_credit": "same", "close_contact_minutes": 15.0},
    "present": {"verdict_credit": "present"},
    "ends": {"verdict_credit": "ends"},
    "span (default)": {},
}

CHILD = r"""
import hashlib, json, random, statistics, sys, time
sys.path.insert(0, sys.argv[1])  # tests/matching: the scanned() helper, built on the tree imported
from matching_helpers import scanned
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
import bluezone.matching.bluezone_scorer as module
credits, count, repeat = json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(17)
windows = []
for i in range(count):
    start = rng.uniform(1.0, 20.0)
    windows.append(scanned(start, start + rng.uniform(18.0, 30.0), seed=i))
scorers = {name: BluezoneScorer(BluezoneConfig.from_mapping(s)) for name, s in credits.items()}
for scorer in scorers.values():  # warm: first calls import and allocate
    for w in windows[:20]:
        scorer.score(w)
cpu = {name: [] for name in scorers}
digest = {}
for _ in range(repeat):
    for name, scorer in scorers.items():
        t = time.process_time()
        scores = [scorer.score(w) for w in windows]
        cpu[name].append((time.process_time() - t) / count * 1e6)
        digest[name] = hashlib.sha256(repr([s.as_dict() for s in scores]).encode()).hexdigest()[:16]
print(json.dumps({"src": module.__file__, "us": {n: statistics.median(v) for n, v in cpu.items()}, "hash": digest}))
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))  # tree_passes.py, beside this script (also when loaded by path)
    import tree_passes
    from check_bench import _at_least_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=_at_least_one, default=400)
    parser.add_argument("--repeat", type=_at_least_one, default=5, help="timings of every window within a pass (median)")
    tree_passes.add_options(parser)
    args = parser.parse_args(argv)
    trees = tree_passes.trees(parser, args)
    argv_child = ["-c", CHILD, str(HERE.parent / "tests" / "matching"), json.dumps(CREDITS), str(args.windows), str(args.repeat)]
    passes = tree_passes.alternate(trees, args.passes, lambda src: tree_passes.child(src, argv_child))
    report: dict[str, Any] = {"windows": args.windows, "passes": args.passes, "load": os.getloadavg()[0], "trees": {}}
    for name, runs in passes.items():
        report["trees"][name] = {
            "src": str(trees[name]),
            "us_per_window_median": {c: round(statistics.median(r["us"][c] for r in runs), 1) for c in CREDITS},
            "us_per_window_passes": {c: [round(r["us"][c], 1) for r in runs] for c in CREDITS},
            "hash": tree_passes.one_hash(runs),
        }
    if "baseline" in trees:
        now, old = report["trees"]["now"], report["trees"]["baseline"]
        report["same_scores"] = {c: now["hash"][c] == old["hash"][c] for c in CREDITS}
        report["ratio_baseline_over_now"] = {
            c: round(old["us_per_window_median"][c] / now["us_per_window_median"][c], 3) for c in CREDITS
        }
    lines = [f"{args.windows} windows, {args.passes} alternating passes, load {report['load']:.2f}; CPU us a window (median)"]
    lines += [f"{name:>9}: " + ", ".join(f"{c} {v}" for c, v in tree["us_per_window_median"].items())
              for name, tree in report["trees"].items()]
    return tree_passes.finish(report, args, lines, ("ratio_baseline_over_now", "same_scores"))


if __name__ == "__main__":
    main()
