"""The bluezone scorer's faster steps give the bits their first forms gave (db09ff3, 6da841f).

Rolling medians of all of a window's runs in one gather, slots cut where they change instead of
``np.unique``, and the chain's prefix scan over all four matrix entries at once are there for speed
only (the simulator's check phase, issue 17); so is the span verdict's cap from the window's first and
last judged sightings alone (issue 13's default, seventeenth session): each is compared here with its
first form, kept below as the reference, to the bit (signed zeros, NaN and infinities included).
"""

from __future__ import annotations

import math
import struct
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bluezone.matching.bluezone_scorer import (
    KEYED_SORT_MIN, WHOLE_WINDOW, BluezoneConfig, BluezoneScorer, by_slot_and_value, minute_attenuation, rolling_median,
)
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.near_chain import _prefix_products, minute_llr, near_posterior
from bluezone.matching.receiver import ReceiverContext, group_percentile
from bluezone.matching.scoring import Score, change_points, median, present_share

T0 = 1_700_000_040.0


def reference_rolling_median(values: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(values) < 2:
        return values
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return median(windows, axis=1)


def reference_smoothed(slots: np.ndarray, value: np.ndarray, width: int, gap_fill: int) -> np.ndarray:
    breaks = np.flatnonzero(np.diff(slots) > gap_fill + 1) + 1
    return np.concatenate([reference_rolling_median(part, width) for part in np.split(value, breaks)]) if len(value) else value


def reference_minute_attenuation(times: np.ndarray, attenuation: np.ndarray, config: BluezoneConfig) -> tuple[np.ndarray, ...]:
    slots = np.floor(np.asarray(times, np.float64) / config.slot_seconds).astype(np.int64)
    att = np.asarray(attenuation, np.float64)
    order = np.lexsort((att, slots))
    slots, att = slots[order], att[order]
    occupied, first, counts = np.unique(slots, return_index=True, return_counts=True)
    value = group_percentile(att, first, counts, config.percentile)
    keep = counts >= config.min_sightings
    return occupied[keep], value[keep], counts[keep]


def lexsort_minute_attenuation(times: np.ndarray, attenuation: np.ndarray, config: BluezoneConfig) -> tuple[np.ndarray, ...]:
    """``minute_attenuation`` at f0e36c1: sorted by ``np.lexsort``, slots cut where they change."""
    slots = np.floor(np.asarray(times, np.float64) / config.slot_seconds).astype(np.int64)
    att = np.asarray(attenuation, np.float64)
    order = np.lexsort((att, slots))
    slots, att = slots[order], att[order]
    first = change_points(slots) if len(slots) else np.empty(0, np.intp)
    occupied, counts = slots[first], np.diff(np.append(first, len(slots)))
    value = group_percentile(att, first, counts, config.percentile)
    keep = counts >= config.min_sightings
    return occupied[keep], value[keep], counts[keep]


def reference_prefix_products(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    s = a + b + c + d
    a, b, c, d = a / s, b / s, c / s, d / s
    k = 1
    while k < a.shape[1]:
        p, q, r, t = a[:, :-k], b[:, :-k], c[:, :-k], d[:, :-k]
        x, y, z, w = a[:, k:], b[:, k:], c[:, k:], d[:, k:]
        na, nb, nc, nd = x * p + y * r, x * q + y * t, z * p + w * r, z * q + w * t
        s = na + nb + nc + nd
        a, b, c, d = (np.concatenate([m[:, :k], n / s], axis=1) for m, n in ((a, na), (b, nb), (c, nc), (d, nd)))
        k *= 2
    return a, b, c, d


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), (got, want)


# attenuations as the store gives them, and what no store holds
levels = st.one_of(
    st.integers(20, 100).map(float),
    st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf]),
    st.floats(-200, 200, allow_nan=False),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), levels), max_size=60), st.integers(1, 12), st.integers(0, 3))
