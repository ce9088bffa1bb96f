"""Where the processes of a ``bluezone check --jobs 2`` spend the parallel part: batch by batch.

    .venv/bin/python benchmarks/check_workers.py --keys ZIP --db STORE [--jobs 2] [--repeat 5]
        [--baseline-src DIR ...] [--store-first] [--json]

Runs the check as ``bluezone check --keys ZIP --db STORE --json --jobs J`` does (``bluezone.cli``), in a
fresh interpreter, ``--repeat`` times (alternating with each ``--baseline-src``, a directory holding an
older ``bluezone/``), with a wrapper around each batch's derivation (``keystream.keys_heard``, in the
reading process and in each worker) noting its start and end, in seconds since the interpreter
started (``time.perf_counter`` is the same clock in every process).
Reports medians over the runs of: when the first worker batch starts and the last one ends, each
side's microseconds per key, how long the workers sat between batches, and how long the reading
process waited at the end (from its last batch to the end of ``KeyStream.finish``; a whole file's
exposures are scored in it as its batches are found, so that includes scoring the last ones).  Make ZIP and
STORE with ``benchmarks/check_bench.py`` (its ``--workdir``).

A file read whole before the store's thread has read the store is checked as an array, with no batch to
time: small inputs on a busy machine can race so.  ``--store-first`` makes each run wait for the store's
read before reading the file (its first batches then wait too), so that every run streams.
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
import json, os, sys, time
T0 = time.perf_counter()
out, store_first, args = sys.argv[1], sys.argv[2] == "store-first", sys.argv[3:]
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the console script
import bluezone.cli
import bluezone.matching.check as check
import bluezone.matching.keystream as keystream
if store_first:  # the store read before the file, so that the file streams however small it is
    started = check._HeardInBackground.__init__
    def read_first(self, *args, **kwargs):
        started(self, *args, **kwargs)
        self._read.exception()  # waited for; its error, if any, raised where the check asks for it
    check._HeardInBackground.__init__ = read_first
PARENT = os.getpid()
found = keystream.keys_heard
def timed(keys, heard, **kwargs):
    start = time.perf_counter()
    result = found(keys, heard, **kwargs)
    line = json.dumps([os.getpid() == PARENT, start - T0, time.perf_counter() - T0, len(keys)])
    with open(out, "a") as f:  # one short append a batch, in whichever process
        f.write(line + "\n")
    return result
keystream.keys_heard = timed  # before the workers fork
finish = keystream.KeyStream.finish
def finish_timed(self, *args, **kwargs):
    result = finish(self, *args, **kwargs)
    with open(out, "a") as f:
        f.write(json.dumps(["finished", time.perf_counter() - T0]) + "\n")
    return result
keystream.KeyStream.finish = finish_timed
bluezone.cli.cli(args, standalone_mode=False)
"""


def summarise(lines: list[list]) -> dict[str, float]:
    """One run's figures from its lines ([in the parent, start, end, keys] a batch; ["finished", t])."""
    batches = [line for line in lines if line[0] != "finished"]
    finished = next((line[1] for line in lines if line[0] == "finished"), None)
    if finished is None:
        raise SystemExit("the check streamed no batches (a file of fewer than 2 x keystream.EARLY_BATCH keys, or --jobs 1)")
    workers = sorted((b for b in batches if not b[0]), key=lambda b: b[1])
    parent = [b for b in batches if b[0]]

    def per_key(side: list[list]) -> float:
        return sum(b[2] - b[1] for b in side) / max(1, sum(b[3] for b in side)) * 1e6

    return {
        "worker_first_start": workers[0][1] if workers else 0.0,
        "worker_last_end": workers[-1][2] if workers else 0.0,
        "keys_derived": sum(b[3] for b in batches),
        "worker_batches": len(workers),
        "parent_batches": len(parent),
        "worker_us_per_key": per_key(workers),
        "parent_us_per_key": per_key(parent),
        "worker_idle_between_batches_ms": 1000 * sum(max(0.0, b[1] - a[2]) for a, b in zip(workers, workers[1:])),
        "parent_wait_at_end_ms": 1000 * (finished - max((b[2] for b in parent), default=finished)),
        "finished": finished,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=Path, required=True, help="the key file (check_bench.py's zip)")
    parser.add_argument("--db", type=Path, required=True, help="the store")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, nargs="*", default=[], help="directories each holding an older bluezone/")
    parser.add_argument("--store-first", action="store_true", help="read the store before the file (every run streams)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from check_bench import compile_sources, imported_package

    variants: dict[str, Path | None] = {"now": None, **{src.name: src.resolve() for src in args.baseline_src}}
    compile_sources(imported_package(), *(src / "bluezone" for src in variants.values() if src is not None))
    load = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    command = ["check", "--keys", str(args.keys.resolve()), "--db", str(args.db.resolve()), "--json", "--jobs", str(args.jobs)]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for name, src in variants.items():  # alternating: load from elsewhere falls on all alike
                out = Path(tmp) / f"{name}-{i}.jsonl"
                env = dict(os.environ) if src is None else {**os.environ, "PYTHONPATH": str(src)}
                order = "store-first" if args.store_first else "as-run"
                subprocess.run([sys.executable, "-c", CHILD, str(out), order, *command], check=True, capture_output=True, cwd=tmp, env=env)
                lines = out.read_text().splitlines() if out.exists() else []  # none: no batch streamed
                runs[name].append(summarise([json.loads(line) for line in lines]))
    result = {
        "keys": str(args.keys),
        "jobs": args.jobs,
        "median": {v: {name: round(statistics.median(r[name] for r in rs), 4) for name in rs[0]} for v, rs in runs.items()},
        "runs": runs,
        "load_average_start_end": [load, [round(x, 2) for x in os.getloadavg()]],
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return result


if __name__ == "__main__":
    main()
