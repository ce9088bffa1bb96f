"""F1 of bluezone-scorer settings on pickled windows, against GAEN's F1 on the same runs.

Usage: python research/sweep_scorer.py WINDOWS.pkl threshold_db=59 threshold_db=57,ramp_db=8 ...
Each setting is NAME=VALUE[,NAME=VALUE...] of BluezoneConfig (values read as TOML).
Prints, per setting, the mean F1 over (scenario, seed) and the worst margin over GAEN.
"""

import pickle
import sys

import numpy as np

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.scoring import parse_setting
from bluezone.sim.metrics import confusion

data = pickle.load(open(sys.argv[1], "rb"))


def f1_for(config: BluezoneConfig) -> dict:
    scorer = BluezoneScorer(config)
    out = {}
    for key, d in data.items():
        truth = d["true"] >= d["cc"] - 1e-9
        predicted = np.zeros(len(truth), bool)
        index = {k: i for i, k in enumerate(d["keys"])}
        for k, windows in d["windows"].items():
            i = index.get(k)
            if i is not None:
                predicted[i] = any(scorer.score(w).close_contact for w in windows)
        c = confusion(truth, predicted)
        out[key] = (c.f1, c.precision, c.recall, d["gaen"])
    return out


for setting in sys.argv[2:]:
    result = f1_for(BluezoneConfig(**dict(parse_setting(part) for part in setting.split(","))))
    mean = np.mean([v[0] for v in result.values()])
    margin = min(v[0] - v[3] for v in result.values())
    print(f"{mean:.3f} {margin:+.3f} {setting}")
    for k, v in sorted(result.items()):
        print("   ", k, [round(x, 3) for x in v])
