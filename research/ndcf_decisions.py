"""nDCF on the real recordings: one default decision, a decision per distance, and hindsight.

Usage: python research/ndcf_decisions.py [DATASET_DIR ...]
(default: ../shared/datasets/ng_rss_smartphone and ../shared/datasets/mitll_pact)

For each scorer and TC4TL distance D (1.2, 1.8, 3.0 m), nDCF = P_miss + P_fa of one-minute
windows (as ``bluezone evaluate`` reads them, calibrated) under:

- ``default``: the scorer's own 2 m decision, the same at every D;
- ``per-D``: its thresholds moved by the path-loss model, 20·log10(D / 2 m) dB (``evaluate``'s
  ``distance_decisions``), fixed before looking;
- ``CWA map`` (GAEN only): GAEN's near threshold placed by Corona-Warn-App's own reading of its
  buckets (55 dB ~ 1.5 m, 63 dB ~ 3 m, log-linear between and beyond), a second fair alternative;
- ``cross-fit``: the shift chosen (best nDCF, -15..+15 dB) on half of the setups and scored on the
  other half, both ways, averaged: what tuning on recordings like these would carry over;
- ``hindsight``: the best shift chosen on all of them (a ceiling, not a result).

MIT LL is also shown without HandDOWN_HandDOWN, the folder its beacons' TX power was measured on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bluezone.calibration.table import default_table
from bluezone.matching.scoring import get_scorer
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
    distance_shift_db,
    minutes_of,
    verdict_share,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CALIBRATION_FOLDER = "HandDOWN_HandDOWN"
SHIFTS = np.arange(-15.0, 15.5, 0.5)


def detections(name: str, minutes: list[Minute], shift: float) -> np.ndarray:
    """Whether each minute is flagged with the scorer's thresholds moved by ``shift`` dB."""
    config = get_scorer(name).config  # type: ignore[attr-defined]
    moved = {
        k: getattr(config, k) + (int(round(shift)) if isinstance(getattr(config, k), int) else shift)
        for k in DISTANCE_SETTINGS[name]
    }
    scorer = get_scorer(name, overrides=moved)
    # as `evaluate` flags a minute (its verdict's share, not weighted_minutes: since f929ead bluezone's ranks by the
    # near/far chain, and since e2ec7ed GAEN's is credited the time present)
    return np.array([verdict_share(scorer.score(minutes_window(m.times, m.attenuation))) >= 0.5 for m in minutes])


def cost(within: np.ndarray, detected: np.ndarray) -> float:
    return float(np.mean(~detected[within]) + np.mean(detected[~within]))


def cwa_shift(d: float) -> float:
    """GAEN near threshold for D by CWA's reading of its buckets, as a shift from 63 dB."""
    return 55.0 + 8.0 * np.log10(d / 1.5) / np.log10(2.0) - 63.0


def table(label: str, minutes: list[Minute]) -> None:
    dist = np.array([m.distance_m for m in minutes])
    setups = sorted({m.setup for m in minutes})
    halves = [np.isin([m.setup for m in minutes], setups[i::2]) for i in (0, 1)]
    print(f"\n{label}: {len(minutes)} one-minute windows, {len(setups)} setups")
    print(f"{'scorer':<10}{'decision':<12}" + "".join(f"{f'{d} m':>8}" for d in TC4TL_DISTANCES_M))
    for name in ("bluezone", "gaen"):
        grid = {s: detections(name, minutes, s) for s in SHIFTS}
        rows: dict[str, list[float]] = {k: [] for k in ("default", "per-D", "CWA map", "cross-fit", "hindsight")}
        for d in TC4TL_DISTANCES_M:
            within = dist <= d + TC4TL_SLACK_M
            rows["default"].append(cost(within, grid[0.0]))
            rows["per-D"].append(cost(within, detections(name, minutes, distance_shift_db(d))))
            rows["CWA map"].append(cost(within, detections(name, minutes, cwa_shift(d))) if name == "gaen" else np.nan)
            crossed = []
            for fit, test in ((halves[0], halves[1]), (halves[1], halves[0])):
                best = min(SHIFTS, key=lambda s: cost(within[fit], grid[s][fit]))
                crossed.append(cost(within[test], grid[best][test]))
            rows["cross-fit"].append(float(np.mean(crossed)))
            rows["hindsight"].append(min(cost(within, grid[s]) for s in SHIFTS))
        for k, v in rows.items():
            if not np.all(np.isnan(v)):
                print(f"{name:<10}{k:<12}" + "".join(f"{x:>8.3f}" for x in v))


def main() -> None:
    roots = [Path(a) for a in sys.argv[1:]] or [SHARED / "ng_rss_smartphone", SHARED / "mitll_pact"]
    for root in roots:
        dataset = load_dataset(root)
        links, _ = calibrations(dataset.recordings, default_table(), NOMINAL_TX_POWER, BEACON_TX_POWER.get(dataset.layout))
        minutes = minutes_of(dataset.recordings, NOMINAL_TX_POWER, links)
        table(f"{root.name} (calibrated)", minutes)
        if dataset.layout == "mitll_pact":
            table(f"{root.name} without {CALIBRATION_FOLDER}", [m for m in minutes if m.setup != CALIBRATION_FOLDER])


if __name__ == "__main__":
    main()
