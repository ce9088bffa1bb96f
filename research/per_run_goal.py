"""Issue 13's per-run F1 goal read against sampling: can any estimator be above GAEN in every fresh run?

Usage: python research/per_run_goal.py [--draws 20000] [--as-shipped]
e.g.   python research/per_run_goal.py > simulations/results/per_run_goal_seeds72-111.txt

Reads only figures already committed in ``simulations/results/`` (nothing is run): the per-run F1 of the shipped
scorer and of GAEN on fresh seeds 72-111 (five sets of 8 seeds, seven shipped scenes, 280 runs), each run's true
contacts, and for seeds 72-95 each run's paired bootstrap of its F1 margin (``fresh_seeds.py --draws 100``: the
run's receivers drawn with replacement, each with all its pairs, both scorers scored on the draw).  Per scene:

1. the paired F1 margin over the 40 runs and over each set of 8, with a bootstrap of the runs (runs drawn with
   replacement): its 95 % interval and the share of draws at or below zero;
2. the true contacts a run has, and the sampling spread of a run's F1 margin: from the committed per-run
   bootstraps (their 95 % width / 3.92) and, for every run, fitted as ``a / sqrt(true contacts)`` per scene (the
   spread of a share falls as one over the root of what it counts; 96-111 keep no bootstrap);
3. how often a scorer whose expected margin is the measured 40-run mean would still fall below GAEN in one run by
   sampling alone (normal with the run's spread): expected runs below of the 40, and the chance that a set of 8
   has at least one, beside what was observed; the expected margin it would take for a set of 8 to be all above
   GAEN with probability 0.5 and 0.95 at the scene's median spread; and the same chances with the spread between
   the 40 runs (sampling and each seed's own crowd and phones together).

Which figures: the scorer shipped when each set was read (72-87: whole-slot credit at 15 minutes; 88-95: the span
verdict at 14.9 minutes, the fifteenth session's candidate block that became the default; 96-111: the present
default), so the F1 of 72-87 is of the verdict before the span change; ``--as-shipped`` reads 88-95's "shipped" block
(whole slots) instead.  ROC-AUC and PR-AUC do not depend on that choice and are not read here.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "simulations" / "results"
#: (seeds, file, block of the file holding the per-run lines; None: the file's only per-run block)
SETS = (
    ("72-79", "fresh_seeds_fourteenth_72-79.txt", None),
    ("80-87", "fresh_seeds_fifteenth_80-87.txt", "=== shipped"),
    ("88-95", "fresh_seeds_sixteenth_88-95.txt", "=== candidate"),
    ("96-103", "ranking_reference_seeds96-103.txt", None),
    ("104-111", "ranking_reference_seeds104-111.txt", None),
)
NUM = r"([+-]?\d+\.\d+)"
#: fresh_seeds.py's per-run line: scene, seed, true contacts, bluezone's F1, GAEN's F1, the F1 margin's 95 % interval
FRESH = re.compile(rf"^(\w+)\s+(\d+)\s+contacts\s+(\d+) /\s+\d+\s+P/R \S+\s+bz {NUM}/\S+\s+gaen {NUM}/\S+\s+margin \S+"
                   rf"(?:\s+LOSS)?\s+95 % \[{NUM},{NUM}\].*P\(<0\) (\d\.\d+)/")
#: reference_retune.py --runs' line: scene_seed, true contacts, GAEN's F1, the shipped scorer's F1 margin
RUNS = re.compile(rf"^(\w+)_(\d+)\s+true\s+(\d+)\s+gaen {NUM}/\S+\s+shipped {NUM}/")


@dataclass(frozen=True)
class Run:
    """One fresh run's committed F1 figures."""

    scene: str
    seed: int
    true: int  # true contacts (pairs)
    margin: float  # bluezone's F1 minus GAEN's
    gaen: float
    sd: float | None  # the run's own bootstrap spread of the margin (72-95), else None
    below: float | None = None  # the share of the run's own bootstrap draws below zero (72-95)


