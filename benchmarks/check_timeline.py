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

What the steps one thread does cost, in CPU time (the same whatever the load, unlike their seconds): each
mark also notes the check's CPU time so far (``time.process_time``: its threads, not its workers, since the
interpreter started), so ``cpu_ms_by_step_median`` gives each step's CPU; the exit's is the main thread's
CPU after the last mark, read from ``/proc/PID/schedstat`` once the check has ended and before it is
reaped.  ``one_thread_cpu_ms_median`` adds, for more than one job, the start (the main thread's CPU:
interpreter, imports, the command line, up to the store's thread: ``store thread started``; an early
reader of the store, started before numpy is imported, runs beside it), the tail (from the last key derived
to the end: the exposures, the report) and the exit.  With one job and J jobs among the variants,
``speedup_bound_from_cpu`` is the most J jobs could be faster than one on J idle cores with that much
done by one thread: one job's CPU / (S + (J jobs' CPU - S) / J), S the one-thread CPU.
``main_thread_cpu_ms_at_mark_median`` gives the main thread's own CPU at each mark it made (a thread beside
it, the store's early reader or its thread, not counted), and ``wall_median_seconds`` the whole check's wall.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

CHILD = r"""
import builtins, json, os, sys, threading, time
T0 = time.perf_counter()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the console script (bluezone.cli.main), before numpy
marks = {"_t0": T0}  # perf_counter is CLOCK_MONOTONIC: the sampler's clock too
cpu = {}  # CPU seconds of this process's threads at each mark, since the interpreter started
main_cpu = {}  # CPU seconds of the main thread alone, at each mark it made
def mark(name):
    if name not in marks:
        marks[name] = round(time.perf_counter() - T0, 4)
        cpu[name] = round(time.process_time(), 4)
        if threading.current_thread() is threading.main_thread():
            main_cpu[name] = round(time.thread_time(), 4)
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
# Wrapped once the check imports them, not before: a check's own imports come in its own order (the
# store's early reader starts before numpy is imported), and importing them here would change it.
pending = []  # (module, attribute that says it is imported in full, what to do then)
plain_import = builtins.__import__
def importing(*args, **kwargs):
    out = plain_import(*args, **kwargs)
    for entry in [e for e in pending if hasattr(sys.modules.get(e[0]), e[1])]:
        pending.remove(entry)
        entry[2](sys.modules[entry[0]])
    if not pending:
        builtins.__import__ = plain_import
    return out
builtins.__import__ = importing
def on_import(module, attribute, then):
    pending.append((module, attribute, then))
def check_imported(check):
    mark("imported")  # bluezone.matching.check and numpy with it
    wrap(check.SightingStore, "heard_rpis", None, "store read")
    if hasattr(check.SightingStore, "heard_rpis_read_before"):  # what the early reader read, made arrays
        wrap(check.SightingStore, "heard_rpis_read_before", None, "store read")
    wrap(check._HeardInBackground, "__init__", "store thread started", None)  # more than one job: the serial start ends
    wrap(check, "keys_heard", None, "derived")  # a file checked as an array (a stream's finish marks it first)
    wrap(check, "check_store", None, "derived and matched")
    wrap(check.HeardRpis, "exposures", None, "exposures")
MAIN_PID = os.getpid()
def keystream_imported(keystream):
    wrap(keystream.KeyStream, "__init__", "stream started", None)
    wrap(keystream.KeyStream, "finish", None, "derived")
    wrap(keystream.BufferedStream, "add", "first keys parsed", None)
    plain_found = keystream._found  # what a worker derives a batch with (bound as its workers are forked)
    def found(*args, **kwargs):
        if os.getpid() != MAIN_PID and "worker's first batch" not in marks:  # a worker: said on a line of its own
            marks["worker's first batch"] = round(time.perf_counter() - T0, 4)
            print(json.dumps({"worker's first batch": marks["worker's first batch"]}), file=sys.stderr, flush=True)
        return plain_found(*args, **kwargs)
    keystream._found = found
def sharedbatches_imported(sharedbatches):
    wrap(sharedbatches.SharedBatches, "__init__", None, "workers forked")
    wrap(sharedbatches.SharedBatches, "post", "first batch posted", None)
def early_imported(heardread):  # the early reader, where there is one
    wrap(heardread.EarlyRead, "__init__", "early read started", None)
    wrap(heardread.EarlyRead, "_run", None, "early read done")
on_import("bluezone.matching.check", "check_keys", check_imported)
on_import("bluezone.matching.keystream", "KeyStream", keystream_imported)
on_import("bluezone.proximity.store.heardread", "EarlyRead", early_imported)
def keyfile_imported(keyfile):
    mark("file readers imported")
    wrap(keyfile, "stream_keys", None, "key file read")
on_import("bluezone.keyformat.keyfile", "stream_keys", keyfile_imported)
on_import("bluezone.matching.sharedbatches", "SharedBatches", sharedbatches_imported)
import bluezone.cli
mark("cli imported")
plain_cli = bluezone.cli.cli
def marked_cli(*args, **kwargs):
    try:
        return plain_cli(*args, **kwargs)
    finally:
        mark("end")
        print(json.dumps({**marks, "_cpu": cpu, "_main_cpu": main_cpu, "_thread_cpu_end": time.thread_time()}), file=sys.stderr, flush=True)
bluezone.cli.cli = marked_cli
sys.argv = ["bluezone", *sys.argv[1:]]
bluezone.cli.main()  # the console script itself: its end and exit as a user's check has them
"""

