"""The near/far chain that ranks bluezone's exposures, against a plain minute-by-minute forward-backward."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.errors import ConfigError
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.near_chain import llr_table, minute_llr, near_posterior
from bluezone.sim import engine
from bluezone.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def forward_backward(slots: list[int], llr: list[float], scale: float, switch: float, prior: float) -> list[float]:
    """The textbook recursions, one minute at a time, in probabilities (no scan, no scaling tricks)."""
    n = len(slots)
    trans = []
    for t in range(n):
        keep = 0.0 if t == 0 else (1 - switch) ** (slots[t] - slots[t - 1])
        trans.append([[keep + (1 - keep) * prior, (1 - keep) * (1 - prior)], [(1 - keep) * prior, keep + (1 - keep) * (1 - prior)]])
    emit = [[float(np.exp(scale * x)), 1.0] for x in llr]
    alpha, a = [], [prior, 1 - prior]
    for t in range(n):
        a = [emit[t][j] * sum(a[i] * trans[t][i][j] for i in range(2)) for j in range(2)]
        a = [v / sum(a) for v in a]
        alpha.append(a)
    beta, b = [[1.0, 1.0]] * n, [1.0, 1.0]
    for t in range(n - 2, -1, -1):
        b = [sum(trans[t + 1][i][j] * emit[t + 1][j] * b[j] for j in range(2)) for i in range(2)]
        b = [v / sum(b) for v in b]
        beta[t] = b
    return [alpha[t][0] * beta[t][0] / (alpha[t][0] * beta[t][0] + alpha[t][1] * beta[t][1]) for t in range(n)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 40), st.floats(-4.0, 4.0)), min_size=0, max_size=70),
    st.floats(0.05, 1.0), st.floats(0.01, 1.0), st.floats(0.001, 0.999),
)
def test_scan_equals_the_minute_by_minute_recursions(minutes, scale, switch, prior) -> None:  # type: ignore[no-untyped-def]
    slots = np.cumsum([gap for gap, _ in minutes]).astype(np.int64).tolist()
    llr = [x for _, x in minutes]
    got = near_posterior(np.array(slots, np.int64), np.array(llr), scale, switch, prior)
    assert got == pytest.approx(forward_backward(slots, llr, scale, switch, prior), abs=1e-9)
    assert ((got >= 0) & (got <= 1)).all()


def test_a_whole_day_of_strong_evidence_stays_finite() -> None:
    slots = np.arange(24 * 60)
    near = near_posterior(slots, np.full(len(slots), 4.0), 1.0, 0.01, 0.001)
    far = near_posterior(slots, np.full(len(slots), -4.0), 1.0, 0.01, 0.999)
    assert np.isfinite(near).all() and near.min() > 0.99 and far.max() < 0.01


def test_the_shipped_table_is_the_fitted_one_and_ranks_closer_higher() -> None:
    centres, llr = llr_table()
    fitted = json.loads((ROOT / "simulations" / "results" / "llr_table.json").read_text())
    assert centres.tolist() == fitted["centres_db"] and llr.tolist() == fitted["llr"]
    assert (np.diff(llr) <= 0).all() and llr[0] > 0 > llr[-1]  # more attenuation is never more evidence of near
    assert minute_llr(np.array([0.0, 200.0])).tolist() == [llr[0], llr[-1]]  # ends held flat


def test_the_verdict_is_the_ramps_to_the_bit_on_a_real_scene() -> None:
    """Only weighted minutes (the ranking) differ between the chain and the earlier ramp."""
    scenario = load_scenario(ROOT / "simulations" / "office.toml").with_overrides(duration_min=40)
    result = engine.run(scenario, seed=1, scorers=["bluezone"], store="memory", keep_windows=True)
    chain = BluezoneScorer()
    ramp = BluezoneScorer(BluezoneConfig(ranking="ramp"))
    differ = 0
    for (_, _, device), windows in result.windows.items():
        context = result.contexts[device]
        for w in windows:
            a, b = chain.for_receiver(context).score(w), ramp.for_receiver(context).score(w)
            assert replace(a, weighted_minutes=0.0) == replace(b, weighted_minutes=0.0), asdict(a)
            differ += a.weighted_minutes != b.weighted_minutes
    assert differ > 50


def test_the_expected_near_minutes_do_not_depend_on_the_slot_length() -> None:
    """The chain's evidence and memory are per minute: with slot_seconds = 30 each slot counted a whole minute's
    evidence and forgot twice as fast, so the same hour read as another number of near minutes (review11)."""
    rng = np.random.default_rng(7)
    llr = rng.normal(0.3, 1.5, 60)  # an hour of minutes
    minutes = near_posterior(np.arange(60), llr, 0.25, 0.2, 0.05).sum()
    halves = near_posterior(np.arange(120), np.repeat(llr, 2), 0.25, 0.2, 0.05, minutes_per_slot=0.5).sum() * 0.5
    assert abs(halves - minutes) < 0.05 * minutes
    unscaled = near_posterior(np.arange(120), np.repeat(llr, 2), 0.25, 0.2, 0.05).sum() * 0.5
    assert abs(unscaled - minutes) > 0.05 * minutes  # what it read before


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 600), st.sampled_from([-1.3372, 0.0, 4.0]), st.integers(1, 300)), min_size=1, max_size=6),
    st.floats(1e-3, 1e6), st.floats(1e-6, 1.0), st.floats(1e-6, 1 - 1e-6), st.sampled_from([1 / 60, 1.0, 60.0]),
)
def test_any_allowed_setting_gives_a_probability(runs, scale, switch, prior, minutes_per_slot) -> None:  # type: ignore[no-untyped-def]
    """attack12: chain_scale=1000 overflowed exp to inf and every posterior was nan (weighted_minutes nan in
    check --json); a switch of 1e-17 (memory exactly 1) let hours of near then far evidence underflow to 0/0."""
    slots, llr, at = [], [], 0
    for gap, x, k in runs:  # runs of k minutes of the table's strongest near, neutral or far evidence
        for i in range(k):
            at += gap if i == 0 else 1
            slots.append(at)
            llr.append(x)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is harmless here
        got = near_posterior(np.array(slots, np.int64), np.array(llr), scale, switch, prior, minutes_per_slot)
    assert ((got >= 0) & (got <= 1)).all()


def test_settings_that_would_break_the_chain_are_refused() -> None:
    for bad in ({"chain_switch": 1e-17}, {"chain_prior": 1e-300}, {"chain_prior": 1 - 1e-12}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be 1e-6 to 1"):
            BluezoneConfig(**bad)


def test_a_huge_scale_ranks_a_near_link_as_near() -> None:
    t = 1_699_920_000 + np.repeat(np.arange(30) * 60.0, 4) + np.tile([0.0, 10.0, 20.0, 30.0], 30)
    a = np.full(len(t), 40, np.int16)
    window = ExposureWindow(key_index=0, day=1_699_920_000, times=t, rssi=-a, attenuation=a, tx_power_estimated=False)
    score = BluezoneScorer(BluezoneConfig(chain_scale=1000.0)).score(window)
    assert score.weighted_minutes == 30.0  # was nan
