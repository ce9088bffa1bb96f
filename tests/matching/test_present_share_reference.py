"""``present_share`` cut without ``np.unique`` gives the numbers it gave when it sorted (658c388).

The faster form (slots and runs cut where they change, times sorted only when they are not) must
change no score: it is compared here with the first form, kept below as the reference, on random
sightings in and out of order, with repeats, at slot edges, and on times no store holds (NaN,
infinities, slots beyond int64), where it falls back to the first form's steps.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.matching.scoring import present_share

T0 = 1_700_000_040.0  # a minute boundary: sightings land on slot edges too


def reference_present_share(
    times: np.ndarray, slot_seconds: float, bridge_slots: int, sampling_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """``present_share`` as 658c388 wrote it: sort, ``np.unique``, ``np.r_``."""
    t = np.sort(np.asarray(times, np.float64))
    if len(t) == 0:
        return np.empty(0, np.int64), np.empty(0)
    slots = np.floor(t / slot_seconds).astype(np.int64)
    occupied, first = np.unique(slots, return_index=True)
    last = np.r_[first[1:], len(t)] - 1
    starts = np.r_[True, np.diff(occupied) > bridge_slots + 1]
    run = np.cumsum(starts) - 1
    begin = t[first[starts]][run] - sampling_seconds / 2
    ends = np.r_[np.flatnonzero(starts)[1:], len(occupied)] - 1
    end = t[last[ends]][run] + sampling_seconds / 2
    lo = np.maximum(occupied * slot_seconds, begin)
    hi = np.minimum((occupied + 1) * slot_seconds, end)
    return occupied, np.clip((hi - lo) / slot_seconds, 0.0, 1.0)


def same(times: np.ndarray, slot: float, bridge: int, sampling: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN and huge times cast to int64, both ways alike
        want = reference_present_share(times, slot, bridge, sampling)
        got = present_share(times, slot, bridge, sampling)
    for w, g in zip(want, got):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


# Seconds after T0: a real window (a few hours), repeats and slot edges likely.
offsets = st.lists(
    st.one_of(st.floats(0, 4 * 3600, allow_nan=False), st.integers(0, 240).map(lambda m: 60.0 * m)),
    max_size=60,
)
slot_seconds = st.sampled_from([1.0, 10.0, 60.0, 61.5, 3600.0])
bridges = st.integers(0, 4)


@given(times=offsets, slot=slot_seconds, bridge=bridges, fraction=st.floats(0, 1), shuffle=st.booleans())
@settings(max_examples=600, deadline=None)
def test_the_same_as_sorting_and_unique(times: list[float], slot: float, bridge: int, fraction: float, shuffle: bool) -> None:
    t = T0 + np.array(sorted(times), np.float64)
    if shuffle:  # the scorers hand it times in order; anyone else may not
        t = np.random.default_rng(len(times)).permutation(t)
    same(t, slot, bridge, fraction * slot)


@given(
    times=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12),
    slot=slot_seconds,
    bridge=bridges,
    sampling=st.sampled_from([0.0, 10.0]),
)
@settings(max_examples=400, deadline=None)
def test_the_same_on_times_no_store_holds(times: list[float], slot: float, bridge: int, sampling: float) -> None:
    same(np.array(times, np.float64), slot, bridge, sampling)


def test_the_same_on_real_shapes() -> None:
    # one sighting; one slot; a gap bridged and one not; times beyond int64 slots and NaN at the end
    for t in ([T0], [T0 + 5, T0 + 50], [T0, T0 + 130, T0 + 400], [T0 + 400, T0, T0 + 130], [1e300, -1e300, 5.0], [T0, np.nan]):
        for bridge in (0, 2):
            same(np.array(t), 60.0, bridge, 10.0)
