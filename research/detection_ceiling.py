"""What the bluezone scorer's family can reach at best, and what receiver self-calibration buys.

Usage: python research/detection_ceiling.py MINUTES.pkl [SKIP_SEED ...]
(MINUTES.pkl from collect_minutes.py).  Prints, per run:

- the ceiling: over a grid of per-minute thresholds (50-79 dB) and minute counts (1-59),
  chosen in hindsight per run, the best precision at recall >= 0.85, the best recall at
  precision >= 0.80 and the best F1 (optimistic: tuned on the very run it is scored on);
- receiver self-calibration: each receiver's reference = the q-th percentile of all its
  per-minute attenuations (every link it heard), and the minute threshold moves by
  alpha * clip(reference - C, +-clip) dB.  C is either a constant (what a real receiver can
  use) or, as an oracle, the median reference of the run's receivers (not available to a
  phone); F1 minus GAEN's F1 is printed per scenario, mean and worst over seeds;
- sender-side calibration on top ("+tx"): the sender's own reference, measured the same way
  from what *it* hears (a pocket dampens both directions alike), shifts the pair's attenuation
  too, as if the sender had lowered the TX power in its AEM by that much.  Needs
  ``positives = "all"`` (every phone's reference known), so classroom and office.
"""

import pickle
import sys

import numpy as np

from bluezone.sim.metrics import confusion


def rolling_median(v: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(v) < 2:
        return v
    h = width // 2
    return np.median(np.lib.stride_tricks.sliding_window_view(np.pad(v, h, mode="edge"), 2 * h + 1), axis=1)


def smoothed(s: np.ndarray, v: np.ndarray, width: int = 9, gap: int = 2) -> np.ndarray:
    breaks = np.flatnonzero(np.diff(s) > gap + 1) + 1
    return np.concatenate([rolling_median(p, width) for p in np.split(v, breaks)]) if len(v) else v


def within_minutes(s: np.ndarray, sm: np.ndarray, threshold: float, gap: int = 2) -> float:
    w = (sm <= threshold).astype(float)
    x = w.sum()
    if len(s) > 1:
        g = np.diff(s) - 1
        b = (g >= 1) & (g <= gap)
        x += (g[b] * np.minimum(w[:-1], w[1:])[b]).sum()
    return float(x)


def ceiling(d: dict, pct: int = 10) -> tuple[float, float, float]:
    idx = {k: i for i, k in enumerate(d["keys"])}
    truth = d["true"] >= d["cc"] - 1e-9
    units = [(idx[k], u[pct][0], smoothed(u[pct][0], u[pct][1])) for k, u in d["units"].items() if k in idx and len(u[pct][0])]
    points = []
    for threshold in np.arange(50.0, 80.0):
        within = np.zeros(len(truth))
        for i, s, sm in units:
            within[i] = max(within[i], within_minutes(s, sm, threshold))
        for cc in range(1, 60):
            pred = within >= cc
            tp = (pred & truth).sum()
            points.append((tp / max(pred.sum(), 1), tp / max(truth.sum(), 1)))
    p85 = max([p for p, r in points if r >= 0.85] or [0.0])
    r80 = max([r for p, r in points if p >= 0.80] or [0.0])
    f1 = max(2 * p * r / (p + r) if p + r else 0.0 for p, r in points)
    return p85, r80, f1


def calibrated_f1(
    d: dict, q: float, c: float | None, alpha: float, clip: float, threshold: float = 60.0, pct: int = 10, tx: float = 0.0
) -> float:
    per: dict[int, list[np.ndarray]] = {}
    for k, u in d["units"].items():
        per.setdefault(k[2], []).append(u[pct][1])
    ref = {r: float(np.percentile(np.concatenate(x), q)) for r, x in per.items() if sum(map(len, x))}
    centre = float(np.median(list(ref.values()))) if c is None else c
    offset = {r: alpha * float(np.clip(v - centre, -clip, clip)) for r, v in ref.items()}
    idx = {k: i for i, k in enumerate(d["keys"])}
    truth = d["true"] >= d["cc"] - 1e-9
    pred = np.zeros(len(truth), bool)
    for k, u in d["units"].items():
        s, v, _ = u[pct]
        if k in idx and len(s):
            # offset is per device; with positives = "all" a sender's row is its device number
            shift = offset.get(k[2], 0.0) + tx * offset.get(k[1], 0.0)
            pred[idx[k]] = within_minutes(s, smoothed(s, v) - shift, threshold) >= 15 - 1e-9
    return confusion(truth, pred).f1


def main() -> None:
    data = pickle.load(open(sys.argv[1], "rb"))
    skip = {int(s) for s in sys.argv[2:]}
    runs = {k: d for k, d in data.items() if k[1] not in skip}
    for key, d in sorted(runs.items()):
        p85, r80, f1 = ceiling(d)
        truth = d["true"] >= d["cc"] - 1e-9
        print(key, f"prevalence {truth.mean():.3f}  best P at R>=0.85 {p85:.2f}  best R at P>=0.80 {r80:.2f}  best F1 {f1:.2f}")
    settings = [("none", 50, 74.0, 0.0, 0.0), ("C=74 a=0.5 clip 3", 50, 74.0, 0.5, 3.0), ("C=74 a=1 clip 5", 50, 74.0, 1.0, 5.0),
                ("oracle a=1", 50, None, 1.0, 99.0), ("oracle a=0.5", 50, None, 0.5, 99.0)]
    settings = [(*x, 0.0) for x in settings] + [("C=72 a=0.7 clip 3 (median ref.)", 50, 72.0, 0.7, 3.0, 0.0),
        ("C=72 a=0.7 clip 3 +tx", 50, 72.0, 0.7, 3.0, 1.0), ("oracle a=0.5 +tx", 50, None, 0.5, 99.0, 1.0)]
    for label, q, c, alpha, clip, tx in settings:
        margins: dict[str, list[float]] = {}
        for (name, _), d in runs.items():
            if tx and name not in ("classroom", "office"):
                continue
            margins.setdefault(name, []).append(calibrated_f1(d, q, c, alpha, clip, tx=tx) - d["gaen"])
        print(f"{label:20}", " ".join(f"{n}:{np.mean(m):+.3f}/{min(m):+.3f}" for n, m in sorted(margins.items())))


if __name__ == "__main__":
    main()
