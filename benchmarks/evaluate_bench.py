"""What ``bluezone evaluate`` costs on a dataset, beside an older tree in the same run.

    .venv/bin/python benchmarks/evaluate_bench.py DATASET [--baseline-src DIR] [--passes 3] [--json]
        [-- EVALUATE OPTIONS ...]

Each pass runs ``python -m bluezone evaluate DATASET --json`` (and the options after ``--``) as a fresh
process importing bluezone from this tree, then from ``--baseline-src`` (a ``git archive`` of an older
commit), alternating, and notes its wall and CPU seconds (user + system, from the child's rusage) and a
hash of its report without the ``dataset`` path.  Medians over the passes, their ratio, and whether the
reports are the same: a faster evaluate that moves a figure is no speed-up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_pass(src: Path, dataset: Path, options: list[str]) -> dict[str, Any]:
    """One ``bluezone evaluate`` importing bluezone from ``src``: wall and CPU seconds, the report's hash."""
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bluezone", "evaluate", str(dataset), "--json", *options],
        env=env, cwd=src, capture_output=True, text=True, check=True,  # -m puts the working directory first
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(out.stdout)
    report.pop("dataset", None)
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "hash": hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))  # tree_passes.py, beside this script (also when loaded by path)
    import tree_passes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    tree_passes.add_options(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # bluezone evaluate's own options after it
    args = parser.parse_args(argv[:cut])
    args.options = argv[cut + 1:]
    trees = tree_passes.trees(parser, args)
    dataset = args.dataset.resolve()
    loads = [os.getloadavg()[0]]

    def one(src: Path) -> dict[str, Any]:
        result = run_pass(src, dataset, args.options)
        loads.append(os.getloadavg()[0])
        return result

    passes = tree_passes.alternate(trees, args.passes, one)
    report: dict[str, Any] = {"dataset": str(dataset), "options": args.options, "passes": args.passes,
                              "load": [round(min(loads), 2), round(max(loads), 2)], "trees": {}}
    for name, runs in passes.items():
        report["trees"][name] = {
            "src": str(trees[name]),
            "wall_s_median": round(statistics.median(r["wall"] for r in runs), 2),
            "cpu_s_median": round(statistics.median(r["cpu"] for r in runs), 2),
            "cpu_s_passes": [round(r["cpu"], 2) for r in runs],
            "hash": tree_passes.one_hash(runs),
        }
    tree_passes.compare(report, "cpu_s_median", "same_report", "cpu_ratio_baseline_over_now")
    lines = [f"bluezone evaluate {dataset} {' '.join(args.options)}: {args.passes} alternating passes, "
             f"load {report['load'][0]}-{report['load'][1]}"]
    lines += [f"{name:>9}: CPU {t['cpu_s_median']} s, wall {t['wall_s_median']} s {t['cpu_s_passes']}"
              for name, t in report["trees"].items()]
    return tree_passes.finish(report, args, lines, ("cpu_ratio_baseline_over_now", "same_report"))


if __name__ == "__main__":
    main()
