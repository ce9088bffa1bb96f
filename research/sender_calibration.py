"""Sender-side calibration measured against the present receiver self-calibration.

Usage: python research/sender_calibration.py MINUTES.pkl
(MINUTES.pkl from collect_minutes.py on scenarios with ``positives = "all"``: classroom, office).

The receiver calibration as ``bluezone.matching.receiver`` does it: per unit, the receiver's
reference is the 5th percentile of its day's per-minute attenuations (10th percentile per link
and minute) over every link but the judged one, with at least 10 link-minutes; the per-minute
threshold moves by 0.7 * clip(reference - centre, +-5 dB).  On top ("tx"), the *sender's*
reference, measured the same way from what it hears (leaving out the judged pair), shifts the
pair too, as if the sender had lowered the TX power in its AEM by tx * that much.  Prints the F1
margin over GAEN (mean / worst over the seeds) for tx 0, 0.5 and 1 over centres and thresholds.
"""

import pickle
import sys

import numpy as np
from detection_ceiling import smoothed, within_minutes

from bluezone.sim.metrics import confusion

QUANTILE, MIN_LINK_MINUTES, WEIGHT, CLIP = 5, 10, 0.7, 5.0


def references(d: dict):  # type: ignore[no-untyped-def]
    """ref(day, device, exclude): a device's reference on a day without one unit, or None."""
    by_receiver: dict[tuple, list] = {}
    for k in d["units"]:
        by_receiver.setdefault((k[0], k[2]), []).append(k)

    def ref(day: int, device: int, exclude: tuple) -> float | None:
        values = [d["units"][k][10][1] for k in by_receiver.get((day, device), []) if k != exclude]
        v = np.concatenate(values) if values else np.zeros(0)
        return float(np.percentile(v, QUANTILE)) if len(v) >= MIN_LINK_MINUTES else None

    return ref


def f1(d: dict, tx: float, centre: float, threshold: float) -> float:
    ref = references(d)
    idx = {k: i for i, k in enumerate(d["keys"])}
    truth = d["true"] >= d["cc"] - 1e-9
    pred = np.zeros(len(truth), bool)
    for k, u in d["units"].items():
        s, v, _ = u[10]
        if k not in idx or not len(s):
            continue
        day, sender, receiver = k  # with positives = "all" an uploader's row is its device number
        shift = 0.0
        for device, exclude, weight in ((receiver, k, 1.0), (sender, (day, receiver, sender), tx)):
            r = ref(day, device, exclude) if weight else None
            if r is not None:
                shift += weight * WEIGHT * float(np.clip(r - centre, -CLIP, CLIP))
        pred[idx[k]] = within_minutes(s, smoothed(s, v) - shift, threshold) >= d["cc"] - 1e-9
    return confusion(truth, pred).f1


def main() -> None:
    data = pickle.load(open(sys.argv[1], "rb"))
    for tx in (0.0, 0.5, 1.0):
        for centre in (56.0, 58.0, 60.0):
            for threshold in (59.0, 61.0, 63.0):
                margins: dict[str, list[float]] = {}
                for (name, _), d in sorted(data.items()):
                    margins.setdefault(name, []).append(f1(d, tx, centre, threshold) - d["gaen"])
                cells = "  ".join(f"{n} {np.mean(m):+.3f}/{min(m):+.3f}" for n, m in margins.items())
                print(f"tx {tx:.1f}  centre {centre:.0f}  threshold {threshold:.0f}:  {cells}", flush=True)


if __name__ == "__main__":
    main()
