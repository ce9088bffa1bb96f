"""Where a ``bluezone check --keys FILE`` process's wall time goes, and the serial floor under it.

    .venv/bin/python benchmarks/check_timeline.py --keys ZIP --db STORE [--jobs 1 2] [--repeat 5] [--json]

For each ``--jobs`` value, alternating, ``--repeat`` times: a fresh interpreter runs the check as
``bluezone check --keys ZIP --db STORE --json --jobs J`` does (``bluezone.cli``), with wrappers that
note when each step starts and ends, in seconds since the interpreter started: the imports, the
store's distinct RPIs read (after the file with one job, in a thread beside it with more), the key file read, the stream of
keys to the workers started, the derivation finished, the exposures, the end.  Then, as fresh
interpreters too, the floor no check goes below: starting Python, importing numpy, importing what a
check imports (``bluezone.cli`` and ``bluezone.matching.check``).  Medians.  Make ZIP and STORE with
``benchmarks/check_bench.py`` (its ``--workdir``).
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
import json, sys, time
T0 = time.perf_counter()
marks = {}
def mark(name):
    marks.setdefault(name, round(time.perf_counter() - T0, 4))
import bluezone.cli
import bluezone.matching.check as check
import bluezone.matching.keystream as keystream
mark("imported")
def wrap(owner, name, before, after):
    inner = getattr(owner, name)
    def wrapped(*args, **kwargs):
        if before:
            mark(before)
        out = inner(*args, **kwargs)
        if after:
            mark(after)
        return out
    setattr(owner, name, wrapped)
wrap(check.SightingStore, "heard_rpis", None, "store read")
def _wrap_on_import(module, name, before, after):  # wrapped once a check imports it (not earlier: it imports it late)
    import builtins
    plain = builtins.__import__
    def importing(*args, **kwargs):
        out = plain(*args, **kwargs)
        if hasattr(sys.modules.get(module), name):  # imported in full
            builtins.__import__ = plain
            wrap(sys.modules[module], name, before, after)
        return out
    builtins.__import__ = importing
_wrap_on_import("bluezone.keyformat.keyfile", "stream_keys", None, "key file read")
wrap(keystream.KeyStream, "__init__", "stream started", None)
wrap(keystream.KeyStream, "finish", None, "derived")
wrap(check, "check_store", None, "derived and matched")
wrap(check.HeardRpis, "exposures", None, "exposures")
try:
    bluezone.cli.cli(sys.argv[1:], standalone_mode=False)
finally:
    mark("end")
    print(json.dumps(marks), file=sys.stderr)
"""

FLOOR = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import bluezone.cli, bluezone.matching.check": "import bluezone.cli, bluezone.matching.check",
}


def _run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=tempfile.gettempdir()  # not a checkout's bluezone/
    )
    if out.returncode != 0:
        raise SystemExit(f"{args} failed: {out.stderr.strip()[-500:]}")
    return time.perf_counter() - start, out.stderr


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=Path, required=True, help="the key file (check_bench.py's zip)")
    parser.add_argument("--db", type=Path, required=True, help="the store")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # check_bench.py, beside this script (also when loaded by path)
    from check_bench import compile_sources, imported_package

    compile_sources(imported_package())  # no module compiled while timed (PYTHONDONTWRITEBYTECODE)
    load = [round(x, 2) for x in os.getloadavg()]
    marks: dict[str, list[dict[str, float]]] = {f"jobs={j}": [] for j in args.jobs}
    floor: dict[str, list[float]] = {name: [] for name in FLOOR}
    for _ in range(args.repeat):
        for jobs in args.jobs:  # alternating: load from elsewhere falls on all alike
            command = ["check", "--keys", str(args.keys.resolve()), "--db", str(args.db.resolve()), "--json", "--jobs", str(jobs)]
            _, err = _run(["-c", CHILD, *command])
            marks[f"jobs={jobs}"].append(json.loads(err.strip().splitlines()[-1]))
        for name, code in FLOOR.items():
            floor[name].append(_run(["-c", code])[0])
    timeline = {
        variant: {step: round(statistics.median(r[step] for r in runs if step in r), 3) for step in sorted({s for r in runs for s in r}, key=lambda s: statistics.median(r.get(s, 0) for r in runs))}
        for variant, runs in marks.items()
    }
    result = {
        "keys": str(args.keys),
        "db": str(args.db),
        "timeline_median_seconds": timeline,
        "floor_median_seconds": {name: round(statistics.median(ts), 3) for name, ts in floor.items()},
        "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]],
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return result


if __name__ == "__main__":
    main()
