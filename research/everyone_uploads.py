"""A big crowd with every phone's adverts stored, as a real daemon stores them.

Usage: python research/everyone_uploads.py market 11,12 base,handonly [MINUTES] [UPLOADERS]

In big crowds the engine turns only the uploaders' adverts into sightings (the market's 20 of
775 phones), so each receiver's self-calibration reference rests on a few links; a real
daemon's rests on everyone it heard.  This runs the scenario with ``positives = "all"`` (every
phone uploads, so every advert is stored and every pair is judged), or with UPLOADERS instead
of "all" to compare, in the variant ``base`` (as written) or ``handonly`` (every phone in hand,
as in ``oracle_ceiling.py``), and prints one JSON line per run.  The market at 90 minutes with
everyone: 16-23 min and 4-6 GB per run on this machine (20 uploaders: 25-40 s).
"""

import dataclasses
import json
import sys
import time

from bluezone.sim import engine
from bluezone.sim.report import summarise
from bluezone.sim.scenario import load_scenario


def main() -> None:
    name, seeds, kinds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3].split(",")
    minutes = float(sys.argv[4]) if len(sys.argv) > 4 else 90.0
    uploaders: int | str = int(sys.argv[5]) if len(sys.argv) > 5 else "all"
    for kind in kinds:
        for seed in seeds:
            scenario = load_scenario(f"simulations/{name}.toml").with_overrides(duration_min=minutes)
            devices = dataclasses.replace(scenario.devices, positives=uploaders)
            if kind == "handonly":
                devices = dataclasses.replace(devices, carriage=(("hand", 1.0),))
            scenario = scenario.with_overrides(devices=devices)
            began = time.perf_counter()
            summary = summarise(engine.run(scenario, seed=seed, scorers=["gaen", "bluezone"], store="memory"))
            scores = {k: {m: round(v[m], 3) for m in ("precision", "recall", "f1")} for k, v in summary["scorers"].items()}
            row = {"scenario": name, "kind": kind, "seed": seed, "uploaders": summary["uploaders"], "minutes": minutes}
            row |= {"true_close_contacts": summary["true_close_contacts"], "seconds": round(time.perf_counter() - began)}
            print(json.dumps(row | scores), flush=True)


if __name__ == "__main__":
    main()
