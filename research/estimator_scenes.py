"""The estimator on scenes nobody tuned it on: bluezone (now), its previous defaults and GAEN.

Usage: python research/estimator_scenes.py OUT_DIR SCENES SEEDS
e.g.   python research/estimator_scenes.py simulations/results/estimator tram,storeys,restaurant,gen:room 0,3

A scene is a scenario name from ``simulations/`` or ``gen:KIND`` (a procedural scene drawn from
the run's seed, as ``bluezone simulate --generate KIND``); ``NAME@all`` makes every phone an
uploader, so every receiver stores every advert it hears, as a real daemon would.  Each run goes through the real engine
once with three scorers: ``bluezone`` (the present defaults), ``bluezone-previous`` (the defaults
before the same-minute reference and the ramp: day-level shift, hard minutes) and ``gaen``.  Per
run, ``OUT_DIR/<scene>_<seed>.json`` keeps each scorer's P / R / F1 / ROC-AUC / PR-AUC (an existing
file is not run again).  Then prints per scene the mean over seeds and bluezone's margins over GAEN.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.scoring import register_scorer
from bluezone.sim import engine, report
from bluezone.sim.generate import generate
from bluezone.sim.scenario import load_scenario

SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"
PREVIOUS = BluezoneConfig(minute_reference_weight=0.0, ramp_db=0.0)
SCORERS = ("bluezone", "bluezone-previous", "gaen")
KEYS = ("precision", "recall", "f1", "roc_auc", "pr_auc")

register_scorer("bluezone-previous", lambda config_path=None, **o: BluezoneScorer(PREVIOUS, name="bluezone-previous"))


def run_one(scene: str, seed: int, out: Path) -> dict:
    path = out / f"{scene.replace(':', '-').replace('@', '-')}_{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    name, _, everyone = scene.partition("@")
    scenario = generate(name[4:], seed) if name.startswith("gen:") else load_scenario(SIMULATIONS / f"{name}.toml")
    if everyone == "all":  # every phone uploads, so every receiver stores every advert, as a real daemon
        scenario = scenario.with_overrides(devices=dataclasses.replace(scenario.devices, positives="all"))
    summary = report.summarise(engine.run(scenario, seed, scorers=list(SCORERS), store="memory"))
    kept = {
        "scene": scene, "seed": seed, "true_close_contacts": summary["true_close_contacts"], "pairs_judged": summary["pairs_judged"],
        "scorers": {n: {k: summary["scorers"][n][k] for k in KEYS} for n in SCORERS},
    }
    path.write_text(json.dumps(kept, indent=1) + "\n")
    return kept


def table(runs: list[dict]) -> str:
    lines = [f"{'scene':<14}{'seeds':>6}  " + "  ".join(f"{n + ' F1/ROC/PR':>26}" for n in SCORERS) + "   margin over gaen F1/ROC/PR (worst seed)"]
    for scene in dict.fromkeys(r["scene"] for r in runs):
        rs = [r for r in runs if r["scene"] == scene]
        cells = []
        for n in SCORERS:
            m = [np.nanmean([np.nan if r["scorers"][n][k] is None else r["scorers"][n][k] for r in rs]) for k in ("f1", "roc_auc", "pr_auc")]
            cells.append(f"{m[0]:>10.3f}/{m[1]:.3f}/{m[2]:.3f}")
        margins = np.array([[(r["scorers"]["bluezone"][k] or 0) - (r["scorers"]["gaen"][k] or 0) for k in ("f1", "roc_auc", "pr_auc")] for r in rs])
        lines.append(
            f"{scene:<14}{len(rs):>6}  " + "  ".join(f"{c:>26}" for c in cells)
            + "   " + "/".join(f"{v:+.3f}" for v in margins.mean(0)) + " (" + "/".join(f"{v:+.3f}" for v in margins.min(0)) + ")"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in [int(s) for s in argv[2].split(",")]:
        for scene in argv[1].split(","):
            runs.append(run_one(scene, seed, out))
            print(scene, seed, {n: runs[-1]["scorers"][n]["f1"] for n in SCORERS}, flush=True)
    print(table(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
