"""Run scenarios on given seeds and pickle per-minute attenuation per unit + truth (for detection_ceiling.py).

Usage: python research/collect_minutes.py OUT.pkl classroom,office 13,14,15,16 [VARIANT]
(VARIANT: base, handonly, nocal or perfect, as in oracle_ceiling.py; default base)
(about 25 s per classroom or office run on this machine; the market is shortened to 90 minutes).
Per unit (day, uploader row, receiver device) it keeps, for the 10th, 25th and 50th per-minute
percentile of attenuation, (minute slots, value, sightings) as the bluezone scorer computes them.
Keep seed 1 out of any tuning: it is the reported seed.
"""

import pickle
import sys

import numpy as np
from oracle_ceiling import variant

from bluezone.matching.bluezone_scorer import BluezoneConfig, minute_attenuation
from bluezone.sim import engine, report
from bluezone.sim.scenario import load_scenario

PERCENTILES = (10, 25, 50)


def collect(names: list[str], seeds: list[int], kind: str = "base") -> dict:
    out = {}
    for seed in seeds:
        for name in names:
            sc = variant(load_scenario(f"simulations/{name}.toml"), kind)
            if name == "market":
                sc = sc.with_overrides(duration_min=90)
            r = engine.run(sc, seed=seed, scorers=["gaen"], store="memory", keep_windows=True)
            keys, true_minutes = report.units(r)
            gaen = report.summarise(r)["scorers"]["gaen"]
            units = {}
            for k, windows in r.windows.items():
                parts = {}
                for pct in PERCENTILES:
                    c = BluezoneConfig(percentile=pct, min_sightings=2)
                    ps = [minute_attenuation(w.times, w.attenuation, c) for w in windows]
                    s, v, n = (np.concatenate([p[i] for p in ps]) for i in range(3))
                    o = np.argsort(s, kind="stable")
                    parts[pct] = (s[o], v[o], n[o])
                units[k] = parts
            out[(name, seed)] = {"keys": keys, "true": true_minutes, "gaen": gaen["f1"], "cc": sc.close_contact_min, "units": units}
            print(name, seed, "gaen F1", gaen["f1"], flush=True)
    return out


if __name__ == "__main__":
    data = collect(sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")], *sys.argv[4:5])
    with open(sys.argv[1], "wb") as f:
        pickle.dump(data, f)
