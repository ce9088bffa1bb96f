"""Run scenes once and cache, per judged unit, the per-minute features an estimator can use.

Usage: python research/estimator_cache.py CACHE_DIR SCENES SEEDS [--minutes M]
e.g.   python research/estimator_cache.py /tmp/est classroom,office 11,12,13

SCENES are names of ``simulations/*.toml`` (or paths to TOML files, or ``gen:KIND`` for a procedural
scene drawn from the run's seed, kept as ``gen-KIND_<seed>.pkl``).  Each (scene, seed) runs
once through the real engine (memory stores, the ``gaen`` and present ``bluezone`` scorers) and
is kept as ``CACHE_DIR/<scene>_<seed>.pkl`` (an existing file is not run again):

- ``keys``, ``true`` (minutes within the close distance per unit), ``cc`` (close-contact minutes);
- ``scores``: per scorer, per unit, (weighted minutes, close contact) as the report uses them;
- ``units``: per unit (day, uploader row, receiver device), sorted by minute: ``slot``, the
  link's 10th-percentile attenuation ``p10``, ``count`` (sightings), ``sd`` (their spread),
  ``day_ref`` (the receiver's day reference without this link, nan when it has none), and the
  same-minute reference of the receiver's *other* links, ``others_q`` (quantile -> per-minute
  value, nan where it heard nobody else) with ``others_n``, and ``near``: the share of the minute
  the pair truly spent within the close distance (the per-minute truth ``llr_estimator.py`` fits on).

``estimator_sweep.py`` then sweeps estimator settings on these arrays in seconds.  Keep the
hold-out seeds out of any sweep that chooses settings.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np

from bluezone.matching.bluezone_scorer import BluezoneConfig, minute_attenuation
from bluezone.sim import engine, report
from bluezone.sim.generate import generate
from bluezone.sim.scenario import load_scenario
from bluezone.sim.truth import Truth

SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"
OTHERS_Q = (0.0, 10.0, 25.0, 50.0)


def scene_path(name: str) -> Path:
    return Path(name) if name.endswith(".toml") else SIMULATIONS / f"{name}.toml"


def minute_spread(window, slots: np.ndarray, config: BluezoneConfig) -> np.ndarray:
    """Standard deviation of attenuation within each of ``slots`` (slots from minute_attenuation)."""
    sl = np.floor(np.asarray(window.times, np.float64) / config.slot_seconds).astype(np.int64)
    att = np.asarray(window.attenuation, np.float64)
    occupied, inverse = np.unique(sl, return_inverse=True)
    n = np.bincount(inverse)
    mean = np.bincount(inverse, att) / n
    var = np.bincount(inverse, att * att) / n - mean * mean
    return np.sqrt(np.maximum(var, 0.0))[np.searchsorted(occupied, slots)]


class MinuteTruth(Truth):
    """The engine's truth, also keeping per minute (the scorer's slot) each pair's seconds within
    the close distance: the report needs only the day's total, a per-minute model needs the minute."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.near_seconds: dict[int, np.ndarray] = {}

    def add(self, day: int, d: np.ndarray, separated: np.ndarray, dt: float, now: float | None = None) -> None:
        super().add(day, d, separated, dt, now)
        if now is None:
            return
        slot = int(np.floor(now / BluezoneConfig().slot_seconds))
        acc = self.near_seconds.get(slot)
        if acc is None:
            acc = self.near_seconds[slot] = np.zeros((self.senders, self.devices), np.float32)
        with np.errstate(invalid="ignore"):
            acc += ((d < self.close_radius) & ~separated) * np.float32(dt)


def unit_features(windows: list, context, config: BluezoneConfig, near: dict[int, np.ndarray] | None = None, row: int = 0, device: int = 0) -> dict[str, np.ndarray]:
    parts = []
    for w in windows:
        slots, value, counts = minute_attenuation(w.times, w.attenuation, config)
        sd = minute_spread(w, slots, config)
        exclude = w.sighting_index
        others = {q: context.minute_reference(slots, q, exclude) for q in OTHERS_Q}
        ref = context.reference(w.day, config.calibration_min_link_minutes, exclude)
        parts.append(
            dict(
                slot=slots, p10=value, count=counts, sd=sd,
                day_ref=np.full(len(slots), np.nan if ref is None else ref),
                **{f"others_{q:g}": others[q][0] for q in OTHERS_Q},
                others_n=others[0.0][1],
                near=np.array([near[s][row, device] if s in near else 0.0 for s in slots.tolist()]) / config.slot_seconds
                if near is not None else np.full(len(slots), np.nan),
            )
        )
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(out["slot"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def collect(name: str, seed: int, minutes: float | None, scorers: tuple[str, ...] = ("gaen", "bluezone"),
            extra: Callable[[engine.RunResult, list], dict] | None = None) -> dict:
    """One run's cache (see the module docstring); ``extra(result, keys)``'s entries are added to it."""
    scenario = generate(name[4:], seed) if name.startswith("gen:") else load_scenario(scene_path(name))
    if minutes:
        scenario = scenario.with_overrides(duration_min=min(minutes, scenario.duration_min))
    with mock.patch.object(engine, "Truth", MinuteTruth):
        result = engine.run(scenario, seed=seed, scorers=list(scorers), store="memory", keep_windows=True)
    keys, true = report.units(result)
    config = BluezoneConfig()
    near = result.truth.near_seconds
    units = {k: unit_features(ws, result.contexts[k[2]], config, near, k[1], k[2]) for k, ws in result.windows.items()}
    scores = {
        n: (
            np.array([s[k].weighted_minutes if k in s else 0.0 for k in keys]),
            np.array([s[k].close_contact if k in s else False for k in keys]),
        )
        for n, s in result.scores.items()
    }
    out = {"keys": keys, "true": true, "cc": scenario.close_contact_min, "scores": scores, "units": units}
    return out if extra is None else {**out, **extra(result, keys)}


def each_run(argv: list[str], collect: Callable[[str, int, float | None], dict], told: Callable[[str, int, dict], str]) -> None:
    """``OUT_DIR SCENES SEEDS [--minutes M]``: ``collect`` each (scene, seed) not kept yet (the market cut to M minutes)
    into ``OUT_DIR/<scene>_<seed>.pkl`` and print ``told`` of it."""
    minutes = float(argv[argv.index("--minutes") + 1]) if "--minutes" in argv else None
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for seed in [int(s) for s in argv[2].split(",")]:
        for name in argv[1].split(","):
            path = out / f"{Path(name).stem.replace(':', '-')}_{seed}.pkl"
            if path.exists():
                continue
            d = collect(name, seed, minutes if Path(name).stem == "market" else None)
            path.with_suffix(".part").write_bytes(pickle.dumps(d))
            path.with_suffix(".part").replace(path)
            print(told(Path(name).stem, seed, d), flush=True)


def main(argv: list[str], scorers: tuple[str, ...] = ("gaen", "bluezone"), extra: Callable[[engine.RunResult, list], dict] | None = None) -> None:
    """``CACHE_DIR SCENES SEEDS [--minutes M]``: each run once, ``scorers`` scored (``credit_cache.py`` adds its
    own), ``extra`` as ``collect``'s."""
    each_run(argv, lambda name, seed, minutes: collect(name, seed, minutes, scorers, extra),
             lambda scene, seed, data: f"{scene} {seed} units {len(data['units'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
