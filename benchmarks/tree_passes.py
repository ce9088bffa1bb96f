"""What the benchmarks that time this tree beside an older one share: the trees, fresh-interpreter passes
alternating between them, and the report's common lines.

A pass imports bluezone from its tree by running with that tree as the working directory and on
PYTHONPATH (``python -c`` and ``-m`` put the working directory first), and says which ``bluezone`` it
imported, so a pass that silently timed the installed tree is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def add_options(parser: argparse.ArgumentParser, passes: int = 3) -> None:
    """``--passes``, ``--baseline-src`` and ``--json``."""
    sys.path.insert(0, str(HERE))  # check_bench.py, beside this script (also when loaded by path)
    from check_bench import _at_least_one

    parser.add_argument("--passes", type=_at_least_one, default=passes)
    parser.add_argument("--baseline-src", type=Path, default=None, help="a directory holding an older bluezone/")
    parser.add_argument("--json", action="store_true")


def trees(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Path]:
    """{"now": this tree, "baseline": ``--baseline-src``'s, if given}; a usage error if it holds no bluezone/."""
    if args.baseline_src is not None and not (args.baseline_src / "bluezone" / "__init__.py").is_file():
        parser.error(f"--baseline-src: {args.baseline_src} holds no bluezone/ package (make one with git archive)")
    out = {"now": HERE.parent}
    if args.baseline_src is not None:
        out["baseline"] = args.baseline_src.resolve()
    return out


def alternate(trees: dict[str, Path], passes: int, run: Callable[[Path], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``run(tree)`` ``passes`` times for each tree, the trees taking turns (so load drifts hit both alike)."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(passes):
        for name, src in trees.items():
            out[name].append(run(src))
    return out


def child(src: Path, argv: list[str]) -> dict[str, Any]:
    """``python ARGV`` importing bluezone from ``src``: the JSON line it prints (with the ``src`` it imported)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, *argv], env=env, cwd=src, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    if "src" in result and not result["src"].startswith(str(src)):
        raise SystemExit(f"the pass imported {result['src']}, not the tree {src}")
    return result


def one_hash(runs: list[dict[str, Any]]) -> Any:
    """The passes' common ``hash``, or a note that they differ (a run that is not deterministic)."""
    hashes = {json.dumps(r["hash"], sort_keys=True) for r in runs}
    return runs[0]["hash"] if len(hashes) == 1 else "differs between passes"


def compare(report: dict[str, Any], median_key: str, same_key: str, ratio_key: str) -> None:
    """With a baseline tree: whether both trees gave the same answer (``same_key``) and how many times the
    baseline's ``median_key`` is this tree's (``ratio_key``)."""
    if "baseline" in report["trees"]:
        now, old = report["trees"]["now"], report["trees"]["baseline"]
        report[same_key] = now["hash"] == old["hash"]
        report[ratio_key] = round(old[median_key] / now[median_key], 3)


def finish(report: dict[str, Any], args: argparse.Namespace, lines: list[str], keys: tuple[str, ...]) -> dict[str, Any]:
    """Print ``report`` as JSON with ``--json``, else ``lines`` and the ``keys`` it holds."""
    if args.json:
        print(json.dumps(report, indent=2))
        return report
    for line in lines:
        print(line)
    for key in keys:
        if key in report:
            print(f"{key}: {report[key]}")
    return report