def parse(text: str, block: str | None) -> list[Run]:
    """The per-run lines of one committed file (of ``block`` where the file holds several)."""
    if block is not None:
        text = text.split(block, 1)[1].split("\n===", 1)[0]
    runs = []
    for line in text.splitlines():
        if m := FRESH.match(line):
            scene, seed, true, bz, gaen, lo, hi, below = m.groups()
            runs.append(Run(scene, int(seed), int(true), float(bz) - float(gaen), float(gaen), (float(hi) - float(lo)) / 3.92,
                            float(below)))
        elif m := RUNS.match(line):
            scene, seed, true, gaen, margin = m.groups()
            runs.append(Run(scene, int(seed), int(true), float(margin), float(gaen), None))
    return runs


def load(results: Path = RESULTS, as_shipped: bool = False) -> dict[str, list[Run]]:
    """Every set's runs, checked complete (56 a set, each scene's 8 seeds once)."""
    out = {}
    for seeds, name, block in SETS:
        runs = parse((results / name).read_text(), "=== shipped" if as_shipped and block else block)
        lo, hi = map(int, seeds.split("-"))
        got = sorted((r.scene, r.seed) for r in runs)
        want = sorted((s, k) for s in {r.scene for r in runs} for k in range(lo, hi + 1))
        if len(runs) != 56 or got != want:
            raise SystemExit(f"{name}: {len(runs)} runs parsed, not the 56 of seeds {seeds}")
        out[seeds] = runs
    return out


def phi(x: float) -> float:
    """The standard normal's distribution function."""
    return 0.5 * math.erfc(-x / math.sqrt(2))


