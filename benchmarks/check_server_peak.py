"""What tracemalloc's peak of ``check --server`` holds as the revisions grow: where it is reached and
the lines whose memory is alive there, so that what grows with the revisions can be named.

    .venv/bin/python benchmarks/check_server_peak.py KEYS R1 [R2 ...] [--per-file N] [--budget N]
        [--workdir DIR] [--top N] [--baseline-src DIR]

The files and store of ``check_server_revisions.py`` (KEYS keys and R revoked revisions of other keys,
files of at most ``--per-file`` revisions), made once in ``--workdir``; each R checked in a process of
its own with ``tracemalloc`` started just before the check.  A profile hook on every Python call and
return takes a snapshot whenever the traced memory has passed its highest so far by 64 KiB, so the
last snapshot is taken within 64 KiB (and one call) of the peak.  ``--budget N`` sets both of
``revisions.IN_MEMORY`` and ``EARLIER_IN_MEMORY`` (tests/server/test_revision_spool.py uses 1,000).
Prints one JSON line per R: the peak (MiB), the call stack at the snapshot, and its ``--top`` lines.
``--baseline-src DIR`` (a tree holding an older ``bluezone/``, e.g. ``git archive 6da841f bluezone``)
checks each R with it too, on ``PYTHONPATH``, its line beside this tree's (``tree``).
The hook slows a check several times: time it with ``check_server_revisions.py``, not here.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_server_revisions import check, store_copy  # noqa: E402  (a directory that is not a checkout)

STEP = 64 << 10  # bytes the traced memory must pass its highest by before a new snapshot


def one(where: Path, budget: int | None, top: int) -> dict[str, Any]:
    """The check of the files in ``where`` with ``tracemalloc`` on, and a snapshot near its peak."""
    importlib.import_module("bluezone.client.check")  # imported before tracing starts
    import bluezone.client.revisions as revisions

    if budget is not None:
        revisions.IN_MEMORY = revisions.EARLIER_IN_MEMORY = budget
    highest: dict[str, Any] = {"bytes": 0}

    def hook(frame: FrameType, event: str, arg: object) -> None:
        now = tracemalloc.get_traced_memory()[0]
        if now > highest["bytes"] + STEP:
            stack, f = [], frame
            while f is not None and len(stack) < 8:
                stack.append(f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}")
                f = f.f_back
            highest.update(bytes=now, stack=stack, snapshot=tracemalloc.take_snapshot())

    with tempfile.TemporaryDirectory() as tmp:
        path = store_copy(where, Path(tmp))
        tracemalloc.start()
        sys.setprofile(hook)
        try:
            result = check(where, path)
        finally:
            sys.setprofile(None)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    snapshot = highest["snapshot"].filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    lines = [
        {"line": f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}", "mib": round(s.size / 2**20, 3), "blocks": s.count}
        for s in snapshot.statistics("lineno")[:top]
    ]
    return {"revised": result.revised, "peak_mib": round(peak / 2**20, 3), "snapshot_mib": round(highest["bytes"] / 2**20, 3),
            "stack": highest["stack"], "lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", type=int)
    parser.add_argument("revisions", type=int, nargs="+")
    parser.add_argument("--per-file", type=int, default=50_000, help="revisions a file at most (default 50,000)")
    parser.add_argument("--budget", type=int, help="revisions.IN_MEMORY and EARLIER_IN_MEMORY (default: as shipped)")
    parser.add_argument("--workdir", type=Path, help="where the files are made, once (default: a temporary directory)")
    parser.add_argument("--top", type=int, default=10, help="lines shown (default 10)")
    parser.add_argument("--baseline-src", type=Path, help="a tree with an older bluezone/, checked beside this one")
    args = parser.parse_args(sys.argv[1:])
    revisions_script = Path(__file__).resolve().parent / "check_server_revisions.py"
    trees = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        for n_rev in args.revisions:
            where = (args.workdir or Path(tmp)) / f"k{args.keys}_r{n_rev}_p{args.per_file}"
            files = max(20, -(-n_rev // args.per_file))
            subprocess.run([sys.executable, revisions_script, "make", str(args.keys), str(n_rev), str(files), str(where)], check=True)
            for name, tree in trees.items():
                command = [sys.executable, __file__, "--one", str(where), str(args.budget), str(args.top)]
                out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
                if out.returncode:
                    raise SystemExit(out.stderr[-2000:])
                line = {"tree": name, "keys": args.keys, "revisions": n_rev, "budget": args.budget, **json.loads(out.stdout)}
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        budget = None if sys.argv[3] == "None" else int(sys.argv[3])
        print(json.dumps(one(Path(sys.argv[2]), budget, int(sys.argv[4]))))
    else:
        main()