def test_smoothed_is_each_runs_rolling_median(steps: list[tuple[int, float]], width: int, gap_fill: int) -> None:
    """Runs cut by gaps longer than the bridge (slot steps 0-6), runs of one value, widths odd and even."""
    slots = np.cumsum([1 + s for s, _ in steps]).astype(np.int64)
    value = np.array([v for _, v in steps], np.float64)
    scorer = BluezoneScorer(BluezoneConfig(smooth_slots=width, gap_fill_slots=gap_fill))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf inside the median, both ways alike
        same_bits(scorer.smoothed(slots, value), reference_smoothed(slots, value, width, gap_fill))
        same_bits(rolling_median(value, width), reference_rolling_median(value, width))
        # two series of the same slots at once, as the scorer smooths the corrected and the measured
        other = value[::-1].copy()
        both = scorer.smoothed(slots, np.stack([value, other]))
        same_bits(both[0], reference_smoothed(slots, value, width, gap_fill))
        same_bits(both[1], reference_smoothed(slots, other, width, gap_fill))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(st.floats(0, 3 * 3600, allow_nan=False), st.integers(0, 180).map(lambda m: 60.0 * m)),
                       st.integers(30, 90)), max_size=80),
    st.sampled_from([1.0, 10.0, 60.0, 61.5]),
    st.floats(0, 100),
    st.integers(1, 4),
)
def test_minute_attenuation_is_the_unique_one(rows: list[tuple[float, int]], slot: float, percentile: float, least: int) -> None:
    times = T0 + np.array([t for t, _ in rows], np.float64)
    att = np.array([a for _, a in rows], np.int32)
    config = BluezoneConfig(slot_seconds=slot, percentile=percentile, min_sightings=least, sampling_seconds=min(10.0, slot))
    for got, want in zip(minute_attenuation(times, att, config), reference_minute_attenuation(times, att, config)):
        same_bits(got, want)


_INTS = {"int8": (-(2**7), 2**7 - 1), "uint8": (0, 2**8 - 1), "int16": (-(2**15), 2**15 - 1),
         "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1)}


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(_INTS)),
    st.data(),
    st.sampled_from([0.0, -1e12, 1e12, 4e18, -4e18]),  # slots beyond what one key can hold: the lexsort
    st.sampled_from([1.0, 60.0, 61.5]),
    st.floats(0, 100),
    st.booleans(),
)
@example("int32", None, 0.0, 60.0, 10.0, False)  # the matcher's windows, as the ones below
def test_minute_attenuation_by_one_key_is_the_lexsort(dtype, data, offset, slot, percentile, shuffled) -> None:
    """The one-key sort of whole-dB attenuations (speed18) against the lexsort it replaced, every integer
    type over its whole range (one bit to 64 bits apart), slots in and out of order, as far apart as a time
    can put them, NaN and infinite times; and float attenuations, which keep the lexsort.  (Against the
    ``np.unique`` form above only finite times agree: slots 2**63 apart overflow ``change_points``'
    difference, at f0e36c1 as now; no window holds such times.)"""
    low, high = _INTS[dtype]
    if data is None:
        times = T0 + np.arange(0, 1800, 2.5)
        att = (50 + np.arange(len(times)) % 17).astype(np.int32)
    else:
        n = data.draw(st.integers(0, 80))
        spread = data.draw(st.sampled_from([0, 1, 2, 255, 2**31, 2**32, 2**64]))
        base = data.draw(st.integers(low, high))
        att = np.array([min(high, max(low, base + data.draw(st.integers(0, spread)))) for _ in range(n)], np.int64).astype(dtype)
        times = offset + np.array(data.draw(st.lists(
            st.one_of(st.floats(0, 3 * 3600, allow_nan=False), st.sampled_from([np.nan, np.inf, -np.inf, 60.0, 1e15])),
            min_size=n, max_size=n)), np.float64)
        if not shuffled:
            times = np.sort(times)
    config = BluezoneConfig(slot_seconds=slot, percentile=percentile, min_sightings=1, sampling_seconds=min(10.0, slot))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN and inf times cast to int64, both ways alike
        for a in (att, att.astype(np.float64)):
            for got, want in zip(minute_attenuation(times, a, config), lexsort_minute_attenuation(times, a, config)):
                same_bits(got, want)
            slots = np.floor(times / slot).astype(np.int64)
            order = np.lexsort((a.astype(np.float64), slots))
            for got, want in zip(by_slot_and_value(slots, a, least=1), (slots[order], a.astype(np.float64)[order])):
                same_bits(got, want)
            if len(a):  # a window of KEYED_SORT_MIN sightings or more, as minute_attenuation sorts it by one key
                big = -(-KEYED_SORT_MIN // len(a))
                many, more = np.repeat(times, big), np.tile(a, big)
                for got, want in zip(minute_attenuation(many, more, config), lexsort_minute_attenuation(many, more, config)):
                    same_bits(got, want)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2), st.integers(0, 300), st.integers(0, 2**32 - 1), st.floats(1.0, 1e6))
