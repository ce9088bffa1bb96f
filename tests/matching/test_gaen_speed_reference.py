"""The GAEN scorer's slots cut where they change (speed18: ``bluezone evaluate`` scores ~11,000 chained
windows of ~19,000 sightings, each sorted by ``np.unique``) are ``np.unique``'s, to the bit: slots in and
out of order, over int64's whole range (a difference of slots 2**63 apart would overflow)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import bluezone.matching.scoring as scoring
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.scoring import GaenConfig, GaenScorer, occupied_slots


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes(), (got, want)


slots_lists = st.lists(
    st.one_of(st.integers(-3, 40), st.sampled_from([-(2**63), 2**63 - 1, 0])), max_size=60
)


@settings(max_examples=500, deadline=None)
@given(slots_lists, st.booleans())
def test_occupied_slots_are_uniques(values: list[int], in_order: bool) -> None:
    slots = np.array(sorted(values) if in_order else values, np.int64)
    got, want = occupied_slots(slots), np.unique(slots, return_inverse=True)
    same_bits(got[0], want[0])
    same_bits(got[1], want[1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 3 * 3600, allow_nan=False), st.integers(20, 100)), min_size=1, max_size=80),
    st.sampled_from(["present", "slots"]),
    st.booleans(),
)
def test_gaen_scores_are_the_np_unique_ones(rows: list[tuple[float, int]], credit: str, in_order: bool) -> None:
    """A window's whole Score: slot_durations through ``occupied_slots`` as through ``np.unique``."""
    times = 1_700_000_040.0 + np.array([t for t, _ in rows])
    att = np.array([a for _, a in rows], np.int32)
    if in_order:
        order = np.argsort(times, kind="stable")
        times, att = times[order], att[order]
    window = ExposureWindow(key_index=0, day=0, times=times, rssi=-24 - att, attenuation=att, tx_power_estimated=False)
    scorer = GaenScorer(GaenConfig(credit=credit))
    got = scorer.score(window)
    kept = scoring.occupied_slots
    scoring.occupied_slots = lambda s: tuple(np.unique(s, return_inverse=True))  # the first form
    try:
        want = scorer.score(window)
    finally:
        scoring.occupied_slots = kept
    assert repr(got) == repr(want)
