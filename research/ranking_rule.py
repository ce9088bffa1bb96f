"""The rule for a ranking-only change, read on ``reference_retune.py --score``'s files (est19, issue 13).

Usage: python research/ranking_rule.py SCORED_DIR SEEDS CANDIDATE [--base shipped] [--runs 56] [--rule est19|guard]

A change that moves only the ranking (``weighted_minutes``) cannot lower the runs below GAEN in F1 (the verdict
does not move), so the fifteenth session's rule 2 is read for the ranking (docs/simulation.md, est19;
``--rule est19``, the default):

1. on no scene does the mean margin over GAEN (F1, ROC-AUC or PR-AUC, over the seeds) fall below BASE's by more
   than 0.001;
2. on no scene do the runs below GAEN in ROC-AUC, or those in PR-AUC, rise; their total over the scenes
   (ROC-AUC and PR-AUC counted apart) falls; and the verdict of every pair is BASE's in every run (checked here,
   not assumed: F1 identical);
3. every run is there (``--runs``: 56 = seven scenes x eight seeds).

``--rule guard`` (est20, twentieth session) asks no loss to fall, since whether a fresh seed holds a loss the
change can reach says nothing about the change; it guards every run instead and asks the whole to improve:

1. as above, and the mean over the scenes of the scene-mean ROC-AUC margin, and that of the PR-AUC margin, each
   higher than BASE's;
2. no run at or above GAEN in ROC-AUC (or in PR-AUC) under BASE is below GAEN under the candidate, so no scene's
   count of runs below GAEN rises; and the verdict of every pair is BASE's in every run;
3. as above.

Prints each scene's mean margins for both, the change, the runs below GAEN by metric (named), and each rule's
outcome.  A run with no true contact has no ROC-AUC or PR-AUC and counts in F1 only as ``credit_table.py``
counts it.  Engine scores only: nothing here re-implements a scorer.
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path

import numpy as np
from estimator_sweep import metrics

METRICS = ("F1", "ROC-AUC", "PR-AUC")
TOLERANCE = 0.001  # rule 1: the tables' rounding


def load(cache: Path, seeds: set[int], names: tuple[str, ...]) -> dict[tuple[str, int], tuple[np.ndarray, dict]]:
    """(scene, seed) -> (truth, {name: (weighted, decided)}) of the files whose seed is in ``seeds``."""
    runs = {}
    for path in sorted(cache.glob("*.pkl")):
        scene, _, seed = path.stem.rpartition("_")
        if int(seed) in seeds:
            d = pickle.loads(path.read_bytes())
            missing = [n for n in names if n not in d["scores"]]
            if missing:
                raise SystemExit(f"{path.name} has no scores for {', '.join(missing)}: run reference_retune.py --score first")
            runs[(scene, int(seed))] = (np.asarray(d["true"]) >= d["cc"], {n: d["scores"][n] for n in names})
    return runs


def judge(runs: dict, base: str, candidate: str) -> dict:
    """Per scene: mean margins over GAEN of both, runs below GAEN per metric (seeds), runs whose verdicts differ."""
    out: dict[str, dict] = {}
    for (scene, seed), (truth, scores) in sorted(runs.items()):
        s = out.setdefault(scene, {"margins": {base: [], candidate: []}, "below": {base: {m: [] for m in METRICS},
                                   candidate: {m: [] for m in METRICS}}, "verdict_differs": [], "runs": 0,
                                   "new_below": []})
        s["runs"] += 1
        if not np.array_equal(scores[candidate][1], scores[base][1]):
            s["verdict_differs"].append(seed)
        gaen = metrics(truth, *scores["gaen"]) if truth.any() else None
        for name in (base, candidate):
            if gaen is None:  # nothing to find: a loss in F1 when it raises more false alarms
                if scores[name][1].sum() > scores["gaen"][1].sum():
                    s["below"][name]["F1"].append(seed)
                continue
            m = np.subtract(metrics(truth, *scores[name]), gaen)
            s["margins"][name].append(m)
            for metric, value in zip(METRICS, m, strict=True):
                if value < 0:
                    s["below"][name][metric].append(seed)
        for metric in METRICS[1:]:  # the guard: a run at or above GAEN under BASE that the candidate takes below
            if seed in s["below"][candidate][metric] and seed not in s["below"][base][metric]:
                s["new_below"].append(f"{metric} {seed}")
    return out


def report(out: dict, base: str, candidate: str, runs_wanted: int, rule: str = "est19") -> bool:
    """Print the table and the rules (``rule``: "est19" or "guard", the module's docstring); True when every rule holds."""
    rule1, rise = True, False
    totals = {base: 0, candidate: 0}
    changes = []
    print(f"scene       {base + ' F1/ROC/PR':<32} {candidate + ' F1/ROC/PR':<32} change              runs below GAEN "
          f"F1 | ROC | PR: {base} -> {candidate}")
    for scene, s in out.items():
        mb, mc = (np.nanmean(s["margins"][n], axis=0) for n in (base, candidate))
        change = mc - mb
        changes.append(change)
        rule1 &= bool((change >= -TOLERANCE).all())
        below = {n: {m: s["below"][n][m] for m in METRICS} for n in (base, candidate)}
        for metric in METRICS[1:]:
            rise |= len(below[candidate][metric]) > len(below[base][metric])
            totals[base] += len(below[base][metric])
            totals[candidate] += len(below[candidate][metric])
        cells = " | ".join(f"{below[base][m]} -> {below[candidate][m]}" for m in METRICS)
        print(f"{scene:<11} " + "/".join(f"{x:+.5f}" for x in mb) + "  " + "/".join(f"{x:+.5f}" for x in mc) + "  "
              + "/".join(f"{x:+.5f}" for x in change) + f"  {cells}")
    differs = {scene: s["verdict_differs"] for scene, s in out.items() if s["verdict_differs"]}
    n_runs = sum(s["runs"] for s in out.values())
    new_below = {scene: s["new_below"] for scene, s in out.items() if s["new_below"]}
    whole = np.mean(changes, axis=0)  # the change of the mean over the scenes of each scene-mean margin
    print(f"runs below GAEN in ROC-AUC or PR-AUC (counted apart): {totals[base]} -> {totals[candidate]}; a scene's count rose: {rise}; "
          f"runs whose verdicts differ from {base}'s: {differs or 'none'}")
    print(f"runs at or above GAEN under {base} and below under {candidate}: {new_below or 'none'}; "
          f"mean over the {len(out)} scenes, change F1/ROC/PR: " + "/".join(f"{x:+.5f}" for x in whole))
    if rule == "guard":
        rule1 &= bool(whole[1] > 0 and whole[2] > 0)
        rule2 = not new_below and not rise and not differs
        print(f"rule 1 (no scene's mean margin falls by more than {TOLERANCE}; the mean over the scenes higher in ROC-AUC "
              f"and in PR-AUC): {'holds' if rule1 else 'FAILS'}")
        print(f"rule 2 (no run at or above GAEN falls below it, no scene's count rises, every verdict identical): "
              f"{'holds' if rule2 else 'FAILS'}")
    else:
        rule2 = not rise and totals[candidate] < totals[base] and not differs
        print(f"rule 1 (no scene's mean margin falls by more than {TOLERANCE}): {'holds' if rule1 else 'FAILS'}")
        print(f"rule 2 (ranking losses fall, none rises, every verdict identical): {'holds' if rule2 else 'FAILS'}")
    rule3 = n_runs == runs_wanted
    print(f"rule 3 ({n_runs} of {runs_wanted} runs): {'holds' if rule3 else 'FAILS'}")
    return rule1 and rule2 and rule3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scored", type=Path)
    ap.add_argument("seeds")
    ap.add_argument("candidate")
    ap.add_argument("--base", default="shipped")
    ap.add_argument("--runs", type=int, default=56, help="runs the rule needs (rule 3)")
    ap.add_argument("--rule", choices=("est19", "guard"), default="est19", help="rule 2's form (the module's docstring)")
    a = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    runs = load(a.scored, {int(s) for s in a.seeds.split(",")}, ("gaen", a.base, a.candidate))
    passed = report(judge(runs, a.base, a.candidate), a.base, a.candidate, a.runs, a.rule)
    print("every rule holds" if passed else "not every rule holds: the default stays")


if __name__ == "__main__":
    main()
