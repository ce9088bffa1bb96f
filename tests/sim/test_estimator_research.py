"""research/estimator_sweep.py must score exactly as the bluezone scorer does, or its choice means nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from bluezone.matching.bluezone_scorer import BluezoneConfig
from bluezone.sim import engine, report
from bluezone.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def research(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "research" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_sweep_arithmetic_equals_the_scorer_on_a_real_run() -> None:
    cache, sweep = research("estimator_cache"), research("estimator_sweep")
    scenario = load_scenario(ROOT / "simulations" / "classroom.toml").with_overrides(duration_min=25)
    result = engine.run(scenario, seed=5, scorers=["gaen", "bluezone"], store="memory", keep_windows=True)
    keys, true = report.units(result)
    config = BluezoneConfig()
    data = {
        "keys": keys, "true": true, "cc": scenario.close_contact_min,
        "units": {k: cache.unit_features(ws, result.contexts[k[2]], config) for k, ws in result.windows.items()},
        "scores": {n: (np.array([s[k].weighted_minutes if k in s else 0.0 for k in keys]),
                       np.array([s[k].close_contact if k in s else False for k in keys])) for n, s in result.scores.items()},
    }
    flat = sweep.flatten(data)
    defaults = dict(
        beta=config.minute_reference_weight, q=f"{config.minute_reference_quantile:g}", kmin=config.minute_reference_min_links,
        centre=config.minute_reference_db, clip=config.minute_reference_clip_db, shape="ramp",
        decision_db=config.threshold_db, threshold=config.threshold_db, width=config.ramp_db,
    )
    weighted, verdict = sweep.estimate(flat, defaults)
    assert verdict.any() and (~verdict).any()
    engine_weighted, engine_verdict = data["scores"]["bluezone"]
    # the cache joins a unit's windows before smoothing, the scorer smooths each: equal unless a key changed mid-encounter
    assert np.mean(verdict == engine_verdict) > 0.98
    assert weighted == pytest.approx(engine_weighted, abs=0.5)  # the scorer rounds to 0.001; see above


def test_paired_noise_scores_both_scorers_on_the_same_draw() -> None:
    """A scorer identical to GAEN has margin 0 on every draw (a draw per scorer would not); a
    perfect verdict is never behind GAEN's in F1."""
    sweep = research("estimator_sweep")
    rng = np.random.default_rng(3)
    n = 400
    truth = rng.random(n) < 0.3
    gaen_est = truth * 10.0 + rng.normal(0, 8, n)
    gaen_decided = gaen_est > 12
    empty = np.zeros(0)
    flat = sweep.Flat(
        unit=empty, slot=empty, p10=empty, count=empty, sd=empty, day_ref=empty, others={}, others_n=empty,
        truth=truth, receiver=rng.integers(0, 40, n), scores={"gaen": (gaen_est, gaen_decided)},
        window=empty, bridge=(empty, empty, empty),
    )
    lo, hi, below = sweep.paired_noise(flat, gaen_est, gaen_decided, 50)
    assert np.all(lo == 0) and np.all(hi == 0) and np.all(below == 0)
    lo, hi, below = sweep.paired_noise(flat, truth * 1.0, truth, 50)
    assert lo[0] > 0 and below[0] == 0 and hi[0] > lo[0]