FLOOR = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import bluezone.cli, bluezone.matching.check": "import bluezone.cli, bluezone.matching.check",
}


def _run(args: list[str], sample_ms: float = 0.0, baseline: Path | None = None) -> Run:
    """A fresh interpreter run to its end: its wall seconds, stderr, CPU (with what it reaped), its main
    thread's CPU at the end (``/proc/PID/schedstat``, read before it is reaped), when it ended
    (``perf_counter``), and with ``sample_ms`` the samples (perf_counter, runnable threads of it and its
    descendants) taken while it ran; ``baseline``: a directory whose ``bluezone/`` it imports instead."""
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        env = dict(os.environ) if baseline is None else {**os.environ, "PYTHONPATH": str(baseline)}
        child = subprocess.Popen(  # from the temporary directory: not a checkout's bluezone/
            [sys.executable, *args], stdout=out, stderr=err, cwd=tempfile.gettempdir(), env=env
        )
        ended = threading.Event()
        samples: list[tuple[float, int]] = []
        sampler = threading.Thread(target=_sample, args=(child.pid, sample_ms / 1000, samples, ended)) if sample_ms > 0 else None
        if sampler is not None:
            sampler.start()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, not yet reaped: its /proc still there
        exited = time.perf_counter()
        main_thread_cpu = _main_thread_cpu(child.pid)
        ended.set()
        if sampler is not None:
            sampler.join()
        child.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise SystemExit(f"{args} failed: {stderr.strip()[-500:]}")
    cpu = used.ru_utime - before.ru_utime + used.ru_stime - before.ru_stime
    return Run(exited - start, stderr, samples, cpu, main_thread_cpu, exited)


class Run(NamedTuple):
    seconds: float
    stderr: str
    samples: list[tuple[float, int]]
    cpu: float  # CPU seconds of the process and of the workers it reaped
    main_thread_cpu: float  # CPU seconds of its main thread, all told
    exited: float  # perf_counter when it had ended


def _main_thread_cpu(pid: int) -> float:
    """CPU seconds a process's main thread ran, as the kernel counts it (``sum_exec_runtime``, ns)."""
    return int(_read(f"/proc/{pid}/schedstat").split()[0]) / 1e9


