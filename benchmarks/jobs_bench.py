"""Where a match's time goes with one process and with several: serial vs parallel CPU, Amdahl.

    .venv/bin/python benchmarks/jobs_bench.py [--keys 1000000] [--sightings 1000000] [--jobs 2] [--rounds 5] [--json]

Times what ``bluezone benchmark`` times (index build, ``match``, ``exposure_windows``) on its
synthetic data, with 1 and ``--jobs`` processes alternating in one run, and splits each run by step
with the wall clock and CPU time.  The steps are the matcher's own functions, wrapped here (not
copied): ``_matches`` (choosing the keys with sightings in their windows, deriving, pre-filtering
and looking up a share of the keys: the parallel section), ``_decrypt`` (AEMs, result assembly).
The workers' CPU comes from ``os.times()`` of the reaped children.

Serial CPU = everything this process does outside its own ``_matches``; parallel CPU = ``_matches``
here plus the workers.  From the one-process runs' shares the Amdahl bound for N cores is
1 / (s + (1 - s) / N), s the serial share; the wall-clock ratio is only meaningful on idle cores,
so the load average is printed beside it (``os.getloadavg`` before and after each run).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import bluezone.matching.matcher as matcher
from bluezone.crypto.derivation import derivation_path
from bluezone.matching.benchmark import synthetic_data

STEPS = ("index", "matches (own share)", "parallel section", "decrypt", "windows")


class _Recorder:
    """Wall and CPU seconds of the wrapped matcher steps, in this process only."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.steps: dict[str, list[float]] = {}

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if os.getpid() != self.pid:  # a forked worker: its CPU is counted from os.times()
                return func(*args, **kwargs)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - wall, time.process_time() - cpu)

        return timed

    def add(self, name: str, wall: float, cpu: float) -> None:
        total = self.steps.setdefault(name, [0.0, 0.0])
        total[0] += wall
        total[1] += cpu


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def one_run(keys: np.ndarray, sightings: np.ndarray, jobs: int) -> tuple[dict[str, Any], np.ndarray]:
    """One timed match like ``bluezone benchmark``'s, split by step."""
    rec = _Recorder()
    originals = {name: getattr(matcher, name) for name in ("_matches", "_in_parallel", "_decrypt")}
    labels = {"_matches": "matches (own share)", "_in_parallel": "parallel section", "_decrypt": "decrypt"}
    for name, func in originals.items():
        setattr(matcher, name, rec.wrap(labels[name], func))
    load_before = os.getloadavg()[0]
    children = _children_cpu()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        index = matcher.SightingIndex(sightings)
        rec.add("index", time.perf_counter() - wall, time.process_time() - cpu)
        found = matcher.match(keys, index, jobs=jobs)
        w, c = time.perf_counter(), time.process_time()
        matcher.exposure_windows(keys, found)
        rec.add("windows", time.perf_counter() - w, time.process_time() - c)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        for name, func in originals.items():
            setattr(matcher, name, func)
    while multiprocessing.active_children():  # the matcher does not wait for its workers to exit
        time.sleep(0.001)
    workers = _children_cpu() - children
    own = rec.steps.get("matches (own share)", [0.0, 0.0])[1]
    return {
        "jobs": jobs,
        "wall": wall,
        "cpu_here": cpu,
        "cpu_workers": workers,
        "serial_cpu": cpu - own,
        "parallel_cpu": own + workers,
        "steps": {k: rec.steps.get(k, [0.0, 0.0]) for k in STEPS},
        "load": (load_before, os.getloadavg()[0]),
    }, found


def amdahl(serial: float, parallel: float, cores: int) -> float:
    s = serial / (serial + parallel)
    return 1 / (s + (1 - s) / cores)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    keys, sightings, _ = synthetic_data(args.keys, args.sightings, args.seed)
    runs: dict[int, list[dict[str, Any]]] = {1: [], args.jobs: []}
    for _ in range(args.rounds):
        reference = None
        for jobs in (1, args.jobs):
            run, found = one_run(keys, sightings, jobs)
            runs[jobs].append(run)
            if reference is None:
                reference = found
            elif not np.array_equal(found, reference):
                raise RuntimeError(f"{jobs} processes found other matches than one")

    def med(jobs: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[jobs])

    one, many = runs[1], runs[args.jobs]
    serial, parallel = med(1, "serial_cpu"), med(1, "parallel_cpu")
    result: dict[str, Any] = {
        "keys": args.keys,
        "sightings": args.sightings,
        "jobs": args.jobs,
        "rounds": args.rounds,
        "derivation": derivation_path(),
        "wall_one": med(1, "wall"),
        "wall_many": med(args.jobs, "wall"),
        "wall_ratio": med(1, "wall") / med(args.jobs, "wall"),
        "wall_ratio_per_round": [a["wall"] / b["wall"] for a, b in zip(one, many)],
        "load_range": (min(min(r["load"]) for r in one + many), max(max(r["load"]) for r in one + many)),
        "serial_cpu_one": serial,
        "parallel_cpu_one": parallel,
        "serial_cpu_many": med(args.jobs, "serial_cpu"),
        "parallel_cpu_many": med(args.jobs, "parallel_cpu"),
        "amdahl_2": amdahl(serial, parallel, 2),
        "amdahl_4": amdahl(serial, parallel, 4),
        "steps_one": {k: [statistics.median(r["steps"][k][i] for r in one) for i in (0, 1)] for k in STEPS},
        "steps_many": {k: [statistics.median(r["steps"][k][i] for r in many) for i in (0, 1)] for k in STEPS},
        "worker_cpu_many": med(args.jobs, "cpu_workers"),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    print(f"{args.keys:,} keys, {args.sightings:,} sightings, {result['derivation']}; median of {args.rounds} rounds, alternating")
    print(f"load average during the runs: {result['load_range'][0]:.2f} - {result['load_range'][1]:.2f}")
    for jobs, steps in ((1, result["steps_one"]), (args.jobs, result["steps_many"])):
        print(f"--- {jobs} process(es): wall {med(jobs, 'wall'):.3f} s; step: wall s / CPU s here")
        for name, (w, c) in steps.items():
            print(f"  {name:22s} {w:7.3f} {c:7.3f}")
        print(f"  workers' CPU           {med(jobs, 'cpu_workers'):15.3f}")
        print(f"  serial CPU {med(jobs, 'serial_cpu'):.3f} s, parallel CPU {med(jobs, 'parallel_cpu'):.3f} s")
    print(f"Amdahl bound from one process's shares: {result['amdahl_2']:.2f}x on 2 cores, {result['amdahl_4']:.2f}x on 4")
    ratios = ", ".join(f"{r:.2f}" for r in result["wall_ratio_per_round"])
    print(f"wall: 1 process {result['wall_one']:.3f} s, {args.jobs} processes {result['wall_many']:.3f} s: {result['wall_ratio']:.2f}x (rounds: {ratios})")
    return result


if __name__ == "__main__":
    main()
