"""How well can a whole real recording tell "closer than 2 m"?  (target (b) of issue 3, on real data)

Usage: python research/recording_ceiling.py [DATASET_DIR ...]
(default: ../shared/datasets/ng_rss_smartphone and ../shared/datasets/mitll_pact)

The simulator's ceilings (oracle_ceiling.py) rest on its fitted radio model.  This asks the
recordings themselves, with the most generous aggregation there is: every packet of a recording
(1-12 minutes at one fixed distance) reduced to one number, its median RSSI (and its 90th
percentile, the strongest packets), so no fast fading or slow shadowing is left.  For recordings
closer than 2 m against those at 2.4-5 m it prints the ROC-AUC and, at the threshold that keeps
recall >= 0.85, the false-positive rate and the precision this would give in a room where close
and not-close neighbours come 1:1 (a classroom's nearby seats) or 1:3 (an office desk's: two
beside, two across, four diagonal).  Three views:

- every recording together (carriage and phones unknown, as to a receiver);
- within one receiver carriage (MIT LL folders start with it): what perfect receiver
  self-calibration could at most give, the sender's carriage still unknown;
- within one setup (carriage and phones fixed): what knowing everything but distance gives.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from bluezone.sim.datasets import load_dataset
from bluezone.sim.metrics import roc_auc

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
RECEIVER_CARRIAGE = re.compile(r"(Hand|ShirtPocket|FrontPantsPocket|BackPantsPocket|Purse)")
MIN_PACKETS = 20
RECALL = 0.85


def at_recall(close: np.ndarray, value: np.ndarray) -> tuple[float, float]:
    """(true-positive rate, false-positive rate) at the loosest threshold keeping recall >= RECALL."""
    positives = np.sort(value[close])[::-1]
    threshold = positives[int(np.ceil(RECALL * len(positives))) - 1]
    return float(np.mean(value[close] >= threshold)), float(np.mean(value[~close] >= threshold))


def precision(tpr: float, fpr: float, negatives_per_positive: float) -> float:
    return tpr / (tpr + negatives_per_positive * fpr) if tpr + fpr else float("nan")


def group_aucs(close: np.ndarray, value: np.ndarray, groups: np.ndarray) -> list[tuple[str, int, float]]:
    out = []
    for g in np.unique(groups):
        m = groups == g
        if close[m].any() and (~close[m]).any():
            out.append((str(g), int(m.sum()), roc_auc(close[m], value[m])))
    return out


def report(path: Path) -> None:
    dataset = load_dataset(path)
    recordings = [r for r in dataset.recordings if len(r.rssi) >= MIN_PACKETS]
    close = np.array([r.distance_m < 2.0 - 1e-9 for r in recordings])
    print(f"{path.name} ({dataset.layout}): {len(recordings)} recordings of {MIN_PACKETS}+ packets, {close.sum()} closer than 2 m")
    for label, stat in (("median RSSI", np.median), ("90th pct RSSI", lambda x: np.percentile(x, 90))):
        value = np.array([stat(r.rssi) for r in recordings])
        tpr, fpr = at_recall(close, value)
        print(
            f"  all together, {label:13}: ROC-AUC {roc_auc(close, value):.3f}; at recall {tpr:.2f} FPR {fpr:.2f},"
            f" precision {precision(tpr, fpr, 1):.2f} (1:1), {precision(tpr, fpr, 3):.2f} (1:3)"
        )
    value = np.array([np.median(r.rssi) for r in recordings])
    if dataset.layout == "mitll_pact":
        rx = np.array([m.group(1) if (m := RECEIVER_CARRIAGE.match(r.setup)) else "?" for r in recordings])
        for g, n, auc in group_aucs(close, value, rx):
            print(f"  receiver carriage {g:16} ({n:2} recordings): ROC-AUC {auc:.3f}")
    setups = group_aucs(close, value, np.array([r.setup for r in recordings]))
    aucs = [a for _, _, a in setups]
    print(f"  within one setup: median ROC-AUC {np.median(aucs):.3f} (min {min(aucs):.3f}) over {len(aucs)} setups")


def main(argv: list[str]) -> None:
    paths = [Path(p) for p in argv] or [SHARED / "ng_rss_smartphone", SHARED / "mitll_pact"]
    for path in paths:
        report(path)


if __name__ == "__main__":
    main(sys.argv[1:])
