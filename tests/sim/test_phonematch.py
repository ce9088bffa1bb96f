"""One match over many phones' sightings gives each phone the windows of its own store's match.

The engine matches phones together (bluezone/sim/phonematch.py) only for speed: every window a
phone gets must be the one ``find_exposures`` gives its store alone, field by field, in the same
order, whatever the grouping.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import pairs_scenario

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.matching.matcher import ExposureWindow, find_exposures
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
from bluezone.sim import engine, phonematch
from bluezone.sim.keys import make_schedule
from bluezone.sim.phonematch import read_in_groups, windows_by_phone
from bluezone.sim.scenario import scenario_from_mapping

MIDNIGHT = 1_700_006_400.0  # a UTC midnight: windows split by day
START, END = MIDNIGHT - 3600.0, MIDNIGHT + 2 * 3600.0
SCHEDULE = make_schedule(4, START, END, np.array([-24, -20, -30, 5]), np.random.default_rng(5))
KEYS, _ = SCHEDULE.diagnosis_keys(range(4))


def phone_store(rng: np.random.Generator, n: int) -> np.ndarray:
    """n sightings: most of a sender's payload when heard (some beyond the matcher's 2-hour
    tolerance), some of nobody's, some with a damaged AEM (implausible metadata)."""
    when = rng.uniform(START - 4 * 3600, END + 4 * 3600, n).round(rng.integers(0, 3))  # ties likely
    rpi, aem = SCHEDULE.payload_at(rng.integers(0, 4, n), when)
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"], out["rpi"], out["aem"] = when, rpi, aem
    out["rssi"] = rng.integers(-100, -30, n)
    out["tx_power"] = np.where(rng.random(n) < 0.5, NO_TX_POWER, -10)
    stranger = rng.random(n) < 0.1
    out["rpi"][stranger] = np.frombuffer(rng.bytes(16 * int(stranger.sum())), "V16")
    damaged = rng.random(n) < 0.05
    out["aem"][damaged] = np.frombuffer(rng.bytes(4 * int(damaged.sum())), "V4")
    return out


def same_windows(got: list[ExposureWindow], want: list[ExposureWindow]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for name in ("key_index", "day", "tx_power_estimated", "transmission_risk", "report_type"):
            assert getattr(g, name) == getattr(w, name), name
        for name in ("times", "rssi", "attenuation", "sighting_index"):
            a, b = getattr(g, name), getattr(w, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name


@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_each_phone_gets_its_own_stores_windows(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    stores = [phone_store(rng, n) for n in sizes]
    corrections = rng.integers(-10, 10, len(stores)).tolist()
    got = windows_by_phone(KEYS, stores, corrections)
    assert len(got) == len(stores)
    for windows, store, correction in zip(got, stores, corrections):
        same_windows(windows, find_exposures(KEYS, store, rssi_correction=correction))


def test_windows_cross_midnight_and_phones_share_rpis() -> None:
    rng = np.random.default_rng(1)
    store = phone_store(rng, 400)
    stores = [store, store[::-1].copy(), np.empty(0, SIGHTING_DTYPE), store[:50].copy()]
    got = windows_by_phone(KEYS, stores, [0, 3, 0, -4])
    assert {w.day for w in got[0]} == {MIDNIGHT - DAY_SECONDS, MIDNIGHT}
    assert got[2] == []
    for windows, s, c in zip(got, stores, [0, 3, 0, -4]):
        same_windows(windows, find_exposures(KEYS, s, rssi_correction=c))


def test_groups_hold_the_phones_with_sightings_in_order() -> None:
    sizes = [3, 0, 4, 2, 0, 9, 1]
    read = lambda p: np.zeros(sizes[p], SIGHTING_DTYPE)  # noqa: E731
    groups = list(read_in_groups(read, len(sizes), limit=7))
    assert [[p for p, _ in g] for g in groups] == [[0, 2], [3], [5], [6]]  # a group ends when it holds 7; 9 alone
    assert [[len(s) for _, s in g] for g in groups] == [[3, 4], [2], [9], [1]]
    assert list(read_in_groups(read, len(sizes), limit=1)) and all(len(g) == 1 for g in read_in_groups(read, 7, limit=1))


@pytest.mark.parametrize("limit", [1, 500])
def test_a_run_is_the_same_whatever_the_groups(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    # one phone a group is each store matched alone, as the engine did before phonematch
    sc = scenario_from_mapping(pairs_scenario(minutes=6.0))
    together = engine.run(sc, seed=2, keep_windows=True)
    monkeypatch.setattr(phonematch, "GROUP_SIGHTINGS", limit)
    apart = engine.run(sc, seed=2, keep_windows=True)
    assert together.scores == apart.scores and len(together.scores["gaen"]) > 20
    assert together.windows is not None and apart.windows is not None and together.windows.keys() == apart.windows.keys()
    for pair, windows in together.windows.items():
        same_windows(windows, apart.windows[pair])
