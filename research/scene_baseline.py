"""bluezone against GAEN on scenes the defaults were not tuned on: P / R / F1 and ROC-AUC per scene.

Usage: python research/scene_baseline.py OUT_DIR SCENES SEEDS [--jobs N]   (prints a markdown table)
e.g.   python research/scene_baseline.py simulations/results/scenes \\
           tram,storeys,restaurant,gen:room,gen:crowd,gen:carriage,gen:storeys 1,2,3,4

A scene is a scenario name from simulations/ or ``gen:KIND``, a procedural scene drawn from
the same seed as the run (``bluezone simulate --generate KIND --seed N``), so every seed of a
generated kind is a different scene.  Each run's report is kept as ``OUT_DIR/<scene>_<seed>.json``
(``gen-room_3.json``; one already there is not run again, so an interrupted sweep resumes).
Then prints, per scene, the mean over seeds of both scorers' precision, recall, F1 and ROC-AUC,
and bluezone's F1 and ROC-AUC margins over GAEN (mean and worst seed).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"
SCORERS = ("bluezone", "gaen")


def _file(scene: str) -> str:
    return scene.replace(":", "-")


def run_one(scene: str, seed: int, out: Path) -> None:
    from bluezone.sim import engine, report
    from bluezone.sim.generate import generate
    from bluezone.sim.scenario import load_scenario

    path = out / f"{_file(scene)}_{seed}.json"
    if path.exists():
        return
    scenario = generate(scene[4:], seed) if scene.startswith("gen:") else load_scenario(SIMULATIONS / f"{scene}.toml")
    summary = report.summarise(engine.run(scenario, seed, store="memory"))
    summary.pop("levels", None)
    for s in summary["scorers"].values():
        s.pop("pr_curve", None)  # keep the files small; the numbers below are all that is read
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(path)


def _mean(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else float("nan")


def table(out: Path, scenes: list[str], seeds: list[int]) -> str:
    head = "| scene | seeds | contacts / pairs | bluezone P / R / F1 | gaen P / R / F1 | ROC-AUC bz / gaen | F1 margin mean (worst) | AUC margin mean (worst) |"
    lines = [head, "|---" * 8 + "|"]
    for scene in scenes:
        reports = [json.loads(p.read_text()) for s in seeds if (p := out / f"{_file(scene)}_{s}.json").exists()]
        if not reports:
            continue
        get = {name: {k: [r["scorers"][name][k] for r in reports] for k in ("precision", "recall", "f1", "roc_auc")}
               for name in SCORERS}
        f1m = [(b or 0.0) - (g or 0.0) for b, g in zip(get["bluezone"]["f1"], get["gaen"]["f1"])]
        aucm = [b - g for b, g in zip(get["bluezone"]["roc_auc"], get["gaen"]["roc_auc"]) if b is not None and g is not None]
        prf = {n: " / ".join(f"{_mean(get[n][k]):.2f}" for k in ("precision", "recall", "f1")) for n in SCORERS}
        contacts = sum(r["true_close_contacts"] for r in reports) / len(reports)
        pairs = sum(r["pairs_judged"] for r in reports) / len(reports)
        lines.append(
            f"| {scene} | {len(reports)} | {contacts:.0f} / {pairs:.0f} | {prf['bluezone']} | {prf['gaen']} "
            f"| {_mean(get['bluezone']['roc_auc']):.3f} / {_mean(get['gaen']['roc_auc']):.3f} "
            f"| {_mean(f1m):+.3f} ({min(f1m):+.3f}) | {_mean(aucm):+.3f} ({min(aucm, default=float('nan')):+.3f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    jobs = 1
    if "--jobs" in argv:
        i = argv.index("--jobs")
        jobs = int(argv[i + 1])
        del argv[i : i + 2]
    if len(argv) < 3:
        sys.exit(__doc__)
    out = Path(argv[0])
    scenes = argv[1].split(",")
    seeds = [int(s) for s in argv[2].split(",")]
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs) as pool:
        for future in [pool.submit(run_one, scene, seed, out) for seed in seeds for scene in scenes]:
            future.result()
    print(table(out, scenes, seeds))


if __name__ == "__main__":
    main(sys.argv[1:])
