"""Where a ``bluezone check --keys`` spends its memory: resident set size sampled per step.

    .venv/bin/python benchmarks/check_rss_trace.py ZIP STORE [--jobs 1] [--every 0.02]

Runs ``check_keys(ZIP, STORE)`` in this process (what ``bluezone check --keys ZIP --db STORE``
runs) with a thread reading ``VmRSS`` from ``/proc/self/status`` every ``--every`` seconds, and
the check's steps wrapped so that each sample is charged to the step running: reading the key
file, opening the store, reading its distinct RPIs and building their index, deriving the keys
against them, reading the matched rows, matching and scoring them.  Prints, per step, its seconds
and the largest RSS seen while it ran (MiB and decimal MB).  Works on older versions too (run it
with ``PYTHONPATH=DIR``): steps a version does not have are left out.  Worker processes
(``--jobs`` > 1) are not sampled: ``check_bench.py`` gives the largest process's peak.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import threading
import time
from pathlib import Path
from typing import Any

STEPS = [  # (module, function): wrapped in this order, an inner step charged while it runs
    ("bluezone.keyformat.keyfile", "load_keys"),
    ("bluezone.keyformat.keyfile", "stream_keys"),
    ("bluezone.proximity.store", "SightingStore.open"),
    ("bluezone.proximity.store", "SightingStore.heard_rpis"),
    ("bluezone.matching.matcher", "HeardIndex.__init__"),
    ("bluezone.matching.matcher", "keys_heard"),
    ("bluezone.proximity.store", "SightingStore.sightings_with_rpis"),
    ("bluezone.matching.matcher", "find_exposures"),
]


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Trace:
    """Samples RSS in a thread; ``step`` names what is running (the innermost wrapped call)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.stack: list[str] = ["start-up and the rest"]
        self.peak: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(self.every):
            step = self.stack[-1]
            self.peak[step] = max(self.peak.get(step, 0), _rss_kib())

    def wrap(self, name: str, function: Any) -> Any:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(name)
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.peak[name] = max(self.peak.get(name, 0), _rss_kib())
                self.stack.pop()

        return wrapped


def _install(trace: Trace) -> None:
    """Wrap every step a module defines, where it is looked up (its module and the check's)."""
    users = [importlib.import_module("bluezone.matching.check")]
    try:
        users.append(importlib.import_module("bluezone.matching.keystream"))
    except ImportError:  # an older version: no streamed check
        pass
    for module_name, qualname in STEPS:
        module = importlib.import_module(module_name)
        owner: Any = module
        *path, attr = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        if not hasattr(owner, attr):
            continue
        wrapped = trace.wrap(qualname, getattr(owner, attr))
        setattr(owner, attr, wrapped)
        for user in users:
            if not path and hasattr(user, attr):  # imported by name where the check calls it
                setattr(user, attr, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zip", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--every", type=float, default=0.02)
    args = parser.parse_args()
    trace = Trace(args.every)
    _install(trace)
    from bluezone.matching.check import check_keys

    trace.thread.start()
    t0 = time.perf_counter()
    result = check_keys(args.zip, args.store, jobs=args.jobs)
    total = time.perf_counter() - t0
    trace.done.set()
    trace.thread.join()
    print(f"{len(result.exposures)} exposures in {total:.1f} s")
    for step, kib in sorted(trace.peak.items(), key=lambda item: -item[1]):
        seconds = trace.seconds.get(step)
        print(f"{step:40s} {'' if seconds is None else f'{seconds:6.1f} s':>8s}  peak {kib / 1024:6.0f} MiB = {kib * 1.024 / 1000:6.0f} MB")


if __name__ == "__main__":
    main()
