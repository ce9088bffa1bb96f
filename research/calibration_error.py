"""How calibration error moves the verdicts: shift every RSSI by +-3/6/9 dB and re-score.

Usage: python research/calibration_error.py [--datasets DIR ...] [--scenes FILE ...] [--seed N]

Recordings: ``bluezone evaluate`` with ``rssi_shift_db`` (every phone reads that much stronger
than its calibration says); per shift, detection at <= 1.2 m and >= 3 m, chained F1 and nDCF
at 1.8 m, for both scorers.  Scenes: every phone model's ``rx_error_db`` moved by the shift
(every receiver off by that much), F1, precision and recall.  Prints a Markdown table per
source, as in docs/calibration.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from bluezone.sim import engine, report
from bluezone.sim.evaluate import evaluate
from bluezone.sim.scenario import load_scenario

SHIFTS = (-9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0)


def detection(rates: dict[str, float], near: bool) -> float | None:
    picked = [v for d, v in rates.items() if (float(d) <= 1.25 if near else float(d) >= 2.99)]
    return sum(picked) / len(picked) if picked else None


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def recordings(root: Path, seed: int) -> list[str]:
    lines = [
        f"\n{root.name}: shift | " + " | ".join(f"{n} det<=1.2 / det>=3 / F1 / nDCF1.8" for n in ("bluezone", "gaen")),
    ]
    for shift in SHIFTS:
        r = evaluate(root, seed=seed, bootstrap=0, rssi_shift_db=shift)
        cells = []
        for name in ("bluezone", "gaen"):
            s = r["scorers"][name]
            rates = s["detection_by_distance"]
            cells.append(
                f"{_f(detection(rates, True))} / {_f(detection(rates, False))} / {_f(s['f1'])} / {_f(s['ndcf']['1.8']['ndcf'])}"
            )
        lines.append(f"| {shift:+.0f} dB | " + " | ".join(cells) + " |")
    return lines


def scene(path: Path, seed: int) -> list[str]:
    base = load_scenario(path)
    lines = [f"\n{base.name} (seed {seed}): shift | bluezone P / R / F1 | gaen P / R / F1"]
    for shift in SHIFTS:
        models = tuple(dataclasses.replace(m, rx_error_db=m.rx_error_db + shift) for m in base.devices.models)
        scenario = dataclasses.replace(base, devices=dataclasses.replace(base.devices, models=models))
        summary = report.summarise(engine.run(scenario, seed, store="memory"))
        cells = [
            f"{_f(s['precision'])} / {_f(s['recall'])} / {_f(s['f1'])}"
            for s in (summary["scorers"]["bluezone"], summary["scorers"]["gaen"])
        ]
        lines.append(f"| {shift:+.0f} dB | " + " | ".join(cells) + " |")
        print(json.dumps({"scene": base.name, "shift": shift, "scorers": summary["scorers"]}), flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="*", type=Path, default=[])
    ap.add_argument("--scenes", nargs="*", type=Path, default=[])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out: list[str] = []
    for root in args.datasets:
        out += recordings(root, args.seed)
        print("\n".join(out[-8:]), flush=True)
    for path in args.scenes:
        out += scene(path, args.seed)
    print("\n".join(out))


if __name__ == "__main__":
    main()
