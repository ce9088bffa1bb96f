"""The CPU of each step of a ``bluezone check``'s serial start, in the order the check takes them.

    .venv/bin/python benchmarks/check_start_steps.py [--repeat 21] [--baseline-src DIR] [--json]

Each run is a fresh interpreter that takes the steps a two-job ``bluezone check --keys ZIP`` takes before
its workers fork (click and the command's modules, the store's early reader, numpy and the matcher, the
scorer made, the check, the file's readers, the workers' module), then the AES it imports once they
derive, and notes the CPU of each (``time.thread_time``: this thread's, user and system, since the
previous step; the first is the interpreter's own start, ``site`` and the editable install's finder
included, whose share a run under ``python -S`` gives).  Medians over ``--repeat`` runs, alternating
with ``--baseline-src`` (a directory holding an older ``bluezone/``, ``git archive`` of it) where given.

Why not ``python -X importtime``: it costs about as much as it measures (the same imports took twice
their CPU under it, docs/benchmarks.md, twenty-sixth session) and its numbers are wall time, which a
loaded machine swings; a step's CPU does not.  ``check_timeline.py`` gives the same start as marks of a
whole check; this splits it import by import.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

#: (what, the code a check runs for it), in the check's order (``bluezone/matching/cli.py``'s ``check``).
STEPS = [
    ("click", "import click"),
    ("the CLI's group (bluezone.cli)", "import bluezone.cli"),
    ("the check command's module", "import bluezone.matching.cli"),
    ("the store's early reader (sqlite3)", "import bluezone.proximity.store.heardread, bluezone.proximity.store.files"),
    ("numpy", "import numpy"),
    ("the matcher", "import bluezone.matching.matcher"),
    ("the scorers' module", "import bluezone.matching.scoring"),
    ("the scorer made (its module imported)", "import bluezone.matching.scoring as s; s.get_scorer()"),
    ("the check", "import bluezone.matching.check"),
    ("the file's readers (zipfile, hashlib)", "import bluezone.keyformat.export, bluezone.keyformat.keyfile"),
    ("the workers' module (multiprocessing)", "import bluezone.matching.sharedbatches"),
    ("after the fork: the AES for the AEMs", "import bluezone.crypto.derivation as d; d.import_aes()"),
]
FIRST = "the interpreter's start (site included)"

CHILD = r"""
import json, sys, time
out = [time.thread_time()]
for code in sys.argv[1:]:
    before = time.thread_time()
    exec(code)
    out.append(time.thread_time() - before)
print(json.dumps(out))
"""


def run_steps(baseline: Path | None) -> list[float]:
    """CPU ms of each step (the interpreter's start first) in one fresh interpreter."""
    from check_bench import BASELINE, NEUTRAL, _env

    out = subprocess.run(
        [sys.executable, "-c", CHILD, *(code for _, code in STEPS)],
        capture_output=True, text=True, check=True, cwd=NEUTRAL, env=_env(BASELINE, baseline),
    )
    return [round(seconds * 1000, 2) for seconds in json.loads(out.stdout)]


def no_site_start() -> float:
    """CPU ms of an interpreter's start without ``site`` (``python -S``): what ``site`` adds is the rest."""
    from check_bench import NEUTRAL

    code = "import time; print(time.thread_time())"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=NEUTRAL)
    return round(float(out.stdout) * 1000, 2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--baseline-src", type=Path, default=None, help="a directory holding an older bluezone/")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # check_bench.py, beside this script
    from check_bench import compile_sources, imported_package

    baseline = None if args.baseline_src is None else args.baseline_src.resolve()
    compile_sources(imported_package(), *([] if baseline is None else [baseline / "bluezone"]))  # none compiled while timed
    trees = {"this checkout": None, **({f"baseline {baseline.name}": baseline} if baseline else {})}
    runs: dict[str, list[list[float]]] = {name: [] for name in trees}
    bare: list[float] = []
    load = [round(x, 2) for x in os.getloadavg()]
    for _ in range(args.repeat):
        for name, tree in trees.items():  # alternating, so load from elsewhere falls on all alike
            runs[name].append(run_steps(tree))
        bare.append(no_site_start())
    names = [FIRST, *(what for what, _ in STEPS)]
    result: dict = {
        "cpu_ms_median": {
            tree: {what: statistics.median(run[i] for run in runs[tree]) for i, what in enumerate(names)} for tree in trees
        },
        "to_the_fork_ms_median": {
            tree: statistics.median(sum(run[:-1]) for run in runs[tree]) for tree in trees
        },
        "interpreter_start_without_site_ms_median": statistics.median(bare),
        "repeat": args.repeat,
        "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for tree, steps in result["cpu_ms_median"].items():
            print(tree)
            for what, ms in steps.items():
                print(f"  {ms:7.2f} ms  {what}")
            print(f"  {result['to_the_fork_ms_median'][tree]:7.2f} ms  to the fork, in all")
        print(f"{result['interpreter_start_without_site_ms_median']:.2f} ms: the interpreter's start under python -S")
        print("load average at the start and the end:", result["load_average_start_end"])
    return result


if __name__ == "__main__":
    main()
