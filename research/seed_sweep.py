"""Does bluezone beat GAEN beyond the seeds in the docs?  (target (a) of issue 3 on unseen seeds)

Usage: python research/seed_sweep.py OUT_DIR [SCENARIOS] [SEEDS] [--jobs N]
e.g.   python research/seed_sweep.py simulations/results/seeds all 0,3,4,5,6,7,8,9

Runs every scenario (comma-separated names from simulations/, or ``all``) at every seed, as
``bluezone simulate FILE --seed N --json`` would, and keeps each report as
``OUT_DIR/<scenario>_<seed>.json`` (a report already there is not run again, so an interrupted
sweep resumes).  Then prints, per scenario, on how many seeds bluezone's F1 is above GAEN's,
the mean and worst margin, and each seed's F1 pair.  Runs take 10 s (classroom) to 2 min
(wedding, office) each on this machine; ``--jobs`` runs that many at once (default 2).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"
ALL = ("market", "classroom", "office", "wedding", "clinic", "bus", "wall")


def run_one(scenario: str, seed: int, out: Path) -> None:
    from bluezone.sim import engine, report
    from bluezone.sim.scenario import load_scenario

    path = out / f"{scenario}_{seed}.json"
    if path.exists():
        return
    summary = report.summarise(engine.run(load_scenario(SIMULATIONS / f"{scenario}.toml"), seed))
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)


def table(out: Path, scenarios: list[str], seeds: list[int]) -> str:
    lines = [f"{'scenario':<10} {'wins':>5}  {'mean':>7} {'worst':>7}   F1 bluezone/gaen per seed"]
    for scenario in scenarios:
        pairs = {}
        for seed in seeds:
            path = out / f"{scenario}_{seed}.json"
            if path.exists():
                scorers = json.loads(path.read_text())["scorers"]
                pairs[seed] = (scorers["bluezone"]["f1"], scorers["gaen"]["f1"])
        if not pairs:
            continue
        margins = [b - g for b, g in pairs.values()]
        wins = sum(m > 0 for m in margins)
        cells = "  ".join(f"{s}:{b:.3f}/{g:.3f}" for s, (b, g) in sorted(pairs.items()))
        lines.append(
            f"{scenario:<10} {wins:>2}/{len(pairs):<2}  {sum(margins) / len(margins):>+7.3f} {min(margins):>+7.3f}   {cells}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    jobs = 2
    if "--jobs" in argv:
        i = argv.index("--jobs")
        jobs = int(argv[i + 1])
        del argv[i : i + 2]
    if not argv:
        sys.exit(__doc__)
    out = Path(argv[0])
    scenarios = list(ALL) if len(argv) < 2 or argv[1] == "all" else argv[1].split(",")
    seeds = [int(s) for s in argv[2].split(",")] if len(argv) > 2 else [0, 3, 4, 5, 6, 7, 8, 9]
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs) as pool:
        for future in [pool.submit(run_one, sc, seed, out) for seed in seeds for sc in scenarios]:
            future.result()
    print(table(out, scenarios, seeds))


if __name__ == "__main__":
    main(sys.argv[1:])