def test_prefix_products_are_the_four_array_scan(rows: int, n: int, seed: int, spread: float) -> None:
    """Positive entries over many orders of magnitude, as the chain's evidence gives them."""
    rng = np.random.default_rng(seed)
    a, b, c, d = (np.exp(rng.uniform(-np.log(spread), np.log(spread), (rows, n))) for _ in range(4))
    want = reference_prefix_products(a, b, c, d)
    got = _prefix_products(np.stack([a, b, c, d]).reshape(2, 2, rows, n))
    for g, w in zip((got[0, 0], got[0, 1], got[1, 0], got[1, 1]), want):
        same_bits(g, w)


def reference_near_posterior(
    slots: np.ndarray, llr: np.ndarray, scale: float, switch: float, prior: float, minutes_per_slot: float = 1.0
) -> np.ndarray:
    n = len(slots)
    if n == 0:
        return np.zeros(0)
    e = np.exp(np.clip(scale * minutes_per_slot * np.asarray(llr, np.float64), -50.0, 50.0))
    gap = np.diff(np.asarray(slots, np.float64), prepend=np.nan)
    keep = np.where(np.isnan(gap), 0.0, (1.0 - switch) ** (np.maximum(gap, 1.0) * minutes_per_slot))
    stay_near = keep + (1 - keep) * prior
    stay_far = keep + (1 - keep) * (1 - prior)
    m = np.array([e * stay_near, e * (1 - keep) * prior, (1 - keep) * (1 - prior), stay_far])
    back = np.concatenate([m[[0, 2, 1, 3], :0:-1], np.array([[1.0], [0.0], [0.0], [1.0]])], axis=1)
    a, b, c, d = reference_prefix_products(*np.stack([m, back], axis=1))
    forward = np.array([a[0] * prior + b[0] * (1 - prior), c[0] * prior + d[0] * (1 - prior)])
    backward = np.ones((2, n))
    backward[:, :-1] = np.array([a[1] + b[1], c[1] + d[1]])[:, n - 2 :: -1]
    joint = forward * backward
    return joint[0] / joint.sum(axis=0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.floats(-30, 30)), max_size=120),
    st.floats(0.01, 20), st.floats(1e-6, 1), st.floats(1e-6, 1 - 1e-6), st.sampled_from([1.0, 0.5, 1 / 6, 2.0]),
)
def test_near_posterior_is_the_first_forms(steps: list[tuple[int, float]], scale: float, switch: float, prior: float,
                                           per_slot: float) -> None:
    """Gaps of any length (evidence far beyond the cap too), every setting the scorer allows."""
    slots = np.cumsum([1 + g for g, _ in steps]).astype(np.int64)
    llr = np.array([v for _, v in steps], np.float64)
    same_bits(near_posterior(slots, llr, scale, switch, prior, per_slot),
              reference_near_posterior(slots, llr, scale, switch, prior, per_slot))