def phi_inv(p: float) -> float:
    """Its inverse, by bisection (enough for a table)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if phi(mid) < p else (lo, mid)
    return (lo + hi) / 2


def mean_interval(margins: np.ndarray, draws: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """95 % interval of the mean margin with the runs drawn with replacement, and the share of draws at or below 0."""
    means = margins[rng.integers(0, len(margins), (draws, len(margins)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), float((means <= 0).mean())


def spread_scale(runs: list[Run]) -> tuple[float, float, float]:
    """``a`` of ``sd = a / sqrt(true contacts)`` (median over the runs with a bootstrap) and its quartiles."""
    a = np.array([r.sd * math.sqrt(r.true) for r in runs if r.sd is not None])
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=20000)
    ap.add_argument("--as-shipped", action="store_true", help="88-95 as shipped then (whole slots), not the span verdict")
    a = ap.parse_args()
    sets = load(as_shipped=a.as_shipped)
    rng = np.random.default_rng(13)
    scenes = sorted({r.scene for runs in sets.values() for r in runs})
    print("# Issue 13's per-run F1 goal against sampling: python research/per_run_goal.py" + (" --as-shipped" if a.as_shipped else ""))
    print("# from committed figures only: " + ", ".join(f"{s} ({n}{', ' + b[4:] if b else ''})" for s, n, b in SETS))
    print(f"# bootstrap of the runs: {a.draws} draws; a run's sampling spread: its committed bootstrap (72-95) or a / sqrt(true)")
    print("\n## 1. The paired F1 margin over GAEN (bluezone minus GAEN), runs drawn with replacement")
    print(f"{'scene':<10} {'set':>8}  runs  mean margin  95 % interval       P(mean <= 0)  runs below GAEN (seed: margin)")
    per_scene: dict[str, list[Run]] = {s: [] for s in scenes}
    for seeds, runs in sets.items():
        for r in runs:
            per_scene[r.scene].append(r)
    for scene in scenes:
        rows = [(seeds, [r for r in runs if r.scene == scene]) for seeds, runs in sets.items()] + [("all", per_scene[scene])]
        for seeds, rs in rows:
            m = np.array([r.margin for r in rs])
            lo, hi, below = mean_interval(m, a.draws, rng)
            losses = ", ".join(f"{r.seed}: {r.margin:+.3f}" for r in rs if r.margin < 0) or "none"
            print(f"{scene:<10} {seeds:>8}  {len(rs):>4}  {m.mean():+11.3f}  [{lo:+.3f}, {hi:+.3f}]  {below:12.4f}  "
                  + (losses if seeds != "all" else f"{sum(r.margin < 0 for r in rs)} of {len(rs)}"))
    print("\n## 2. True contacts a run, and the sampling spread of a run's F1 margin")
    print(f"{'scene':<10} true contacts a run (median, range)  GAEN F1 (median)  a (sd x sqrt(true); quartiles)"
          "  sd at the median run  sd between the 40 runs")
    fits = {}
    for scene in scenes:
        rs = per_scene[scene]
        t = np.array([r.true for r in rs])
        a_med, a_lo, a_hi = spread_scale(rs)
        fits[scene] = a_med
        between = float(np.std([r.margin for r in rs], ddof=1))
        counts = f"{np.median(t):.0f} ({t.min()}-{t.max()})"
        print(f"{scene:<10} {counts:<36} {np.median([r.gaen for r in rs]):16.3f}  {a_med:.3f} ({a_lo:.3f}-{a_hi:.3f})"
              f"            {a_med / math.sqrt(np.median(t)):20.3f}  {between:22.3f}")
    print("\n## 3. A scorer whose expected margin is the 40-run mean: runs below GAEN by sampling alone")
    print("(each run normal about the mean with its own spread: its committed bootstrap's where kept, else a / sqrt(true);"
          "\n 'a set of 8': the chance at least one of its 8 runs falls below, averaged over the five sets)")
    print(f"{'scene':<10} mean    expected below of 40  observed  a set of 8 with one or more below  observed sets"
          "  margin for all 8 above: P 0.5 / 0.95  | with the spread between the 40 runs: below of 40, a set of 8, margin for"
          " P 0.95")
    p_one = 1 - 0.5 ** (1 / 8), 1 - 0.95 ** (1 / 8)  # per-run chance of falling below that leaves 8 of 8 above
    clean = {"sampling": 1.0, "between": 1.0}  # the chance that all 56 runs of a set of 8 seeds are above GAEN
    for scene in scenes:
        rs = per_scene[scene]
        mu = float(np.mean([r.margin for r in rs]))
        p = {(r.seed): phi(-mu / (r.sd if r.sd is not None else fits[scene] / math.sqrt(r.true))) for r in rs}
        sets_hit = [1 - math.prod(1 - p[r.seed] for r in runs if r.scene == scene) for runs in sets.values()]
        observed_sets = sum(any(r.margin < 0 for r in runs if r.scene == scene) for runs in sets.values())
        sd = fits[scene] / math.sqrt(float(np.median([r.true for r in rs])))
        need = [sd * -phi_inv(q) for q in p_one]
        spread = float(np.std([r.margin for r in rs], ddof=1))  # the crowd's draw as well as the sampling
        between = phi(-mu / spread)
        clean["sampling"] *= 1 - float(np.mean(sets_hit))
        clean["between"] *= (1 - between) ** 8
        print(f"{scene:<10} {mu:+.3f}  {sum(p.values()):20.1f}  {sum(r.margin < 0 for r in rs):8}  {np.mean(sets_hit):33.2f}"
              f"  {observed_sets:>8} of 5   {need[0]:+.3f} / {need[1]:+.3f}{'':>19}| {40 * between:4.1f}, {1 - (1 - between) ** 8:.2f},"
              f" {spread * -phi_inv(p_one[1]):+.3f}")
    print(f"all 56 runs of a set of 8 seeds (seven scenes) above GAEN, for scorers with these expected margins: "
          f"{clean['sampling']:.2f} by sampling alone, {clean['between']:.3f} with the spread between runs (observed: "
          f"{sum(all(r.margin >= 0 for r in runs) for runs in sets.values())} of {len(sets)} sets)")
    checked = [(phi(-r.margin / r.sd), r.below) for runs in sets.values() for r in runs if r.sd and r.below is not None]
    gap = np.array([x - y for x, y in checked])
    print(f"\nthe normal reading checked against the committed bootstraps ({len(checked)} runs of 72-95): the share of a run's"
          f" draws below zero, its normal's against the bootstrap's: summed {sum(x for x, _ in checked):.1f} against"
          f" {sum(y for _, y in checked):.1f}, median difference {np.median(gap):+.3f}, largest {gap[np.argmax(abs(gap))]:+.3f}")


if __name__ == "__main__":
    main()
