"""F1 margin of the bluezone scorer over GAEN for receiver-calibration settings, per scenario.

Usage: python research/calibration_sweep.py base=AS_WRITTEN.pkl[,MORE.pkl] hand=IN_HAND.pkl
(pickles from collect_minutes.py; IN_HAND made with the variant ``handonly``).

For every setting (reference quantile q, per-minute threshold, reference C, weight a, clip)
the threshold of a receiver is threshold + a * clip(reference - C); reference = the q-th
percentile of all its per-minute attenuations (what ``bluezone.matching.receiver`` computes).
Prints each world's receiver references, then per setting the mean margin per (world,
scenario) and the worst of them.  This is how docs/simulation.md's calibration defaults were
chosen (seeds 11-14 / 11-12 / 11-13) and checked (seeds 15-16 as written, 14-15 in hand).
"""

import itertools
import pickle
import sys

import numpy as np
from detection_ceiling import smoothed, within_minutes

from bluezone.sim.metrics import confusion

QUANTILES = (5, 10, 25, 50)
CENTRES = {5: (52.0, 55.0, 58.0), 10: (55.0, 58.0, 61.0), 25: (60.0, 63.0, 66.0), 50: (68.0, 70.0, 72.0)}
# (quantile, threshold, centre, weight, clip, leave the judged link out of its receiver's reference)
GRID = [(50, 60.0, 72.0, 0.7, 3.0, False)] + [
    (q, threshold, c, a, clip, False)
    for q in QUANTILES
    for c, a, clip, threshold in itertools.product(CENTRES[q], [0.7, 1.0], [3.0, 5.0, 8.0], [59.0, 60.0, 61.0])
] + [(5, 59.0, 58.0, 0.7, 5.0, True), (5, 59.0, 60.0, 0.7, 5.0, True), (5, 60.0, 58.0, 0.7, 5.0, True), (5, 59.0, 58.0, 0.7, 8.0, True)]
MIN_LINK_MINUTES = 10  # as BluezoneConfig.calibration_min_link_minutes


def prepare(d: dict, pct: int = 10) -> tuple[list, dict, np.ndarray]:
    """(units, per-receiver references per quantile, truth); each unit also carries the
    references of its receiver without the unit's own link-minutes (None: under 10 left)."""
    idx = {k: i for i, k in enumerate(d["keys"])}
    per: dict[int, list[tuple[tuple, np.ndarray]]] = {}
    for k, u in d["units"].items():
        per.setdefault(k[2], []).append((k, u[pct][1]))
    units = []
    for k, u in d["units"].items():
        s, v, _ = u[pct]
        if k in idx and len(s):
            rest = [x for kk, x in per[k[2]] if kk != k]
            pool = np.concatenate(rest) if rest else np.empty(0)
            without = {q: float(np.percentile(pool, q)) if len(pool) >= MIN_LINK_MINUTES else None for q in QUANTILES}
            units.append((idx[k], k[2], s, smoothed(s, v), without))
    references = {
        q: {r: float(np.percentile(np.concatenate([x for _, x in xs]), q)) for r, xs in per.items() if sum(len(x) for _, x in xs)}
        for q in QUANTILES
    }
    return units, references, d["true"] >= d["cc"] - 1e-9


def f1(prepared: tuple, q: int, threshold: float, c: float, a: float, clip: float, exclude: bool = False) -> float:
    units, references, truth = prepared
    reference = references[q]
    pred = np.zeros(len(truth), bool)
    for i, r, s, sm, without in units:
        ref = without[q] if exclude else reference.get(r)
        t = threshold if ref is None else threshold + a * float(np.clip(ref - c, -clip, clip))
        pred[i] = within_minutes(s, sm, t) >= 15 - 1e-9
    return confusion(truth, pred).f1


def main() -> None:
    runs = {}
    for arg in sys.argv[1:]:
        world, paths = arg.split("=", 1)
        for path in paths.split(","):
            for (name, seed), d in pickle.load(open(path, "rb")).items():
                runs[(world, name, seed)] = (prepare(d), d["gaen"])
    for q in QUANTILES:
        refs: dict[tuple[str, str], list[float]] = {}
        for (world, name, _), (p, _) in runs.items():
            refs.setdefault((world, name), []).extend(p[1][q].values())
        print(f"q {q}: median receiver reference", " ".join(f"{w}/{n}:{np.median(v):.1f}" for (w, n), v in sorted(refs.items())))
    for q, threshold, c, a, clip, exclude in GRID:
        margins: dict[tuple[str, str], list[float]] = {}
        for (world, name, _), (p, gaen) in runs.items():
            margins.setdefault((world, name), []).append(f1(p, q, threshold, c, a, clip, exclude) - gaen)
        means = {k: float(np.mean(v)) for k, v in sorted(margins.items())}
        print(
            f"q {q} threshold {threshold:g} C {c:g} a {a:g} clip {clip:g}{' judged link left out' if exclude else ''}: worst {min(means.values()):+.3f} | "
            + " ".join(f"{w}/{n}:{m:+.3f}" for (w, n), m in means.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
