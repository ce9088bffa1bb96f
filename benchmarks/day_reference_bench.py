"""What the day-level reference costs the bluezone scorer, beside its first form in the same run.

    .venv/bin/python benchmarks/day_reference_bench.py [--scenario simulations/market.toml]
        [--minutes 30] [--seed 1] [--repeat 5] [--json]

One engine run keeps every receiver's context and windows; the bluezone scorer scores them all once,
noting each ``ReceiverContext.reference`` call it makes (a window with a minute of too few other
links asks for its day's reference without its own link).  Those calls are then timed, alternating
``--repeat`` times: as ``reference`` answers them now (each receiver's days sorted once, a window's own
link-minutes left out by rank) and with the first form, kept below (``np.percentile`` over a copy of
the day's values, per call).  Each pass builds fresh contexts, so the sorting is in the time.  CPU
seconds, medians; every answer must be the same number both ways.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.matching.bluezone_scorer import BluezoneScorer
from bluezone.matching.receiver import ReceiverContext
from bluezone.sim import engine
from bluezone.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
Call = tuple[ReceiverContext, int, int, Any, int]


def first_form(context: ReceiverContext, day: int, min_link_minutes: int = 1, exclude: Any = None, min_run: int = 1) -> float | None:
    """``ReceiverContext.reference`` before the seventeenth session: a percentile of a copy per call."""
    keep = context._kept(context.value_day == day, exclude, min_run)
    if int(keep.sum()) < max(min_link_minutes, 1):
        return None
    return float(np.percentile(context.values[keep], context.quantile))


def scored_calls(scenario: Path, minutes: float, seed: int) -> tuple[list[Call], int]:
    """Every reference call the default bluezone scorer makes on the run's windows, and how many windows."""
    result = engine.run(load_scenario(scenario).with_overrides(duration_min=minutes), seed, scorers=["bluezone"],
                        keep_windows=True)
    assert result.windows is not None and result.contexts is not None
    calls: list[Call] = []
    asked = ReceiverContext.reference

    def noting(self: ReceiverContext, day: int, min_link_minutes: int = 1, exclude: Any = None, min_run: int = 1) -> float | None:
        calls.append((self, day, min_link_minutes, exclude, min_run))
        return asked(self, day, min_link_minutes, exclude, min_run)

    scorer, windows = BluezoneScorer(), 0
    ReceiverContext.reference = noting  # type: ignore[method-assign]
    try:
        for (_, _, device), found in result.windows.items():
            calibrated = scorer.for_receiver(result.contexts[device])
            for w in found:
                calibrated.score(w)
                windows += 1
    finally:
        ReceiverContext.reference = asked  # type: ignore[method-assign]
    return calls, windows


def timed(calls: list[Call], now: bool) -> tuple[float, list[float | None]]:
    """CPU seconds to answer ``calls`` on fresh copies of their contexts (nothing sorted yet), and the answers."""
    fresh: dict[int, ReceiverContext] = {}
    for c, *_ in calls:
        fresh.setdefault(id(c), ReceiverContext(c.values, c.value_day, c.link_minute_of, c.quantile, c.value_slot,
                                                c.slot_seconds, c.value_run))
    answers: list[float | None] = []
    t = time.process_time()
    for c, day, least, exclude, run in calls:
        context = fresh[id(c)]
        answers.append(context.reference(day, least, exclude, run) if now else first_form(context, day, least, exclude, run))
    return time.process_time() - t, answers


def same(a: float | None, b: float | None) -> bool:
    return a is b or (a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b))))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "simulations" / "market.toml")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.minutes <= 0:
        parser.error("--repeat must be 1 or more and --minutes above 0")
    calls, windows = scored_calls(args.scenario, args.minutes, args.seed)
    cpu: dict[str, list[float]] = {"first form": [], "now": []}
    agree = True
    for _ in range(args.repeat):
        old_s, old = timed(calls, now=False)
        new_s, new = timed(calls, now=True)
        cpu["first form"].append(old_s)
        cpu["now"].append(new_s)
        agree = agree and all(same(a, b) for a, b in zip(old, new))
    med = {k: statistics.median(v) for k, v in cpu.items()}
    report: dict[str, Any] = {
        "scenario": args.scenario.stem, "minutes": args.minutes, "seed": args.seed, "windows": windows,
        "reference_calls": len(calls), "receivers": len({id(c) for c, *_ in calls}), "load": os.getloadavg()[0],
        "cpu_ms_median": {k: round(v * 1e3, 2) for k, v in med.items()},
        "us_per_call_median": {k: round(v / max(len(calls), 1) * 1e6, 1) for k, v in med.items()},
        "ratio_first_form_over_now": round(med["first form"] / med["now"], 3) if med["now"] else None,
        "same_answers": agree,
    }
    print(json.dumps(report, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return report


if __name__ == "__main__":
    main()
