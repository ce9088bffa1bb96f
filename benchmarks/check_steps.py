"""The serial steps of ``bluezone check`` outside the matcher and the key file, one fresh process each.

    .venv/bin/python benchmarks/check_steps.py --db STORE [--baseline-src DIR ...] [--repeat 7] [--json]

For this checkout and each ``--baseline-src`` (a directory holding an older ``bluezone/``, e.g. from
``git archive <commit> bluezone | tar -x -C DIR``), alternating, ``--repeat`` times: a fresh
interpreter that imports the CLI as ``bluezone check`` does (``bluezone.cli``, then
``bluezone.matching.check``), opens the store (``SightingStore.open(create=False)``, which migrates
nothing on a current store and runs the retention purge), reads its distinct RPIs
(``heard_rpis``), the intervals heard and the usable count, as ``check_store`` does for a key file
spanning the whole store.  Reports the median seconds of each step, the process's CPU seconds and
its wall time, and checks that every variant reads the same RPIs.  Make STORE with
``benchmarks/check_bench.py`` (its ``--workdir``); an older version needs a store it can open
(``check_bench.py --baseline-src`` writes one, ``baseline-<dir>-store-...db``; ``--baseline-db``).
"""

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

CHILD = r"""
import hashlib, json, resource, sys, time
t0 = time.perf_counter()
import bluezone.cli
import bluezone.matching.check
t1 = time.perf_counter()
from bluezone.proximity.store import SightingStore
store = SightingStore.open(sys.argv[1], create=False)
t2 = time.perf_counter()
every, repeated = store.heard_rpis(None, None, repeated=2)
t3 = time.perf_counter()
intervals = store.heard_intervals(None, None)
usable = store.count_usable(None, None)
t4 = time.perf_counter()
store.close()
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "import": t1 - t0, "open": t2 - t1, "heard_rpis": t3 - t2, "intervals_and_count": t4 - t3,
    "cpu": use.ru_utime + use.ru_stime,
    "rpis": [len(every), len(repeated), hashlib.sha256(b"".join(sorted(map(bytes, every)))).hexdigest()[:16]],
    "usable": usable,
}))
"""


def run(db: Path, src: Path | None) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(db)], capture_output=True, text=True, check=True, env=env,
        cwd=tempfile.gettempdir(),  # not a checkout: its bluezone/ would come first on sys.path
    )
    report = json.loads(out.stdout)
    report["wall"] = time.perf_counter() - start
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="the store this checkout reads")
    parser.add_argument("--baseline-src", type=Path, nargs="*", default=[])
    parser.add_argument("--baseline-db", type=Path, nargs="*", default=[], help="a store for each baseline (default: --db)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    variants: dict[str, tuple[Path, Path | None]] = {"now": (args.db, None)}
    for i, src in enumerate(args.baseline_src):
        variants[src.name] = (args.baseline_db[i] if i < len(args.baseline_db) else args.db, src.resolve())
    load = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, (db, src) in variants.items():  # alternating: load from elsewhere falls on all alike
            runs[name].append(run(db, src))
    answers = {json.dumps([r["rpis"], r["usable"]]) for rs in runs.values() for r in rs}
    if len(answers) != 1:
        raise SystemExit(f"the variants read different RPIs or counts: {answers}")
    steps = ["import", "open", "heard_rpis", "intervals_and_count", "cpu", "wall"]
    result = {
        "db": str(args.db),
        "rpis": runs["now"][0]["rpis"][:2],
        "median_seconds": {name: {s: round(statistics.median(r[s] for r in rs), 3) for s in steps} for name, rs in runs.items()},
        "runs": {name: {s: [round(r[s], 3) for r in rs] for s in steps} for name, rs in runs.items()},
        "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]],
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return result


if __name__ == "__main__":
    main()
