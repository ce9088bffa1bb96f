"""How good could any RSSI scorer be if a phone knew more than it can?  (target (b) of issue 3)

Usage: python research/oracle_ceiling.py classroom,office base,handonly,nocal,perfect 11,12,13

Runs each scenario in variants that remove what a phone cannot know:

- ``base``: the scenario as written;
- ``handonly``: every phone in hand (no pocket or bag loss), calibration residuals kept;
- ``nocal``: calibration residuals (per model and per unit) zero, carriage kept;
- ``perfect``: both: every phone in hand and perfectly calibrated.

and prints both scorers' F1 and the hindsight ceiling of the bluezone scorer's family
(``detection_ceiling.ceiling``: best precision at recall >= 0.85, best recall at precision
>= 0.80, best F1 over a grid of per-minute thresholds and minute counts chosen on the run
itself).  About 25-40 s per classroom or office run on this machine.
"""

import dataclasses
import sys

import numpy as np
from detection_ceiling import ceiling

from bluezone.matching.bluezone_scorer import BluezoneConfig, minute_attenuation
from bluezone.sim import engine, report
from bluezone.sim.scenario import Scenario, load_scenario


def variant(scenario: Scenario, kind: str) -> Scenario:
    devices = scenario.devices
    if kind in ("handonly", "perfect"):
        devices = dataclasses.replace(devices, carriage=(("hand", 1.0),))
    if kind in ("nocal", "perfect"):
        flat = [dataclasses.replace(m, tx_error_db=0.0, rx_error_db=0.0, unit_sd_db=0.0) for m in devices.models]
        devices = dataclasses.replace(devices, models=tuple(flat))
    return scenario.with_overrides(devices=devices)


def minutes(result: engine.RunResult) -> dict:
    """Per-minute attenuation per unit, as collect_minutes.py keeps it (10th percentile only)."""
    keys, true_minutes = report.units(result)
    config = BluezoneConfig(percentile=10, min_sightings=2)
    units = {}
    for k, windows in (result.windows or {}).items():
        parts = [minute_attenuation(w.times, w.attenuation, config) for w in windows]
        s, v, n = (np.concatenate([p[i] for p in parts]) for i in range(3))
        order = np.argsort(s, kind="stable")
        units[k] = {10: (s[order], v[order], n[order])}
    return {"keys": keys, "true": true_minutes, "cc": result.scenario.close_contact_min, "units": units}


def main() -> None:
    names, kinds, seeds = sys.argv[1].split(","), sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")]
    for name in names:
        for kind in kinds:
            for seed in seeds:
                scenario = variant(load_scenario(f"simulations/{name}.toml"), kind)
                if name == "market":
                    scenario = scenario.with_overrides(duration_min=90)
                result = engine.run(scenario, seed=seed, scorers=["gaen", "bluezone"], store="memory", keep_windows=True)
                scores = report.summarise(result)["scorers"]
                p85, r80, f1 = ceiling(minutes(result))
                bz = scores["bluezone"]
                print(
                    f"{name:9} {kind:8} seed {seed}: gaen F1 {scores['gaen']['f1']:.3f}  bluezone F1 {bz['f1']:.3f} "
                    f"(P {bz['precision']:.2f} R {bz['recall']:.2f}) | ceiling: P at R>=0.85 {p85:.2f}, "
                    f"R at P>=0.80 {r80:.2f}, F1 {f1:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
