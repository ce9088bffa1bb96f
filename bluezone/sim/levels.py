"""F0 -> F1 -> F2 in the simulator: who is truly a contact or a contact of a contact, and whom
bluezone warns at each level.

Needs a run in which every phone sends (``positives = "all"``): every advert is stored and every
pair is judged, so the same run answers "did F1 f's recursive keys reach e?" for any f.  Then a
seeded draw picks the F0s (who test positive), and:

- **truth**: F1 = a true close contact of an F0 (``close_contact_min`` minutes within
  ``close_distance_m`` on a day); F2 = a true close contact of a true F1 whose contact went on
  after that F1's own exposure began (time order: the last close moment of the F1-F2 pair on
  that day comes after the F1's first close moment with an F0), and who is neither F0 nor F1;
- **bluezone**: a phone is warned F1 when a scorer finds a close contact with an F0's keys; each
  warned F1 uploads its keys marked recursive from its exposure day on (what ``bluezone upload``
  does with a recursive code), and a phone (not F0, not warned F1) is warned F2 when the scorer
  finds a close contact with those keys.  Levels stop at F2.

Both levels are scored per phone (every phone that is not an F0 is one unit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bluezone.errors import ConfigError
from bluezone.sim.catalogue import find_scenario, scenario_names
from bluezone.sim.engine import RunResult, people
from bluezone.sim.metrics import MIN_TRUE_CONTACTS, confusion, rounded
from bluezone.sim.scenario import Scenario, load_scenario
from bluezone.sim.streams import streams


@dataclass(frozen=True)
class Levels:
    """Per phone: 0 = neither, 1 = F1, 2 = F2 (F0s are -1); and the day (Unix s) each F1 was exposed."""

    level: np.ndarray
    exposed_day: np.ndarray  # of F1s; -1 for others


def _check_levels(scenario: Scenario, phones: int, uploaders: int, count: int) -> None:
    """Refuse a run whose levels cannot be scored: not every phone sends, or no room for ``count`` F0s."""
    if uploaders != phones:
        shipped = [name for name in scenario_names() if load_scenario(find_scenario(name)).devices.positives == "all"]
        raise ConfigError(
            "F2 levels need a scenario where every phone sends (positives = \"all\"): "
            f"{scenario.name} has {uploaders} uploaders of {phones} phones (give a copy of its file [devices]"
            f" positives = \"all\", or a scenario that has it: {', '.join(shipped)})"
        )
    if not 1 <= count < phones:
        raise ConfigError(f"F0 count must be 1-{phones - 1} for {scenario.name}, got {count}")


def check_levels_before_run(scenario: Scenario, seed: int, count: int) -> None:
    """What ``pick_f0`` would refuse, said before the run: the run's phones are drawn alone (milliseconds,
    ``engine.people``), where the refusal came after a wedding's five minutes of simulation."""
    phones = len(people(scenario, streams(seed))[1].person)
    positives = scenario.devices.positives
    _check_levels(scenario, phones, phones if positives == "all" else min(int(positives), phones), count)


def pick_f0(result: RunResult, count: int, seed: int) -> np.ndarray:
    """``count`` F0 phones drawn with ``seed`` (sorted)."""
    n = int(result.truth.devices)
    _check_levels(result.scenario, n, len(result.senders), count)
    return np.sort(np.random.default_rng(seed).choice(n, count, replace=False))


def _chain(close: dict[int, np.ndarray], f0: np.ndarray, after: Any) -> Levels:
    """Levels from per-day close matrices ``close[day][sender, receiver]``.

    ``after(day, f, e, f1_day)`` says whether the (f, e) contact on ``day`` counts for an F1 ``f``
    exposed on ``f1_day`` (time order)."""
    n = next(iter(close.values())).shape[1] if close else 0
    level = np.zeros(n, np.int8)
    level[f0] = -1
    exposed = np.full(n, -1, np.int64)
    for day in sorted(close):
        hit = close[day][f0].any(axis=0) & (level == 0)
        exposed[hit] = day
        level[hit] = 1
    f1 = np.flatnonzero(level == 1)
    for day in sorted(close):
        for f in f1.tolist():
            if day < exposed[f]:
                continue
            for e in np.flatnonzero(close[day][f] & (level == 0)).tolist():
                if after(day, f, e, int(exposed[f])):
                    level[e] = 2
    return Levels(level, exposed)


