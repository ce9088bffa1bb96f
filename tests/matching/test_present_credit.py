"""Minutes credited by the time a link was present, not by the minute slots its sightings touch (issue 13).

sim13 found both scorers crediting a 13.6-minute ride 15.0 minutes (it touches 15 slots); these pin
the credit to the first-to-last span of each run of minutes plus one sampling interval.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_helpers import SAMPLING, T0, bare, scanned

from bluezone.errors import ConfigError
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.scoring import GaenConfig, GaenScorer, present_share

SCORERS = {
    "gaen": GaenScorer(),
    "bluezone present": BluezoneScorer(BluezoneConfig(credit="present")),
}


@pytest.mark.parametrize("name", SCORERS)
def test_a_ride_of_13_6_minutes_is_not_15(name: str) -> None:
    # carriage seed 44's false alarms: present from minute 6.8 to 20.4, 15 slots touched
    w = scanned(6.8, 20.4)
    assert len(np.unique(np.floor(w.times / 60))) == 15
    score = SCORERS[name].score(w)
    assert score.minutes <= 13.6 + SAMPLING / 60 + 1e-9
    assert score.minutes > 13.3  # not under-credited either: the span the scans saw plus one interval
    assert not score.close_contact


def test_whole_slots_gave_it_15() -> None:
    # the bug, kept reachable for comparison ("slots", the earlier credit): 15.0 from 13.6 minutes present
    w = scanned(6.8, 20.4)
    assert GaenScorer(GaenConfig(credit="slots")).score(w).minutes == 15.0
    slots = BluezoneScorer(BluezoneConfig(verdict_credit="same", close_contact_minutes=15.0))  # before the sixteenth session
    assert slots.score(w).minutes == 15.0 and slots.score(w).close_contact
    assert not BluezoneScorer().score(w).close_contact  # the "span" verdict since: never more than the time present


@pytest.mark.parametrize("name", SCORERS)
def test_a_contact_of_16_minutes_is_still_found(name: str) -> None:
    score = SCORERS[name].score(scanned(3.5, 19.5, seed=2))
    assert score.close_contact and score.minutes == pytest.approx(16.0, abs=0.2)


def test_inner_slots_count_whole_and_the_ends_their_part() -> None:
    # sightings from 30 s to 150 s: slot 0 from 25 s (half an interval before), slot 2 to 35 s
    slots, share = present_share(T0 + np.arange(30.0, 150.5, 0.5), 60.0, 0, SAMPLING)
    assert (slots - int(T0 // 60)).tolist() == [0, 1, 2]
    assert share.tolist() == pytest.approx([35 / 60, 1.0, 35 / 60])


def test_a_bridged_gap_keeps_one_run() -> None:
    # bluezone bridges up to gap_fill_slots empty minutes: the minutes either side stay whole
    times = np.r_[np.arange(50.0, 91.0), np.arange(250.0, 311.0)]  # slots 0-1, then 4-5
    _, joined = present_share(T0 + times, 60.0, 2, SAMPLING)
    _, apart = present_share(T0 + times, 60.0, 0, SAMPLING)
    assert joined.tolist() == pytest.approx([15 / 60, 1.0, 1.0, 15 / 60])
    assert apart.tolist() == pytest.approx([15 / 60, 35 / 60, 55 / 60, 15 / 60])


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="sampling_seconds"):
        GaenConfig(sampling_seconds=61.0)
    with pytest.raises(ConfigError, match="credit"):
        BluezoneConfig(credit="touched")
    with pytest.raises(ConfigError, match="sampling_seconds"):
        BluezoneConfig(sampling_seconds=-1.0)


# Property tests: sightings as offsets (seconds) within two hours, on 0.1-s ticks.
offsets = st.lists(st.integers(0, 72_000).map(lambda k: k / 10), min_size=1, max_size=200)
CONFIGS = [(GaenConfig().slot_seconds, 0), (BluezoneConfig().slot_seconds, BluezoneConfig().gap_fill_slots)]


@given(times=offsets, sampling=st.sampled_from([0.0, 0.25, 10.0, 60.0]), bridge=st.sampled_from([0, 2]))
@settings(max_examples=300, deadline=None)
def test_credit_never_exceeds_the_span_plus_one_interval(times: list[float], sampling: float, bridge: int) -> None:
    t = np.asarray(times)
    _, share = present_share(T0 + t, 60.0, bridge, sampling)
    assert share.sum() * 60.0 <= t.max() - t.min() + sampling + 1e-6
    assert ((share >= 0) & (share <= 1)).all()


@given(times=offsets, more=offsets, bridge=st.sampled_from([0, 2]))
@settings(max_examples=300, deadline=None)
def test_credit_grows_with_added_sightings(times: list[float], more: list[float], bridge: int) -> None:
    before = present_share(T0 + np.asarray(times), 60.0, bridge, SAMPLING)[1].sum()
    after = present_share(T0 + np.asarray(times + more), 60.0, bridge, SAMPLING)[1].sum()
    assert after >= before - 1e-9


@given(times=offsets, more=offsets)
@settings(max_examples=150, deadline=None)
def test_scorers_minutes_grow_with_added_sightings(times: list[float], more: list[float]) -> None:
    # with every sighting at one attenuation, a scorer's total minutes only follow the credit
    for scorer in SCORERS.values():
        before, after = scorer.score(bare(np.sort(times))).minutes, scorer.score(bare(np.sort(times + more))).minutes
        assert after >= before - 1e-3  # scores are rounded to 3 decimals


@given(times=offsets, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_the_same_sightings_in_any_order_score_the_same(times: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.asarray(times)
    att = rng.integers(40, 80, len(t)).astype(np.int32)
    order = rng.permutation(len(t))
    a = ExposureWindow(0, int(T0), T0 + t, -24 - att, att, False)
    b = ExposureWindow(0, int(T0), T0 + t[order], -24 - att[order], att[order], False)
    for scorer in (*SCORERS.values(), GaenScorer(GaenConfig(credit="slots"))):
        sa, sb = scorer.score(a), scorer.score(b)
        assert sa.minutes == sb.minutes and sa.minutes_by_bucket == sb.minutes_by_bucket
        assert sa.close_contact == sb.close_contact


def test_real_daemons_a_13_6_minute_meeting_is_not_a_close_contact(tmp_path) -> None:
    # end to end: two emulated daemons on the virtual clock, b beside a from 10:00:30 to 10:14:06
    # (13.6 minutes, 15 minute slots touched), out of range before and after; stored, matched, scored
    from bluezone.keyformat.keys import keys_from_daily
    from bluezone.matching.check import check_sightings
    from bluezone.proximity.emulation import run_emulated
    from bluezone.proximity.store import SightingStore

    start = T0 + 10 * 3600

    def b_at(t: float) -> tuple[float, float]:
        return (1.0, 0.0) if start + 30 <= t <= start + 30 + 13.6 * 60 else (500.0, 0.0)

    dbs = run_emulated({"a": (0.0, 0.0), "b": b_at}, tmp_path, start, 16 * 60, seed=3)
    with SightingStore.open(dbs["a"]) as a:
        keys = keys_from_daily(a.daily_keys())
    with SightingStore.open(dbs["b"]) as b:
        sightings = b.sightings()
    touched = len(np.unique(np.floor(sightings["time"] / 60)))
    assert touched == 15
    verdict_only = BluezoneScorer(BluezoneConfig(verdict_credit="present", threshold_db=80.0))
    for scorer in (GaenScorer(GaenConfig(immediate_db=80, near_db=80, medium_db=80)),
                   BluezoneScorer(BluezoneConfig(credit="present", threshold_db=80.0)), verdict_only,
                   BluezoneScorer(BluezoneConfig(threshold_db=80.0))):  # the default verdict ("span") too
        (exposure,) = check_sightings(keys, sightings, scorer)
        span = (exposure.end - exposure.start) / 60  # 13.6 minutes, give or take the daemon's timestamps
        assert 13.5 < span < 13.7 and 13.4 < exposure.score.minutes <= span + SAMPLING / 60 + 1e-3, scorer.name
        assert not exposure.score.close_contact
    (whole,) = check_sightings(keys, sightings, GaenScorer(GaenConfig(immediate_db=80, near_db=80, medium_db=80, credit="slots")))
    assert whole.score.minutes == 15.0
    # the verdict's own credit moves the verdict only: the ranking is whole slots' (verdict15)
    (ranked,), (judged,) = (check_sightings(keys, sightings, s) for s in (BluezoneScorer(BluezoneConfig(threshold_db=80.0, verdict_credit="same")), verdict_only))
    assert ranked.score.close_contact and judged.score.weighted_minutes == ranked.score.weighted_minutes
