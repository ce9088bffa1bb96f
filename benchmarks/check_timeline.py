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

Where a core sits idle, whatever the load: while each check runs, this process samples every
``--sample-ms`` the state of each thread of the check and of its worker processes (``/proc/PID/task/*/stat``)
and counts those runnable (running, or waiting for a core: ``R``).  A thread waiting for the GIL, a pipe
or a lock sleeps, so the count is how many cores the check could use at that moment, which on a shared
machine is not how many it got.  Per step (from the mark before it), the mean count (``wanted_cores``)
and the core-seconds it left idle out of ``--cores`` (``idle_core_seconds``), medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHILD = r"""
import gc, json, os, sys, time
T0 = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the console script (bluezone.cli.main), before numpy
marks = {"_t0": T0}  # perf_counter is CLOCK_MONOTONIC: the sampler's clock too
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
    gc.freeze()  # as the console script does before the interpreter's exit
"""

FLOOR = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import bluezone.cli, bluezone.matching.check": "import bluezone.cli, bluezone.matching.check",
}


def _run(args: list[str], sample_ms: float = 0.0) -> tuple[float, str, list[tuple[float, int]]]:
    """(wall seconds, stderr, samples) of a fresh interpreter; with ``sample_ms`` the samples are
    (perf_counter, runnable threads of it and its descendants) taken while it runs."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir()  # not a checkout's bluezone/
    )
    samples: list[tuple[float, int]] = []
    sampler = threading.Thread(target=_sample, args=(child, sample_ms / 1000, samples)) if sample_ms > 0 else None
    if sampler is not None:
        sampler.start()
    _, err = child.communicate()
    if sampler is not None:
        sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{args} failed: {err.strip()[-500:]}")
    return time.perf_counter() - start, err, samples


def _sample(child: subprocess.Popen[str], every: float, samples: list[tuple[float, int]]) -> None:
    """Until ``child`` ends: (time, how many of its threads and its descendants' are runnable)."""
    while child.poll() is None:
        samples.append((time.perf_counter(), sum(_runnable(pid) for pid in _family(child.pid))))
        time.sleep(every)


def _family(pid: int) -> list[int]:
    """``pid`` and every process below it (read from each thread's ``children``)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in _listdir(f"/proc/{p}/task"):
            todo.extend(int(c) for c in _read(f"/proc/{p}/task/{task}/children").split())
    return found


def _runnable(pid: int) -> int:
    """Threads of process ``pid`` in state R (running or waiting for a core)."""
    states = (_read(f"/proc/{pid}/task/{task}/stat").rpartition(")")[2].split()[:1] for task in _listdir(f"/proc/{pid}/task"))
    return sum(state == ["R"] for state in states)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:  # the process or thread has ended
        return []


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def idle_by_step(marks: dict[str, float], samples: list[tuple[float, int]], cores: int) -> dict[str, dict[str, float]]:
    """Per step (ending at its mark, starting at the mark before it): the mean runnable threads over
    its samples and the core-seconds of ``cores`` left idle (each sample standing for the time to the next)."""
    t0 = marks["_t0"]
    bounds = sorted((t, name) for name, t in marks.items() if not name.startswith("_"))
    bounds.append((float("inf"), "exit (after end)"))  # the interpreter's exit, the workers' ends
    out: dict[str, dict[str, float]] = {}
    previous = 0.0
    for t, name in bounds:
        inside = [(s - t0, n, later - s) for (s, n), (later, _) in zip(samples, samples[1:]) if previous <= s - t0 < t]
        span = sum(dt for _, _, dt in inside)
        if span > 0:
            out[name] = {
                "wanted_cores": round(sum(n * dt for _, n, dt in inside) / span, 2),
                "idle_core_seconds": round(sum(max(0, cores - n) * dt for _, n, dt in inside), 4),
            }
        previous = t
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=Path, required=True, help="the key file (check_bench.py's zip)")
    parser.add_argument("--db", type=Path, required=True, help="the store")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sample-ms", type=float, default=0.0, help="sample runnable threads this often (0: not)")
    parser.add_argument("--cores", type=int, default=2, help="cores the idle core-seconds are counted out of")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # check_bench.py, beside this script (also when loaded by path)
    from check_bench import compile_sources, imported_package

    compile_sources(imported_package())  # no module compiled while timed (PYTHONDONTWRITEBYTECODE)
    load = [round(x, 2) for x in os.getloadavg()]
    marks: dict[str, list[dict[str, float]]] = {f"jobs={j}": [] for j in args.jobs}
    idle: dict[str, list[dict[str, dict[str, float]]]] = {f"jobs={j}": [] for j in args.jobs}
    floor: dict[str, list[float]] = {name: [] for name in FLOOR}
    for _ in range(args.repeat):
        for jobs in args.jobs:  # alternating: load from elsewhere falls on all alike
            command = ["check", "--keys", str(args.keys.resolve()), "--db", str(args.db.resolve()), "--json", "--jobs", str(jobs)]
            _, err, samples = _run(["-c", CHILD, *command], args.sample_ms)
            marks[f"jobs={jobs}"].append(json.loads(err.strip().splitlines()[-1]))
            if samples:
                idle[f"jobs={jobs}"].append(idle_by_step(marks[f"jobs={jobs}"][-1], samples, args.cores))
        for name, code in FLOOR.items():
            floor[name].append(_run(["-c", code])[0])
    for runs in marks.values():
        for run in runs:
            del run["_t0"]
    timeline = {
        variant: {step: round(statistics.median(r[step] for r in runs if step in r), 3) for step in sorted({s for r in runs for s in r}, key=lambda s: statistics.median(r.get(s, 0) for r in runs))}
        for variant, runs in marks.items()
    }
    result = {
        "keys": str(args.keys),
        "db": str(args.db),
        "timeline_median_seconds": timeline,
        # a file read before its store's RPIs is checked as an array (no "stream started"): say how many
        "runs_with_step": {variant: {step: sum(step in r for r in runs) for step in timeline[variant]} for variant, runs in marks.items()},
        "floor_median_seconds": {name: round(statistics.median(ts), 3) for name, ts in floor.items()},
        **({"cores_by_step_median": _median_steps(idle)} if args.sample_ms > 0 else {}),
        "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]],
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return result


def _median_steps(idle: dict[str, list[dict[str, dict[str, float]]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and step, the median of each figure over the runs that reached that step."""
    return {
        variant: {
            step: {key: round(statistics.median(r[step][key] for r in runs if step in r), 4) for key in ("wanted_cores", "idle_core_seconds")}
            for step in {s for r in runs for s in r}
        }
        | {"whole check": {"idle_core_seconds": round(statistics.median(sum(v["idle_core_seconds"] for v in r.values()) for r in runs), 4)}}
        for variant, runs in idle.items()
    }


if __name__ == "__main__":
    main()