def _sample(pid: int, every: float, samples: list[tuple[float, int]], ended: threading.Event) -> None:
    """Until ``ended``: (time, how many threads of ``pid`` and its descendants are runnable)."""
    while not ended.is_set():
        samples.append((time.perf_counter(), sum(_runnable(p) for p in _family(pid))))
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
    parser.add_argument(
        "--baseline-src", type=Path, default=None,
        help="a directory holding an older bluezone/ (git archive): its checks alternate with these, on the same store",
    )
    parser.add_argument(
        "--baseline-db", type=Path, default=None,
        help="the store the baseline checks (default --db): a copy at its schema, where this version migrated --db past it",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # check_bench.py, beside this script (also when loaded by path)
    from check_bench import compile_sources, imported_package

    baseline = None if args.baseline_src is None else args.baseline_src.resolve()
    compile_sources(imported_package(), *([] if baseline is None else [baseline / "bluezone"]))  # none compiled while timed
    variants = [(f"jobs={j}", j, None) for j in args.jobs] + [(f"baseline jobs={j}", j, baseline) for j in args.jobs if baseline]
    load = [round(x, 2) for x in os.getloadavg()]
    marks: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in variants}
    idle: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name, _, _ in variants}
    floor: dict[str, list[float]] = {name: [] for name in FLOOR}
    for _ in range(args.repeat):
        for name, jobs, src in variants:  # alternating: load from elsewhere falls on all alike
            db = args.baseline_db if src is not None and args.baseline_db is not None else args.db
            command = ["check", "--keys", str(args.keys.resolve()), "--db", str(db.resolve()), "--json", "--jobs", str(jobs)]
            run = _run(["-c", CHILD, *command], args.sample_ms, src)
            lines = run.stderr.strip().splitlines()
            marked = json.loads(lines[-1])
            for line in lines[:-1]:  # a worker's own mark (its first batch), when it made one
                if line.startswith('{"worker'):
                    marked.update(json.loads(line))
            marked["_run"] = run
            marks[name].append(marked)
            if run.samples:
                idle[name].append(idle_by_step(marked, run.samples, args.cores))
        for name, code in FLOOR.items():
            floor[name].append(_run(["-c", code]).seconds)
    cpu = {name: [_cpu_steps(run) for run in runs] for name, runs in marks.items()}
    # the main thread's own CPU when it made each mark: what the steps one thread does cost, without a thread beside it
    main_cpu = {
        name: {
            step: round(1000 * statistics.median(r["_main_cpu"][step] for r in runs if step in r.get("_main_cpu", {})), 1)
            for step in {s for r in runs for s in r.get("_main_cpu", {})}
        }
        for name, runs in marks.items()
    }
    wall = {name: round(statistics.median(r["_run"].seconds for r in runs), 4) for name, runs in marks.items()}
    for runs in marks.values():
        for one_run in runs:
            for key in [k for k in one_run if k.startswith("_")]:
                del one_run[key]
    timeline = {
        variant: {step: round(statistics.median(r[step] for r in runs if step in r), 3) for step in sorted({s for r in runs for s in r}, key=lambda s: statistics.median(r.get(s, 0) for r in runs))}
        for variant, runs in marks.items()
    }
    result = {
        "keys": str(args.keys),
        "db": str(args.db),
        "baseline": None if baseline is None else str(baseline),
        "baseline_db": None if args.baseline_db is None else str(args.baseline_db),
        "timeline_median_seconds": timeline,
        # a file read before its store's RPIs is checked as an array (no "stream started"): say how many
        "runs_with_step": {variant: {step: sum(step in r for r in runs) for step in timeline[variant]} for variant, runs in marks.items()},
        "floor_median_seconds": {name: round(statistics.median(ts), 3) for name, ts in floor.items()},
        # the whole check, as a user waits for it (interpreter start to exit): the figure the goal is about
        "wall_median_seconds": wall,
        "wall_one_job_over_more": {
            f"{name} over {one}": round(wall[one] / wall[name], 3)
            for name, jobs, src in variants if jobs > 1
            for one in [n for n, j, s in variants if j == 1 and s == src]
        },
        **({"cores_by_step_median": _median_steps(idle)} if args.sample_ms > 0 else {}),
        **_cpu_summary(cpu, variants),
        "main_thread_cpu_ms_at_mark_median": main_cpu,
        "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]],
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return result


def _cpu_steps(marked: dict[str, Any]) -> dict[str, float]:
    """One run's CPU milliseconds: per step (from the mark before it), the exit (its main thread after
    the last mark), the whole run with its workers (``total``), its one-thread steps (``one thread``:
    start + tail + exit, when it had a store thread and a last key derived) and the exit's wall time."""
    run: Run = marked["_run"]
    at = marked["_cpu"]
    order = sorted(at, key=lambda step: marked[step])
    steps = {step: 1000 * (at[step] - (at[order[i - 1]] if i else 0.0)) for i, step in enumerate(order)}
    steps["exit (main thread)"] = 1000 * (run.main_thread_cpu - marked["_thread_cpu_end"])
    steps["exit wall"] = 1000 * (run.exited - marked["_t0"] - marked["end"])
    steps["total"] = 1000 * run.cpu
    if "store thread started" in at and "derived" in at:
        # the main thread's CPU: an early reader's (beside the imports, on the other core) is not one thread's
        steps["start (to the store thread)"] = 1000 * marked.get("_main_cpu", at)["store thread started"]
        steps["tail (last key derived to end)"] = 1000 * (at["end"] - at["derived"])
        steps["one thread"] = (
            steps["start (to the store thread)"] + steps["tail (last key derived to end)"] + steps["exit (main thread)"]
        )
    return steps


def _cpu_summary(cpu: dict[str, list[dict[str, float]]], variants: list[tuple[str, int, Path | None]]) -> dict[str, Any]:
    """Medians of each run's CPU figures (``_cpu_steps``), and the bound they set on J jobs over one."""
    medians = {
        name: {step: round(statistics.median(r[step] for r in runs if step in r), 1) for step in {s for r in runs for s in r}}
        for name, runs in cpu.items()
    }
    bounds = {}
    for name, jobs, src in variants:
        one = next((n for n, j, s in variants if j == 1 and s == src), None)
        if jobs > 1 and one is not None and "one thread" in medians[name]:
            serial, total = medians[name]["one thread"], medians[name]["total"]
            bounds[f"{name} over {one}"] = round(medians[one]["total"] / (serial + (total - serial) / jobs), 3)
    return {"cpu_ms_by_step_median": medians, "speedup_bound_from_cpu": bounds}


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