def reference_minute_reference(
    context: ReceiverContext, slots: np.ndarray, quantile: float, exclude: np.ndarray | None = None, min_run: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``ReceiverContext.minute_reference`` as 4a5eac9 wrote it: ``np.isin`` over every link-minute."""
    slots = np.asarray(slots, np.int64)
    ref = np.full(len(slots), np.nan)
    count = np.zeros(len(slots), np.int64)
    if context.value_slot is None or len(context.values) == 0 or len(slots) == 0:
        return ref, count
    keep = np.isin(context.value_slot, slots)
    if exclude is not None and len(exclude) and len(context.link_minute_of):
        dropped = context.link_minute_of[np.asarray(exclude, np.int64)]
        keep[dropped[dropped >= 0]] = False
    if min_run > 1 and context.value_run is not None:
        keep &= context.value_run >= min_run
    at, value = context.value_slot[keep], context.values[keep]
    if len(at) == 0:
        return ref, count
    order = np.lexsort((value, at))
    at, value = at[order], value[order]
    occupied, first, counts = np.unique(at, return_index=True, return_counts=True)
    per_slot = group_percentile(value, first, counts, quantile)
    where = np.searchsorted(occupied, slots)
    found = (where < len(occupied)) & (occupied[np.minimum(where, len(occupied) - 1)] == slots)
    ref[found] = per_slot[where[found]]
    count[found] = counts[where[found]]
    return ref, count


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), levels), max_size=150),
    st.lists(st.integers(-2, 33), max_size=40),
    st.booleans(),
    st.floats(0, 100),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_minute_reference_is_the_isin_one(minutes: list[tuple[int, float]], asked: list[int], in_order: bool,
                                          quantile: float, min_run: int, seed: int) -> None:
    """Link-minutes in any order with ties, NaN and infinities; slots asked in order (as scorers do),
    or in any order with repeats and slots nobody was heard in; some sightings' link-minutes left out,
    short runs left out."""
    rng = np.random.default_rng(seed)
    values = np.array([v for _, v in minutes], np.float64)
    at = np.array([s for s, _ in minutes], np.int64)
    sightings = 3 * len(minutes)
    link_minute_of = np.where(rng.random(sightings) < 0.2, -1, rng.integers(0, max(len(minutes), 1), sightings))
    runs = rng.integers(1, 5, len(minutes)) if rng.random() < 0.8 else None
    context = ReceiverContext(values, np.zeros(len(values), np.int64), link_minute_of.astype(np.int64), value_slot=at,
                              value_run=runs)
    slots = np.unique(asked) if in_order else np.array(asked, np.int64)
    exclude = rng.choice(sightings, int(rng.integers(0, sightings + 1)), replace=False) if len(minutes) else None
    for leave_out in (None, exclude):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf between two ranks, both ways alike
            got = context.minute_reference(slots, quantile, leave_out, min_run)
            want = reference_minute_reference(context, slots, quantile, leave_out, min_run)
        for g, w in zip(got, want):
            same_bits(g, w)


def first_form_present(scorer: BluezoneScorer, window: ExposureWindow, slots: np.ndarray, credit: str) -> np.ndarray:
    """``BluezoneScorer.present`` as 6da841f wrote it: ``np.isin`` over the window's sightings, then
    ``present_share`` over the judged ones (one run for "ends" and "span")."""
    c = scorer.config
    if credit == "slots" or len(slots) == 0:
        return np.ones(len(slots))
    times = np.asarray(window.times, np.float64)
    judged = np.isin(np.floor(times / c.slot_seconds).astype(np.int64), slots)
    bridge = WHOLE_WINDOW if credit in ("ends", "span") else c.gap_fill_slots
    _, share = present_share(times[judged], c.slot_seconds, bridge, c.sampling_seconds)
    return share


def first_form_score(scorer: BluezoneScorer, window: ExposureWindow) -> Score:
    """``BluezoneScorer.score`` as 6da841f wrote it, with ``first_form_present``."""
    c = scorer.config
    threshold = scorer.threshold_for(window.day, window.sighting_index)
    slots, value, _ = minute_attenuation(window.times, window.attenuation, c)
    shift = scorer.minute_shift(window, slots)
    shifted = bool(shift.any())
    smooth, plain = scorer.smoothed(slots, np.stack([value - shift, value])) if shifted else [scorer.smoothed(slots, value)] * 2
    share = first_form_present(scorer, window, slots, c.credit)
    verdict_credit = scorer.verdict_credit()
    verdict_share = share if verdict_credit == c.credit else first_form_present(scorer, window, slots, verdict_credit)
    weight = scorer.verdict_weight(smooth, threshold)
    span = verdict_credit == "span"
    within = scorer.credited(slots, weight, None if span else verdict_share)
    weighted = within if verdict_share is share else scorer.credited(slots, weight, share)
    if c.ranking == "chain":
        near = near_posterior(slots, minute_llr(value - shift), c.chain_scale, c.chain_switch, c.chain_prior,
                              c.slot_seconds / 60.0)
        weighted = scorer.credited(slots, near, share)
    elif c.ramp_db > 0:
        ramp = np.clip((threshold + c.ramp_db - smooth) / (2 * c.ramp_db), 0.0, 1.0)
        weighted = scorer.credited(slots, ramp, share)
    total = scorer.credited(slots, np.ones(len(slots)), verdict_share)
    within = min(within, total) if span else within
    att = np.asarray(window.attenuation)
    judged = float(median(smooth)) if len(smooth) else float(median(att))
    typical = float(median(plain)) if shifted else judged
    return Score(
        scorer=scorer.name,
        minutes_by_bucket={"within_2m": round(within, 3), "beyond_2m": round(max(total - within, 0.0), 3)},
        weighted_minutes=round(weighted, 3),
        minutes=round(total, 3),
        closest_attenuation=int(att.min()),
        typical_attenuation=typical,
        distance_band="< 2 m" if judged <= threshold else "> 2 m",
        close_contact=within >= c.close_contact_minutes - 1e-9,
    )


#: Where a slot begins, just after, just before its end, and anywhere: ragged ends and slots edge to edge.
in_slot = st.one_of(st.sampled_from([0.0, 1e-6, 0.5, 0.999999]), st.floats(0, 1, exclude_max=True))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.lists(st.tuples(in_slot, st.integers(35, 85)), min_size=1, max_size=5)),
             min_size=1, max_size=40),
    st.sampled_from([0.0, 86_400.0 * 20_000, T0 - 86_400.0 * 40]),  # the epoch, UTC midnights (T0 is one)
    st.integers(-3, 30),
    st.sampled_from([60.0, 1.0, 10.0, 61.5, 7.3]),
    st.floats(0, 1),
    st.booleans(),
    st.fixed_dictionaries({
        "credit": st.sampled_from(["slots", "present"]),
        "verdict_credit": st.sampled_from(["same", "slots", "present", "ends", "span"]),
        "ranking": st.sampled_from(["chain", "ramp"]),
        "ramp_db": st.sampled_from([0.0, 10.0]),
        "min_sightings": st.integers(1, 3),
        "gap_fill_slots": st.integers(0, 3),
        "soft_width_db": st.sampled_from([0.0, 2.0]),
        "smooth_slots": st.sampled_from([1, 3, 9]),
    }),
    st.randoms(use_true_random=False),
)
def test_the_verdicts_credit_is_its_first_forms(
    steps: list[tuple[int, list[tuple[float, int]]]], midnight: float, first_slot: int, slot: float, sampling: float,
    shuffled: bool, settings_: dict[str, object], rng: object,
) -> None:
    """Windows whose slots start at a day's edge (before, at or after midnight), with gaps longer and
    shorter than the bridge, slots of one sighting (unjudged when ``min_sightings`` asks more), times on
    a slot's edges, in order or not; every verdict credit and ranking: ``present`` to the bit and the
    Score to the bit (its repr) as the first forms give them, kept above."""
    base = np.floor(midnight / slot) + first_slot
    times, att = [], []
    for step, seen in steps:
        base += step
        for offset, level in seen:
            times.append((base + offset) * slot)
            att.append(level)
    if shuffled:
        order = list(range(len(times)))
        rng.shuffle(order)  # type: ignore[attr-defined]
        times, att = [times[i] for i in order], [att[i] for i in order]
    a = np.array(att, np.int32)
    window = ExposureWindow(0, int(midnight), np.array(times, np.float64), -24 - a, a, False)
    scorer = BluezoneScorer(BluezoneConfig.from_mapping({**settings_, "slot_seconds": slot, "sampling_seconds": sampling * slot}))
    slots = minute_attenuation(window.times, window.attenuation, scorer.config)[0]
    for credit in ("slots", "present", "ends", "span"):
        same_bits(scorer.present(window, slots, credit), first_form_present(scorer, window, slots, credit))
    assert repr(scorer.score(window)) == repr(first_form_score(scorer, window))


def first_form_reference(
    context: ReceiverContext, day: int, min_link_minutes: int = 1, exclude: np.ndarray | None = None, min_run: int = 1
) -> float | None:
    """``ReceiverContext.reference`` as 6da841f wrote it: ``np.percentile`` over a copy of the day's kept values."""
    keep = context._kept(context.value_day == day, exclude, min_run)
    if int(keep.sum()) < max(min_link_minutes, 1):
        return None
    return float(np.percentile(context.values[keep], context.quantile))


def same_number(got: float | None, want: float | None, zeros_of_both_signs: bool) -> None:
    """The same bits; NaN as NaN; a zero's sign free where the values held both (a partition picks either)."""
    if got is None or want is None:
        assert got is want
    elif math.isnan(want):
        assert math.isnan(got)
    elif zeros_of_both_signs and want == 0:
        assert got == 0
    else:
        assert struct.pack("<d", got) == struct.pack("<d", want), (got, want)


@settings(max_examples=500, deadline=None)
@example([(0, -13111.47062262957), (0, 0.012015111553890246)], 50.0, 1, 1, 0)  # halfway: from the upper value
@given(
    st.lists(st.tuples(st.integers(0, 3), st.one_of(levels, st.floats(-1, 1))), max_size=120),
    st.one_of(st.sampled_from([0.0, 5.0, 25.0, 50.0, 100.0]), st.floats(0, 100)),  # ranks on and between values
    st.integers(0, 5),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_the_day_reference_is_the_percentile_one(
    minutes: list[tuple[int, float]], quantile: float, min_link_minutes: int, min_run: int, seed: int
) -> None:
    """Link-minutes of four days in any order, with ties, NaN, infinities and signed zeros; each day's
    reference without the link-minutes of any set of sightings (of that day, of others, repeated, none),
    with and without short runs left out; the same percentile as numpy's over a copy, asked many times
    of one context (it keeps each day sorted)."""
    rng = np.random.default_rng(seed)
    values = np.array([v for _, v in minutes], np.float64)
    days = np.array([d * 86_400 for d, _ in minutes], np.int64)
    sightings = 3 * len(minutes)
    link_minute_of = np.where(rng.random(sightings) < 0.2, -1, rng.integers(0, max(len(minutes), 1), sightings))
    runs = rng.integers(1, 5, len(minutes)) if rng.random() < 0.8 else None
    context = ReceiverContext(values, days, link_minute_of.astype(np.int64), quantile, value_run=runs)
    for ask in range(7):
        day = int(rng.integers(0, 5)) * 86_400 if ask else 0
        exclude = rng.choice(sightings, int(rng.integers(0, sightings + 1))) if ask and sightings and rng.random() < 0.8 else None
        for run in (1, min_run):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf between two ranks, both ways alike
                want = first_form_reference(context, day, min_link_minutes, exclude, run)
                got = context.reference(day, min_link_minutes, exclude, run)
            both = bool(((values == 0) & np.signbit(values)).any() and ((values == 0) & ~np.signbit(values)).any())
            same_number(got, want, both)


@pytest.mark.parametrize("quantile", [-0.1, 100.5, math.nan])
def test_a_day_reference_at_a_percentile_out_of_range_is_numpys_error(quantile: float) -> None:
    context = ReceiverContext.uniform(0, 60.0, 5, quantile=quantile)
    for reference in (context.reference, lambda day: first_form_reference(context, day)):
        with pytest.raises(ValueError, match=r"Percentiles must be in the range \[0, 100\]"):
            reference(0)
