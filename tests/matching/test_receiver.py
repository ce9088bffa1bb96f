"""Receiver self-calibration: the per-day reference from all stored sightings, and how the bluezone scorer uses it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_helpers import MIDNIGHT, advert_sightings, make_keys, sightings

from bluezone.crypto.intervals import INTERVAL_SECONDS

from bluezone.errors import ConfigError
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.check import check_sightings
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.receiver import ReceiverContext, check_run, for_receiver, receiver_context, run_lengths
from bluezone.matching.scoring import GaenScorer
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE

DAY = MIDNIGHT
#: The day-level shift alone (the scorer's earlier default), without the same-minute reference.
DAY_SHIFT = BluezoneConfig(minute_reference_weight=0.0)


def test_reference_is_a_quantile_of_link_minutes_and_follows_the_receivers_own_loss() -> None:
    heard = sightings({1: 60.0, 2: 70.0, 3: 80.0}, minutes=30)
    # by default the low end: the closest neighbour's per-minute 10th percentile
    assert receiver_context(heard).reference(DAY) == pytest.approx(60 - 2.6, abs=1.0)
    ctx = receiver_context(heard, quantile=50)
    # per (RPI, minute) the 10th percentile (about 2.6 dB under the mean with SD 2), then the median link-minute
    assert ctx.reference(DAY) == pytest.approx(70 - 2.6, abs=1.0)
    assert ctx.link_minutes(DAY) == 90
    in_bag = heard.copy()
    in_bag["rssi"] -= 9  # the same neighbours through a bag
    assert receiver_context(in_bag, quantile=50).reference(DAY) == pytest.approx(ctx.reference(DAY) + 9, abs=0.01)
    fixed = receiver_context(in_bag, rssi_correction=9, quantile=50)  # a calibrated RSSI correction undoes it
    assert fixed.reference(DAY) == pytest.approx(ctx.reference(DAY), abs=0.01)


def test_reference_is_per_day_and_needs_enough_link_minutes() -> None:
    two_days = np.sort(np.concatenate([sightings({1: 60.0}, 20), sightings({2: 75.0}, 5, start=DAY + 86_400 + 60)]), order="time")
    ctx = receiver_context(two_days)
    assert ctx.days() == [DAY, DAY + 86_400]
    assert ctx.reference(DAY) < 60 < ctx.reference(DAY + 86_400) - 10
    assert ctx.reference(DAY + 86_400, min_link_minutes=10) is None  # 5 link-minutes only
    assert receiver_context(np.zeros(0, SIGHTING_DTYPE)).reference(DAY) is None
    one_each = sightings({1: 60.0}, 20, per_minute=1)
    one_each["time"] = DAY + 3600 + 30 + np.arange(20) * 60.0
    assert receiver_context(one_each).reference(DAY) is None  # no minute has 2 sightings


def test_reference_can_leave_out_the_judged_link() -> None:
    # one long close contact (RPI 1, a tenth of the link-minutes) is this receiver's closest company
    others = {n: 70.0 + (n % 5) for n in range(2, 11)}
    heard = sightings({1: 55.0, **others}, minutes=30)
    ctx = receiver_context(heard)
    with_contact = ctx.reference(DAY)
    own = np.flatnonzero(heard["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    without = ctx.reference(DAY, exclude=own)
    assert with_contact < 60 and without > 65  # the contact no longer sets its own receiver's bar
    assert without == pytest.approx(receiver_context(np.delete(heard, own)).reference(DAY))
    assert ctx.reference(DAY, exclude=np.arange(len(heard))) is None  # nothing left
    # The scorer judges the contact's window against the others' level, not against the contact
    # itself: a contact at 64 dB (pocket-like) for 30 minutes is close only with its own link left out.
    heard = sightings({1: 64.0, **others}, minutes=30)
    own = np.flatnonzero(heard["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    scorer = BluezoneScorer(DAY_SHIFT).for_receiver(receiver_context(heard))
    judged = ExposureWindow(
        key_index=0, day=DAY, times=heard["time"][own], rssi=heard["rssi"][own].astype(np.int32),
        attenuation=-24 - heard["rssi"][own].astype(np.int32), tx_power_estimated=False, sighting_index=own,
    )
    unexcluded = ExposureWindow(**{**judged.__dict__, "sighting_index": np.empty(0, np.int64)})
    assert scorer.score(judged).close_contact and not scorer.score(unexcluded).close_contact


def window(attenuation: float, minutes: int = 30) -> ExposureWindow:
    times = DAY + 3600 + np.arange(minutes * 20) * 3.0
    att = np.full(len(times), int(attenuation), np.int32)
    return ExposureWindow(key_index=0, day=DAY, times=times, rssi=-24 - att, attenuation=att, tx_power_estimated=False)


def test_scorer_threshold_moves_with_the_receiver_bounded() -> None:
    s = BluezoneScorer(BluezoneConfig(threshold_db=60, reference_db=72, calibration_weight=0.5, calibration_clip_db=3, minute_reference_weight=0.0, ramp_db=0.0))
    assert s.threshold_for(DAY) == 60  # no context: the nominal threshold
    weak = s.for_receiver(ReceiverContext.uniform(DAY, 74.0, 500))
    assert weak.threshold_for(DAY) == pytest.approx(61.0)
    assert weak.threshold_for(DAY + 86_400) == 60  # no reference that day
    assert s.for_receiver(ReceiverContext.uniform(DAY, 90.0, 500)).threshold_for(DAY) == pytest.approx(61.5)  # clipped
    assert s.for_receiver(ReceiverContext.uniform(DAY, 60.0, 500)).threshold_for(DAY) == pytest.approx(58.5)
    assert s.for_receiver(ReceiverContext.uniform(DAY, 90.0, 5)).threshold_for(DAY) == 60  # too little behind it
    w = window(61)
    assert not s.score(w).close_contact and weak.score(w).close_contact
    assert s.config == weak.config and s.receiver is None  # binding does not change the original


def test_for_receiver_leaves_other_scorers_alone_and_bad_settings_fail() -> None:
    g = GaenScorer()
    assert for_receiver(g, ReceiverContext.uniform(DAY, 80.0, 100)) is g
    b = BluezoneScorer()
    assert for_receiver(b, None) is b
    with pytest.raises(ConfigError):
        BluezoneConfig(calibration_weight=1.5)
    with pytest.raises(ConfigError):
        BluezoneConfig(calibration_clip_db=-1)


def test_check_sightings_calibrates_on_the_whole_store() -> None:
    tek = b"\xd1" * 16
    interval = DAY // INTERVAL_SECONDS + 6
    times = interval * INTERVAL_SECONDS + np.arange(0, 30 * 60, 15.0)
    parts = [
        advert_sightings(tek, i, times[(times // INTERVAL_SECONDS) == i], rssi=-81, tx_power=-20)  # attenuation 61
        for i in np.unique(times // INTERVAL_SECONDS).astype(int).tolist()
    ]
    contact = np.concatenate(parts)
    keys = make_keys([(tek, interval - 6, 144)])
    # Everyone else this phone heard that day is weak (a phone in a bag): its threshold moves up by 0.7 x 3 dB.
    weak_day = np.sort(np.concatenate([contact, sightings({n: 82.0 for n in range(1, 11)}, 60, start=DAY + 3600)]), order="time")
    scorer = BluezoneScorer(DAY_SHIFT)
    assert not check_sightings(keys, contact, scorer)[0].score.close_contact  # reference ~57 dB: threshold 60 - 2.1
    assert check_sightings(keys, weak_day, scorer)[0].score.close_contact
    assert not check_sightings(keys, weak_day, scorer, calibrate_receiver=False)[0].score.close_contact
    gaen = check_sightings(keys, weak_day, GaenScorer())[0].score
    assert gaen == check_sightings(keys, weak_day, GaenScorer(), calibrate_receiver=False)[0].score


def test_minute_reference_is_the_other_links_in_that_minute() -> None:
    # neighbours 2-6 at 70-74 dB for 30 minutes; neighbour 1 (the judged link) at 55 dB
    heard = sightings({1: 55.0, **{n: 68.0 + 2 * (n - 2) for n in range(2, 7)}}, minutes=30)
    ctx = receiver_context(heard)
    own = np.flatnonzero(heard["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    slots = np.unique(np.floor(heard["time"][own] / 60).astype(np.int64))
    ref, count = ctx.minute_reference(slots, 50.0, exclude=own)
    assert (count == 5).all()
    assert np.allclose(ref, 72.0 - 2.6, atol=2.0)  # median of the others (68-76) at their 10th percentile (-1.28 SD)
    with_own, count_own = ctx.minute_reference(slots, 0.0)
    assert (count_own == 6).all() and np.allclose(with_own, 55.0, atol=4.0)  # the judged link itself is lowest
    empty, none = ctx.minute_reference(slots + 10_000, 50.0)
    assert np.isnan(empty).all() and (none == 0).all()  # minutes nobody was heard
    assert np.isnan(ReceiverContext().minute_reference(slots, 50.0)[0]).all()


def test_minute_reference_cancels_the_receivers_own_loss() -> None:
    # The same room heard by a phone in a bag: everyone 9 dB weaker, the contact included.
    config = BluezoneConfig(
        minute_reference_weight=1.0, minute_reference_quantile=50.0, minute_reference_db=72.0, minute_reference_clip_db=15.0, threshold_db=59.0
    )
    for loss in (0.0, 9.0):
        room = {1: 55.0 + loss, **{n: 68.0 + 2 * (n - 2) + loss for n in range(2, 7)}}
        heard = sightings(room, minutes=30)
        own = np.flatnonzero(heard["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
        judged = ExposureWindow(
            key_index=0, day=DAY, times=heard["time"][own], rssi=heard["rssi"][own].astype(np.int32),
            attenuation=-24 - heard["rssi"][own].astype(np.int32), tx_power_estimated=False, sighting_index=own,
        )
        scorer = BluezoneScorer(config).for_receiver(receiver_context(heard))
        assert scorer.score(judged).close_contact, loss
        bare = BluezoneScorer(config)  # no receiver: nothing to compare with, the plain threshold
        assert bare.score(judged).close_contact == (loss == 0.0)


def test_ramp_grades_weighted_minutes_while_the_verdict_counts_minutes_under_the_threshold() -> None:
    s = BluezoneScorer(BluezoneConfig(threshold_db=60.0, ramp_db=4.0, ranking="ramp"))  # the earlier ranking
    assert s.score(window(56, 30)).weighted_minutes == pytest.approx(30, abs=0.5)
    assert s.score(window(56, 30)).close_contact
    just_over = s.score(window(61, 30))  # a quarter of the way up the ramp: graded, but not within 2 m
    assert just_over.weighted_minutes == pytest.approx(30 * 3 / 8, abs=1)
    assert not just_over.close_contact and just_over.minutes_by_bucket["within_2m"] == 0
    assert s.score(window(64, 30)).weighted_minutes == pytest.approx(0, abs=0.5)
    hard = BluezoneScorer(BluezoneConfig(threshold_db=60.0, ramp_db=0.0, ranking="ramp")).score(window(61, 30))
    assert hard.weighted_minutes == 0  # no ramp: weighted minutes are the verdict's
    with pytest.raises(ConfigError):
        BluezoneConfig(ramp_db=-1.0)
    with pytest.raises(ConfigError):
        BluezoneConfig(minute_reference_weight=2.0)
    with pytest.raises(ConfigError):
        BluezoneConfig(ranking="median")
    with pytest.raises(ConfigError):
        BluezoneConfig(chain_prior=1.0)


def test_same_minute_reference_follows_the_scorers_slot_length() -> None:
    # A contact at 61 dB in a room heard weakly (82 dB): the same-minute reference makes it close.
    # With 30-s slots the receiver context must be counted in 30-s slots too, or no minute finds its
    # reference and the verdict silently falls back (here: to no shift at all).
    tek = b"\xd2" * 16
    interval = DAY // INTERVAL_SECONDS + 6
    times = interval * INTERVAL_SECONDS + np.arange(0, 30 * 60, 3.0)
    contact = np.concatenate([
        advert_sightings(tek, i, times[(times // INTERVAL_SECONDS) == i], rssi=-81, tx_power=-20)
        for i in np.unique(times // INTERVAL_SECONDS).astype(int).tolist()
    ])
    room = sightings({n: 82.0 for n in range(1, 6)}, 40, start=interval * INTERVAL_SECONDS - 300)
    heard = np.sort(np.concatenate([contact, room]), order="time")
    keys = make_keys([(tek, interval - 6, 144)])
    for slot in (60.0, 30.0):
        config = BluezoneConfig(slot_seconds=slot, calibration_weight=0.0)
        assert not check_sightings(keys, heard, BluezoneScorer(config), calibrate_receiver=False)[0].score.close_contact
        assert check_sightings(keys, heard, BluezoneScorer(config))[0].score.close_contact, slot
    # a context counted in other slots is refused, not silently ignored
    minute_context = receiver_context(heard)
    judged = window(61, 20)
    with pytest.raises(ValueError, match="slots"):
        BluezoneScorer(BluezoneConfig(slot_seconds=30.0)).for_receiver(minute_context).score(judged)


def test_check_keys_takes_the_day_reference_from_the_whole_day_whatever_the_key_file(tmp_path) -> None:
    # A same-day key (12:00-18:00 UTC) whose contact (61 dB) is alone in its minutes, so the day
    # reference stands in; the day's other company (01:00-03:00) was weak, which makes it close.
    # The check read only the key file's span (10:00-20:00): no company, no shift, not close;
    # with an unrelated whole-day key in the same file it read the morning too and said close.
    from bluezone.matching.check import check_keys
    from bluezone.proximity.store import SightingStore

    tek = b"\xd3" * 16
    interval = DAY // INTERVAL_SECONDS + 72
    times = interval * INTERVAL_SECONDS + np.arange(0, 30 * 60, 3.0)
    contact = np.concatenate([
        advert_sightings(tek, i, times[(times // INTERVAL_SECONDS) == i], rssi=-81, tx_power=-20)
        for i in np.unique(times // INTERVAL_SECONDS).astype(int).tolist()
    ])
    morning = sightings({n: 82.0 for n in range(1, 6)}, 120, start=DAY + 3600)
    db = tmp_path / "node.db"
    with SightingStore.open(db) as store:
        store.add_sightings(np.sort(np.concatenate([contact, morning]), order="time"))
    alone = check_keys(make_keys([(tek, interval, 36)]), db)
    with_other = check_keys(make_keys([(tek, interval, 36), (b"\x01" * 16, DAY // INTERVAL_SECONDS, 144)]), db)
    assert alone.sightings == len(contact)  # still counts what the keys could match
    assert alone.exposures[0].score.close_contact
    assert [e.score.close_contact for e in with_other.exposures] == [True]


def test_duration_counts_the_bridged_gaps_the_verdict_counts() -> None:
    # 14 judged minutes over 20 with three 2-minute gaps: the verdict bridges them (20 within 2 m),
    # so the reported duration must too; it said "14.0 min ... F1" against a 15-minute rule.
    minutes = [m for m in range(20) if m not in (3, 4, 9, 10, 15, 16)]
    times = np.array([DAY + 3600 + m * 60 + s for m in minutes for s in range(0, 60, 5)], float)
    att = np.full(len(times), 50, np.int32)
    score = BluezoneScorer().score(ExposureWindow(0, DAY, times, -24 - att, att, False))
    assert score.close_contact and score.minutes_by_bucket["within_2m"] == 20.0
    assert score.minutes == 20.0 and score.minutes_by_bucket["beyond_2m"] == 0.0


# --- what short-lived or weak company may move (ref16; the attack: tests/matching/test_reference_attack.py) ---


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 12)), min_size=1, max_size=40, unique=True))
def test_run_lengths_are_each_link_minutes_run_of_consecutive_slots(minutes: list[tuple[int, int]]) -> None:
    rpi, slot = (np.array(x, np.int64) for x in zip(*minutes, strict=True))
    got = run_lengths(slot, rpi, np.zeros(len(rpi), np.int64))
    heard = set(minutes)
    for i, (r, s) in enumerate(minutes):
        down = next(k for k in range(14) if (r, s - k - 1) not in heard)
        up = next(k for k in range(14) if (r, s + k + 1) not in heard)
        assert got[i] == down + up + 1


def one_minute_rpis(count: int, minutes: int, att: float, start: float = DAY + 3600) -> np.ndarray:
    """``count`` new RPIs every minute, each heard 3 times in its minute at ``att`` dB: invented company."""
    out = np.zeros(count * minutes * 3, SIGHTING_DTYPE)
    n = np.arange(len(out))
    out["time"] = start + (n // (count * 3)) * 60.0 + 1.0 + (n % 3)
    out["rpi"] = np.frombuffer(b"".join((10_000 + int(i)).to_bytes(16, "little") for i in n // 3), "V16")
    out["rssi"] = int(-24 - att)
    out["tx_power"] = NO_TX_POWER
    return out


def test_company_heard_a_single_minute_moves_no_reference_with_reference_min_minutes() -> None:
    room = sightings({1: 55.0, **{n: 62.0 + n for n in range(2, 6)}}, minutes=30)
    attacked = np.sort(np.concatenate([room, one_minute_rpis(12, 30, 75.0)]), order="time")
    own = np.flatnonzero(attacked["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    own_room = np.flatnonzero(room["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    slots = np.unique(np.floor(attacked["time"][own] / 60).astype(np.int64))[1:-1]
    honest, attacked_ctx = receiver_context(room), receiver_context(attacked)
    want = honest.minute_reference(slots, 25.0, own_room)
    moved = attacked_ctx.minute_reference(slots, 25.0, own)
    assert (moved[0] > want[0] + 5).all()  # the weak one-minute company raises the reference
    got = attacked_ctx.minute_reference(slots, 25.0, own, min_run=2)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    day = honest.reference(DAY, 1, own_room)
    assert attacked_ctx.reference(DAY, 1, own, min_run=2) == day != attacked_ctx.reference(DAY, 1, own)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.lists(st.floats(40.0, 80.0), min_size=2, max_size=8),
    fakes=st.integers(0, 40),
    share=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
def test_no_company_moves_a_minute_toward_near_past_the_near_share(levels: list[float], fakes: int, share: float) -> None:
    """Whatever company a receiver heard (invented or not), a minute's shift toward "near" is at most
    weight x clip x share: what an attacker can gain, bounded."""
    heard = sightings({1: 60.0, **{n + 2: att for n, att in enumerate(levels)}}, minutes=10)
    if fakes:
        heard = np.sort(np.concatenate([heard, one_minute_rpis(fakes, 10, 76.0)]), order="time")
    own = np.flatnonzero(heard["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    window = ExposureWindow(
        key_index=0, day=DAY, times=heard["time"][own], rssi=heard["rssi"][own].astype(np.int32),
        attenuation=-24 - heard["rssi"][own].astype(np.int32), tx_power_estimated=False, sighting_index=own,
    )
    config = BluezoneConfig(minute_reference_near_share=share)
    scorer = BluezoneScorer(config).for_receiver(receiver_context(heard))
    slots = np.unique(np.floor(window.times / 60).astype(np.int64))
    shift = scorer.minute_shift(window, slots)
    bound = config.minute_reference_weight * config.minute_reference_clip_db * share
    day_bound = config.calibration_weight * config.calibration_clip_db  # minutes too sparse: the day shift stands in
    assert (shift <= max(bound, day_bound) + 1e-9).all()
    dense = scorer.receiver.minute_reference(slots, config.minute_reference_quantile, own)[1] >= 2
    assert (shift[dense] <= bound + 1e-9).all()


# --- a reference weak company cannot move (ref17): never weaker than the k-th strongest other link ---


def one_minute(values: list[float]) -> ReceiverContext:
    """A context of one minute (slot 0) whose other links were heard at ``values`` dB."""
    return ReceiverContext(np.array(values, np.float64), np.zeros(len(values), np.int64), value_slot=np.zeros(len(values), np.int64))


@settings(max_examples=300, deadline=None)
@given(
    honest=st.lists(st.floats(40.0, 90.0), min_size=1, max_size=12),
    fakes=st.lists(st.floats(30.0, 100.0), max_size=30),
    k=st.integers(1, 5),
    q=st.sampled_from([0.0, 25.0, 50.0, 100.0]),
)
def test_no_added_company_raises_the_reference_past_the_kth_strongest_honest_link(
    honest: list[float], fakes: list[float], k: int, q: float
) -> None:
    """Whatever links a transmitter adds, at any level, to a minute with at least k honest links, a
    reference bounded by the k-th strongest is never weaker than the honest k-th strongest link; links
    weaker than that leave a k-th-strongest reference (quantile 100) exactly as it was.  With fewer than k
    honest links the k-th is the attacker's: the bound holds nothing (docs/radio-model.md)."""
    slot = np.zeros(1, np.int64)
    kth = sorted(honest)[min(k, len(honest)) - 1]
    attacked = one_minute(honest + fakes).minute_reference(slot, q, strongest=k)[0][0]
    weaker = [max(f, kth) for f in fakes]
    if len(honest) >= k:
        assert attacked <= kth + 1e-9
        assert one_minute(honest + weaker).minute_reference(slot, 100.0, strongest=k)[0][0] == kth
    else:
        assert attacked <= sorted(honest + fakes)[k - 1] if len(honest + fakes) >= k else True
    unbounded = one_minute(honest).minute_reference(slot, q)[0][0]
    assert one_minute(honest).minute_reference(slot, q, strongest=k)[0][0] == min(unbounded, kth)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.lists(st.floats(45.0, 85.0), min_size=2, max_size=8),
    fakes=st.integers(1, 30),
    k=st.integers(1, 2),
    share=st.sampled_from([0.0, 0.5]),
    weaker=st.floats(0.5, 25.0),
)
def test_weak_invented_company_moves_a_minute_toward_near_no_further_than_its_kth_strongest_link(
    levels: list[float], fakes: int, k: int, share: float, weaker: float
) -> None:
    """Through receiver_context and the scorer: RPIs invented weaker than the receiver's k-th strongest
    other link, any number a minute, move no minute (with at least k honest others) toward "near" past
    the near share or that link, whichever is further; the same company moves the shipped scorer's."""
    heard = sightings({1: 60.0, **{n + 2: att for n, att in enumerate(levels)}}, minutes=10)
    kth = sorted(levels)[k - 1]
    attacked = np.sort(np.concatenate([heard, one_minute_rpis(fakes, 10, kth + weaker)]), order="time")
    own = np.flatnonzero(attacked["rpi"] == np.frombuffer((1).to_bytes(16, "little"), "V16")[0])
    window = ExposureWindow(
        key_index=0, day=DAY, times=attacked["time"][own], rssi=attacked["rssi"][own].astype(np.int32),
        attenuation=-24 - attacked["rssi"][own].astype(np.int32), tx_power_estimated=False, sighting_index=own,
    )
    slots = np.unique(np.floor(window.times / 60).astype(np.int64))
    config = BluezoneConfig(minute_reference_strongest=k, minute_reference_strongest_near_only=True, minute_reference_near_share=share)
    context = receiver_context(attacked)
    shift = BluezoneScorer(config).for_receiver(context).minute_shift(window, slots)
    honest = context.minute_reference(slots, 0.0, own)[1] - fakes >= k  # minutes whose k honest others were all heard
    c = config
    bound = c.minute_reference_weight * min(c.minute_reference_clip_db, max(kth - c.minute_reference_db, c.minute_reference_clip_db * share))
    assert (shift[honest] <= bound + 1e-6).all()


