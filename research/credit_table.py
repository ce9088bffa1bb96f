"""Every credit variant against a GAEN, per scene, from ``credit_cache.py``'s caches (credit14, issue 13).

Usage: python research/credit_table.py CACHE_DIR SEEDS [--gaen gaen|gaen_slots] [--variants a,b,...] [--digits N]

Per variant: each scene's mean F1 / ROC-AUC / PR-AUC margin over the GAEN (over the seeds), the runs
below that GAEN in F1 (a run with nothing to find: when the variant raises more false alarms), and the
"worth" (the worst scene-mean margin of the three), the order ``docs/simulation.md``'s rule reads them
in: fewest runs below GAEN, then the worth.  ``--digits 5`` prints the means finer than the tables' 3
digits, for the rule's "by more than 0.001" (two means printed 0.001 apart may differ by up to 0.002).  Engine scores only: nothing here re-implements a scorer.
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path

import numpy as np
from credit_cache import SCORERS
from estimator_sweep import metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("seeds")
    ap.add_argument("--gaen", default="gaen")
    ap.add_argument("--variants", default=",".join(n for n in SCORERS if not n.startswith("gaen")))
    ap.add_argument("--digits", type=int, default=3, help="decimals of the means")
    a = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    seeds = {int(s) for s in a.seeds.split(",")}
    runs = {}
    for path in sorted(a.cache.glob("*.pkl")):
        scene, _, seed = path.stem.rpartition("_")
        if int(seed) in seeds:
            d = pickle.loads(path.read_bytes())
            runs[(scene, int(seed))] = (np.asarray(d["true"]) >= d["cc"], d["scores"])
    scenes = sorted({s for s, _ in runs})
    print(f"{len(runs)} runs of {', '.join(scenes)}; against {a.gaen}; per scene: mean margin F1/ROC-AUC/PR-AUC (runs below in F1)")
    for v in a.variants.split(","):
        cells, worth, below = [], np.inf, 0
        for scene in scenes:
            ms = []
            for (s, seed), (truth, scores) in sorted(runs.items()):
                if s != scene:
                    continue
                if not truth.any():  # nothing to find: a loss when the variant raises more false alarms
                    below += int(scores[v][1].sum() > scores[a.gaen][1].sum())
                    continue
                m = np.subtract(metrics(truth, *scores[v]), metrics(truth, *scores[a.gaen]))
                below += int(m[0] < 0)
                ms.append(m)
            if ms:
                mean = np.nanmean(ms, axis=0)
                worth = min(worth, float(np.nanmin(mean)))
                cells.append(f"{scene} " + "/".join(f"{x:+.{a.digits}f}" for x in mean) + f" ({sum(int(m[0] < 0) for m in ms)})")
        print(f"{v:<16} below {below:>2}  worth {worth:+.{a.digits}f}  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
