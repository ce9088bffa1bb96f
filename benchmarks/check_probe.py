"""Where a ``bluezone check``'s CPU and page faults go, function by function, in the reading process and its workers.

    .venv/bin/python benchmarks/check_probe.py --keys ZIP --db STORE [--jobs 1 2] [--repeat 9]
        [--baseline-src DIR ...] [--json]

On this kind of guest a whole check's CPU swings by more than 100 ms from one set of runs to the next
(docs/benchmarks.md, issue 17, twenty-third session), so a cut of 10-40 ms shows only function by function
and in what does not swing: page faults.  For each ``--jobs`` value and each tree (this one, then each
``--baseline-src``, a directory holding another ``bluezone/``), alternating, ``--repeat`` times: a fresh
interpreter runs the check as ``bluezone check --keys ZIP --db STORE --json --jobs J`` does
(``bluezone.cli``), with wrappers adding up, per function and per process, the calls, the thread's CPU
(``time.thread_time``) and its minor page faults (``getrusage(RUSAGE_THREAD)``).  A worker adds its own
and reports them as it ends; the parent reports at its exit, with its whole process's CPU and faults
(every thread) and those of the workers it reaped.  Medians over the runs, the processes' figures added:
``cpu_ms``, ``faults`` and ``calls`` per function, ``total`` (the parent and its workers) and
``outside_native`` (the total less the compiled derivation's calls, whose own speed swings most).  Make
ZIP and STORE with ``benchmarks/check_bench.py`` (its ``--workdir``); check a copy of the store.
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

CHILD = r"""
import atexit, collections, json, os, resource, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the console script, before numpy
out, args = sys.argv[1], sys.argv[2:]
STATS = collections.defaultdict(lambda: [0, 0.0, 0])  # function: calls, CPU seconds, minor faults

def now():
    return time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD).ru_minflt

def wrap(owner, name, label):
    inner = getattr(owner, name)
    def wrapped(*a, **k):
        cpu, faults = now()
        try:
            return inner(*a, **k)
        finally:
            cpu_end, faults_end = now()
            s = STATS[label]
            s[0] += 1; s[1] += cpu_end - cpu; s[2] += faults_end - faults
    setattr(owner, name, wrapped)

def report(role, **extra):
    with open(out, "a") as f:  # one line a process
        f.write(json.dumps({"role": role, "stats": {**STATS, **extra}}) + "\n")

import bluezone.cli
import bluezone.keyformat.keyfile as keyfile
import bluezone.matching.check as check
import bluezone.matching.keystream as keystream
import bluezone.matching.matcher as matcher
import bluezone.matching.sharedbatches as sharedbatches
for owner, name in [
    (keyfile, "stream_keys"), (keystream.KeyStream, "_submit"), (keystream.KeyStream, "finish"),
    (sharedbatches.SharedBatches, "__init__"), (sharedbatches.SharedBatches, "post"), (keystream, "_found"),
    (matcher._KeyTable, "busy"), (matcher.HeardIndex, "lookup"), (check.HeardRpis, "read_all"),
    (check.HeardRpis, "exposures"), (check.SightingStore, "count_usable"), (check, "check_store"),
]:
    if hasattr(owner, name):  # an older tree may lack one
        wrap(owner, name, f"{getattr(owner, '__name__', owner)}.{name}")
wrap(matcher, "rpis_passing", "native")  # the compiled derivation, as the matcher calls it
work = sharedbatches.SharedBatches._work
def working(self, pipe):
    STATS.clear()  # what the parent had done before the fork is the parent's
    try:
        work(self, pipe)
    finally:
        cpu, faults = now()
        report("worker", process=[1, cpu, faults])
sharedbatches.SharedBatches._work = working
forking = sharedbatches.SharedBatches.__init__
def forked(self, *a, **k):
    import multiprocessing
    forking(self, *a, **k)
    # registered after multiprocessing's own exit handler, so run before it: the workers end on their
    # own (and report) instead of being terminated as daemons
    atexit.register(lambda: [child.join() for child in multiprocessing.active_children()])
sharedbatches.SharedBatches.__init__ = forked
def at_exit():
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report("parent", process=[1, me.ru_utime + me.ru_stime, me.ru_minflt],
           workers=[1, children.ru_utime + children.ru_stime, children.ru_minflt])
atexit.register(at_exit)  # first registered: runs last, once the workers are reaped
sys.argv = ["bluezone", *args]
bluezone.cli.main()
"""


def added(lines: list[dict]) -> dict[str, list[float]]:
    """One run's figures, the processes' added: function -> [calls, CPU ms, faults]; with ``total`` and
    ``outside_native``."""
    stats: dict[str, list[float]] = {}
    for line in lines:
        for name, (calls, cpu, faults) in line["stats"].items():
            if line["role"] == "worker" and name == "process":
                continue  # counted in the parent's ``workers`` (with its exit)
            s = stats.setdefault(name, [0, 0.0, 0])
            s[0] += calls
            s[1] += 1000 * cpu
            s[2] += faults
    parent, workers = stats.pop("process", [0, 0.0, 0]), stats.pop("workers", [0, 0.0, 0])
    stats["total"] = [1, parent[1] + workers[1], parent[2] + workers[2]]
    stats["outside_native"] = [1, stats["total"][1] - stats.get("native", [0, 0.0, 0])[1], 0]
    return stats


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=Path, required=True, help="the key file (check_bench.py's zip)")
    parser.add_argument("--db", type=Path, required=True, help="the store (a copy: a check purges)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[2])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--baseline-src", type=Path, nargs="*", default=[], help="directories each holding another bluezone/")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1 or min(args.jobs) < 1:
        parser.error("--repeat and --jobs must be 1 or more")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from check_bench import compile_sources, imported_package

    trees: dict[str, Path | None] = {"now": None, **{src.name: src.resolve() for src in args.baseline_src}}
    compile_sources(imported_package(), *(src / "bluezone" for src in trees.values() if src is not None))
    load = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict[str, list[float]]]] = {f"{tree} jobs={jobs}": [] for tree in trees for jobs in args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for jobs in args.jobs:
                for tree, src in trees.items():  # alternating: load from elsewhere falls on all alike
                    out = Path(tmp) / f"{tree}-{jobs}-{i}.jsonl"
                    env = dict(os.environ) if src is None else {**os.environ, "PYTHONPATH": str(src)}
                    command = ["check", "--keys", str(args.keys.resolve()), "--db", str(args.db.resolve()), "--json", "--jobs", str(jobs)]
                    subprocess.run([sys.executable, "-c", CHILD, str(out), *command], check=True, capture_output=True, cwd=tmp, env=env)
                    runs[f"{tree} jobs={jobs}"].append(added([json.loads(line) for line in out.read_text().splitlines()]))
    median = {
        variant: {
            name: {
                "calls": statistics.median(r.get(name, [0, 0.0, 0])[0] for r in rs),
                "cpu_ms": round(statistics.median(r.get(name, [0, 0.0, 0])[1] for r in rs), 1),
                "faults": statistics.median(r.get(name, [0, 0.0, 0])[2] for r in rs),
            }
            for name in sorted(set().union(*rs))
        }
        for variant, rs in runs.items()
    }
    result = {"keys": str(args.keys), "median": median, "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]]}
    print(json.dumps(result, indent=None if args.json else 2))
    return result


if __name__ == "__main__":
    main()
