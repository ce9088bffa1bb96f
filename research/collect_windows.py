"""Run every scenario on the tuning seeds and pickle exposure windows + truth (for sweep_scorer.py).

Usage: python research/collect_windows.py OUT.pkl   (about 10 minutes on 2 cores)
Seeds 11 and 12 are the tuning seeds; reported results use seed 1.
"""

import pickle
import sys

from bluezone.sim import engine, report
from bluezone.sim.scenario import load_scenario

out = {}
for seed in (11, 12):
    for name in ["classroom", "office", "wedding", "market", "clinic", "bus", "wall"]:
        sc = load_scenario(f"simulations/{name}.toml")
        if name == "market":
            sc = sc.with_overrides(duration_min=90)
        r = engine.run(sc, seed=seed, scorers=["gaen"], store="memory", keep_windows=True)
        keys, true_minutes = report.units(r)
        gaen_f1 = report.summarise(r)["scorers"]["gaen"]["f1"]
        out[(name, seed)] = {"keys": keys, "true": true_minutes, "windows": r.windows, "gaen": gaen_f1, "cc": sc.close_contact_min}
        print(name, seed, gaen_f1, flush=True)
with open(sys.argv[1], "wb") as f:
    pickle.dump(out, f)
