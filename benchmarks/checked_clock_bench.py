"""``CheckedClock.now()`` (the daemon's clock: every advert's stamp) of this tree beside an older tree's, both loaded
in one process and timed alternately: a clock that believes the wall clock, and one a year's step is not believed.

    git archive REV | tar -x -C /tmp/base && python benchmarks/checked_clock_bench.py --baseline-src /tmp/base

``bluezone/clock.py`` imports only the standard library (and, since the twenty-first session, ``bluezone.boottime``: the
installed tree's), so each tree's file is loaded as a module of its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import statistics
import sys
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
YEAR = 365 * 24 * 3600.0


def load(tree: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, tree / "bluezone" / "clock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clock(module: ModuleType, stepped: bool) -> Any:
    """A checked clock on the real wall clock, synchronised; ``stepped``: its anchor a year behind (not believed)."""
    checked = module.CheckedClock(synced=lambda: True)
    checked.now()
    if stepped:
        checked._anchor = (checked._anchor[0] - YEAR, checked._anchor[1])
        checked.now()
    return checked


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True, help="a directory holding an older bluezone/")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds (the median is reported)")
    parser.add_argument("--calls", type=int, default=20_000, help="calls a timing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.baseline_src / "bluezone" / "clock.py").is_file():
        parser.error(f"--baseline-src: {args.baseline_src} holds no bluezone/clock.py (make one with git archive)")
    logging.getLogger("clock_now").disabled = logging.getLogger("clock_baseline").disabled = True
    now, baseline = load(HERE.parent, "clock_now"), load(args.baseline_src, "clock_baseline")
    out: dict[str, Any] = {}
    for case, stepped in (("believed", False), ("not_believed", True)):
        a, b = clock(baseline, stepped), clock(now, stepped)
        assert (a.off_by != 0) == (b.off_by != 0) == stepped  # the same state both sides
        times: dict[str, list[float]] = {"baseline": [], "now": []}
        for _ in range(args.rounds):
            for side, c in (("baseline", a), ("now", b)):
                times[side].append(min(timeit.repeat(c.now, number=args.calls, repeat=3)) / args.calls * 1e6)
        base, mine = statistics.median(times["baseline"]), statistics.median(times["now"])
        out[case] = {"baseline_us": round(base, 4), "now_us": round(mine, 4), "ratio": round(mine / base, 3)}
    print(json.dumps(out, indent=2) if args.json else "\n".join(
        f"{case}: baseline {r['baseline_us']:.3f} us, now {r['now_us']:.3f} us, {r['ratio']:.2f}x" for case, r in out.items()))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