def test_the_default_reference_is_unbounded_and_weak_company_raises_it() -> None:
    """What the bound is for: the shipped 25th percentile climbs as invented weak links join a minute."""
    slot = np.zeros(1, np.int64)
    honest = [55.0, 60.0, 62.0, 64.0, 66.0]
    shipped = BluezoneConfig()
    assert shipped.minute_reference_strongest == 0
    before = one_minute(honest).minute_reference(slot, shipped.minute_reference_quantile)[0][0]
    after = one_minute(honest + [75.0] * 6).minute_reference(slot, shipped.minute_reference_quantile)[0][0]
    assert after > before + 1.9
    capped = one_minute(honest + [75.0] * 6).minute_reference(slot, shipped.minute_reference_quantile, strongest=3)[0][0]
    assert capped == 62.0


@pytest.mark.parametrize(
    "bad", [{"reference_min_minutes": 0}, {"reference_min_minutes": 17}, {"reference_min_minutes": 2.0},
            {"minute_reference_near_share": -0.1}, {"minute_reference_near_share": 1.5},
            {"minute_reference_strongest": -1}, {"minute_reference_strongest": 2.0},
            {"minute_reference_strongest_near_only": True}, {"minute_reference_strongest": 2, "minute_reference_strongest_near_only": 1}],
)
def test_the_bounds_settings_are_checked(bad: dict) -> None:
    with pytest.raises(ConfigError):
        BluezoneConfig(**bad)
    with pytest.raises(ValueError, match="min_run must be 1-16"):
        check_run(17)
