"""MIT LL with the receiver's context: the bystanders each receiver heard as its other links.

Usage: python research/bystander_context.py [MITLL_DIR] [--sensitivity]
(default: ../shared/datasets/mitll_pact)

Each PACT log also holds the adverts of devices around the receiver other than the beacon. A
bluezone receiver would hear them too and judge each minute against them (the same-minute
reference, ``bluezone.matching.receiver``), which cancels the receiver's carriage. Here they are
read as ``bluezone evaluate`` reads them (``Recording.bystanders``: per peripheral id, RSSI 127
dropped, duplicates removed, at the nominal -24 dBm since their TX power is unknown) and the
one-minute windows are scored with and without them, nothing tuned: per TC4TL distance D, ROC-AUC
of the ranking, nDCF of the default 2 m decision and of the decision per distance (thresholds
moved by 20·log10(D / 2 m) dB), and detection within 1.2 m / at 3 m and beyond, for bluezone and
GAEN (GAEN takes no receiver context: its rows are the same both ways), and the hindsight
ceiling: the best shift of every threshold (-15..+15 dB) chosen on the minutes themselves. On all logs, on the logs
that hear two or more bystanders (20+ adverts each), and on the 12 folders that took no part in
measuring the beacons' TX power (all but HandDOWN_HandDOWN).

``--sensitivity``: bluezone again with the bystanders read at other TX powers than the nominal
-24 dBm (nobody knows theirs): how much the result rests on that assumption. Not a choice: the
default stays -24 dBm, the daemon's assumption for every neighbour.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bluezone.calibration.table import default_table
from bluezone.matching.scoring import Scorer, get_scorer
from bluezone.sim.datasets import load_dataset
from bluezone.sim.evaluate import (
    BEACON_TX_POWER,
    DISTANCE_SETTINGS,
    NOMINAL_TX_POWER,
    TC4TL_DISTANCES_M,
    TC4TL_SLACK_M,
    Minute,
    minutes_window,
    calibrations,
    distance_decisions,
    judged,
    judged_attenuation,
    minutes_of,
    ndcf_at_distance,
    verdict_share,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CALIBRATION_FOLDER = "HandDOWN_HandDOWN"
BUSY = 20  # adverts that make a bystander count as heard


SHIFTS = np.arange(-15.0, 15.5, 1.0)


def moved(name: str, shift: float) -> Scorer:
    """The scorer with every threshold moved by ``shift`` dB (GAEN's whole dB by its rounding)."""
    config = get_scorer(name).config  # type: ignore[attr-defined]
    return get_scorer(name, overrides={
        k: getattr(config, k) + (int(round(shift)) if isinstance(getattr(config, k), int) else shift)
        for k in DISTANCE_SETTINGS[name]
    })


def scored(name: str, minutes: list[Minute], context: bool, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(default detection, rank, per-distance detection) of each minute."""
    plain = [m if context else Minute(m.rid, m.setup, m.distance_m, m.times, m.attenuation) for m in minutes]
    windows = [minutes_window(m.times, m.attenuation) for m in plain]
    scorer = moved(name, shift)
    if shift:
        bound = [judged(scorer, [m]) for m in plain]
        return np.array([verdict_share(b.score(w)) >= 0.5 for b, w in zip(bound, windows)]), np.empty(0), {}
    bound = [judged(scorer, [m]) for m in plain]
    scores = [b.score(w) for b, w in zip(bound, windows)]
    # as `evaluate` flags a minute: its verdict's share (bluezone's weighted_minutes rank by the chain since f929ead)
    detected = np.array([verdict_share(s) >= 0.5 for s in scores])
    rank = -np.array([judged_attenuation(b, w, s.typical_attenuation) for b, w, s in zip(bound, windows, scores)])
    per_d = {
        key: np.array([verdict_share(judged(d, [m]).score(w)) >= 0.5 for m, w in zip(plain, windows)])
        for key, d in (distance_decisions(name) or {}).items()
    }
    return detected, rank, per_d


def cost(within: np.ndarray, detected: np.ndarray) -> float:
    return float(np.mean(~detected[within]) + np.mean(detected[~within]))


def report(label: str, minutes: list[Minute]) -> None:
    dist = np.array([m.distance_m for m in minutes])
    covered = np.mean([len(m.others) >= 2 for m in minutes])
    print(f"\n{label}: {len(minutes)} minutes, {len({m.rid for m in minutes})} logs, "
          f"{len({m.setup for m in minutes})} folders; 2+ bystanders in {covered:.0%} of the minutes")
    head = "".join(f"{f'{d} m':>7}" for d in TC4TL_DISTANCES_M)
    print(f"{'scorer':<9}{'context':<9}{'ROC-AUC':<7}{head}  {'nDCF dflt':<9}{head}  {'nDCF per-D':<10}{head}"
          f"  det<=1.2/>=3  {'hindsight':<9}{head}")
    for name in ("bluezone", "gaen"):
        for context in (False, True):
            detected, rank, per_d = scored(name, minutes, context)
            auc, default, own = [], [], []
            for d in TC4TL_DISTANCES_M:
                within = dist <= d + TC4TL_SLACK_M
                first = ndcf_at_distance(within, detected, rank)
                auc.append(first["roc_auc"])
                default.append(first["ndcf"])
                own.append(ndcf_at_distance(within, per_d[f"{d:.1f}"], rank)["ndcf"])
            near, far = np.mean(detected[dist <= 1.2 + TC4TL_SLACK_M]), np.mean(detected[dist >= 3.0])
            grid = [detected if s == 0 else scored(name, minutes, context, s)[0] for s in SHIFTS]
            best = [min(cost(dist <= d + TC4TL_SLACK_M, g) for g in grid) for d in TC4TL_DISTANCES_M]
            print(f"{name:<9}{'yes' if context else 'no':<9}{'':<7}" + "".join(f"{x:>7.3f}" for x in auc)
                  + f"  {'':<9}" + "".join(f"{x:>7.3f}" for x in default)
                  + f"  {'':<10}" + "".join(f"{x:>7.3f}" for x in own) + f"  {near:.2f} / {far:.2f}  "
                  + f"{'':<9}" + "".join(f"{x:>7.3f}" for x in best))


def sensitivity(label: str, minutes: list[Minute]) -> None:
    """bluezone's ROC-AUC and per-distance nDCF with the bystanders read at other TX powers."""
    dist = np.array([m.distance_m for m in minutes])
    print(f"\n{label}, bluezone, bystanders read at another TX power: ROC-AUC and nDCF per distance at 1.2 / 1.8 / 3.0 m")
    for tx in (-36, -30, -27, -24, -21, -18, -12):
        moved_minutes = [replace(m, others=m.others + (tx - NOMINAL_TX_POWER)) for m in minutes]
        detected, rank, per_d = scored("bluezone", moved_minutes, True)
        rows = [ndcf_at_distance(dist <= d + TC4TL_SLACK_M, per_d[f"{d:.1f}"], rank) for d in TC4TL_DISTANCES_M]
        near, far = np.mean(detected[dist <= 1.2 + TC4TL_SLACK_M]), np.mean(detected[dist >= 3.0])
        print(f"  {tx:>4} dBm  ROC-AUC " + " / ".join(f"{r['roc_auc']:.3f}" for r in rows)
              + "   nDCF " + " / ".join(f"{r['ndcf']:.3f}" for r in rows) + f"   detected {near:.2f} / {far:.2f}")


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--sensitivity"]
    root = Path(args[0]) if args else SHARED / "mitll_pact"
    dataset = load_dataset(root, bystanders=True)
    links, _ = calibrations(dataset.recordings, default_table(), NOMINAL_TX_POWER, BEACON_TX_POWER.get(dataset.layout))
    minutes = minutes_of(dataset.recordings, NOMINAL_TX_POWER, links)
    busy: dict[str, set[int]] = {}
    for r in dataset.recordings:
        links_heard, counts = np.unique(r.bystanders["link"], return_counts=True)
        busy.setdefault(r.rid, set()).update(links_heard[counts >= BUSY].tolist())
    crowded = {rid for rid, heard in busy.items() if len(heard) >= 2}
    print(f"{len(crowded)} of {len(busy)} logs hear 2 or more bystanders with {BUSY}+ adverts")
    if "--sensitivity" in sys.argv[1:]:
        sensitivity(f"{root.name}, all logs", minutes)
        sensitivity(f"{root.name} without {CALIBRATION_FOLDER}", [m for m in minutes if m.setup != CALIBRATION_FOLDER])
        return
    report(f"{root.name}, all logs", minutes)
    report(f"{root.name}, logs with 2+ bystanders", [m for m in minutes if m.rid in crowded])
    report(f"{root.name} without {CALIBRATION_FOLDER}", [m for m in minutes if m.setup != CALIBRATION_FOLDER])
    report(f"{root.name} without {CALIBRATION_FOLDER}, logs with 2+ bystanders",
           [m for m in minutes if m.setup != CALIBRATION_FOLDER and m.rid in crowded])


if __name__ == "__main__":
    main()