def true_levels(result: RunResult, f0: np.ndarray) -> Levels:
    """What really happened, from the true positions."""
    sc = result.scenario
    minutes = result.truth.minutes(sc.close_distance_m)
    close = {day: m >= sc.close_contact_min - 1e-9 for day, m in minutes.items()}
    first, last = result.truth.first_close, result.truth.last_close
    became: dict[int, float] = {}  # F1 -> the first close moment with an F0 on its exposure day

    def after(day: int, f: int, e: int, f1_day: int) -> bool:
        if day > f1_day:
            return True
        if f not in became:
            became[f] = float(np.nanmin(first[f1_day][f0, f])) if f1_day in first else -np.inf
        return day in last and bool(last[day][f, e] > became[f])

    return _chain(close, f0, after)


def warned_levels(result: RunResult, f0: np.ndarray, scorer: str) -> Levels:
    """Whom bluezone warns: scorer verdicts per (day, sender, receiver), recursive keys from the exposure day."""
    n = int(result.truth.devices)
    scores = result.scores[scorer]
    days = sorted({day for day, _, _ in scores} | set(result.truth.seconds))
    close = {day: np.zeros((n, n), bool) for day in days}
    for (day, row, device), s in scores.items():
        if s.close_contact:
            close[day][int(result.senders[row]), device] = True
    return _chain(close, f0, lambda day, f, e, f1_day: True)


def levels_summary(result: RunResult, f0_count: int, seed: int) -> dict[str, Any]:
    """Precision and recall at both levels for every scorer of the run (JSON-ready)."""
    f0 = pick_f0(result, f0_count, seed)
    truth = true_levels(result, f0)
    units = truth.level >= 0
    out: dict[str, Any] = {
        "f0": [int(x) for x in f0],
        "true_f1": int((truth.level == 1).sum()),
        "true_f2": int((truth.level == 2).sum()),
        "scorers": {},
    }
    out["true_levels_note"] = levels_note(out["true_f1"], out["true_f2"])
    for name in result.scores:
        warned = warned_levels(result, f0, name)
        per: dict[str, Any] = {}
        for lvl, label in ((1, "F1"), (2, "F2")):
            c = confusion(truth.level[units] == lvl, warned.level[units] == lvl)
            per[label] = {
                "precision": rounded(c.precision),
                "recall": rounded(c.recall),
                "confusion": c.counts(),
                "warned": int((warned.level == lvl).sum()),
            }
        out["scorers"][name] = per
    return out


def levels_note(true_f1: int, true_f2: int) -> str | None:
    """What a level's precision and recall rest on when it has few true people (None: both have enough).

    A few F0s in a small crowd give a handful of true F1s and F2s, from one seed and one draw of F0s: one
    person more or less moves a level's recall by 1/count, more than the differences a reader would look
    for, and a level with nobody to find has no recall at all (its warnings are all false ones).  Said per
    level, in numbers, without claiming more than that (the old line said the figures "show the chain
    works", also under a recall of 0).
    """
    few = {label: n for label, n in (("F1", true_f1), ("F2", true_f2)) if n < MIN_TRUE_CONTACTS}
    if not few:
        return None
    counts = " and ".join(f"{label} {n}" for label, n in few.items())
    moved = " and ".join(f"{label} recall by {1 / n:.2f}" for label, n in few.items() if n)
    said = [f"one person found or missed moves {moved}"] if moved else []
    said += [f"{label} recall is undefined (no true {label}: every {label} warning is a false one)"
             for label, n in few.items() if not n]
    levels = "this level" if len(few) == 1 else "these levels"
    return (f"true {counts} (fewer than {MIN_TRUE_CONTACTS}), from one seed and one draw of F0s: {'; '.join(said)};"
            f" too few people to tell which scorer warns better at {levels} (more F0s with --levels, or a larger"
            " crowd, give more)")


def levels_table(levels: dict[str, Any]) -> str:
    """Terminal lines for the levels report."""
    lines = [
        f"F0 -> F1 -> F2 with {len(levels['f0'])} F0(s): true F1 {levels['true_f1']}, true F2 {levels['true_f2']}",
        f"{'scorer':<10}{'level':>6}{'warned':>8}{'precision':>10}{'recall':>8}{'TP':>5}{'FP':>5}{'FN':>5}",
    ]
    for name, per in levels["scorers"].items():
        for label, m in per.items():
            c = m["confusion"]
            p = "n/a" if m["precision"] is None else f"{m['precision']:.3f}"
            r = "n/a" if m["recall"] is None else f"{m['recall']:.3f}"
            lines.append(f"{name:<10}{label:>6}{m['warned']:>8}{p:>10}{r:>8}{c['tp']:>5}{c['fp']:>5}{c['fn']:>5}")
    if levels.get("true_levels_note"):
        lines.append(f"note: {levels['true_levels_note']}")
    return "\n".join(lines)
