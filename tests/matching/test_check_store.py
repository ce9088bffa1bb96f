"""check_store: a check that reads the store's distinct RPIs once, the full rows of only the RPIs
that match, and the receiver context only where the scorer asks, must report exactly what
check_sightings reports over every sighting of the keys' whole days."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matching_helpers import DAY, SCORERS, make_keys, neighbours, scene

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.check import check_keys, check_sightings, check_store, sightings_span, whole_days, within
from bluezone.matching.matcher import MIN_KEYS_PER_JOB, HeardIndex, keys_heard, match
from bluezone.matching.receiver import StoredReceiverContext, receiver_context
from bluezone.proximity.store import SightingStore


def store_with(rows: np.ndarray) -> SightingStore:
    store = SightingStore.open(":memory:")
    store.add_sightings(rows[np.random.default_rng(7).permutation(len(rows))])  # rowids not in time order
    return store


def reference(keys: np.ndarray, store: SightingStore, scorer_name: str) -> tuple[int, list]:
    """What ``bluezone check`` reported before: every sighting of the keys' whole days, in memory."""
    span = sightings_span(keys)
    assert span is not None
    sightings = store.sightings(*whole_days(span))
    return within(sightings, span), check_sightings(keys, sightings, SCORERS[scorer_name])


@pytest.mark.parametrize("scorer_name", sorted(SCORERS))
@pytest.mark.parametrize("per_rpi", [30, 1])  # a real store's repeats, and every RPI heard once
def test_check_store_reports_what_check_sightings_reports(scorer_name: str, per_rpi: int) -> None:
    keys, rows = scene(per_rpi=per_rpi, phones=6 if per_rpi > 1 else 180)
    store = store_with(rows)
    count, exposures = check_store(keys, store, SCORERS[scorer_name])
    expected_count, expected = reference(keys, store, scorer_name)
    assert count == expected_count == len(rows)
    assert exposures == expected
    found = {e.key_index for e in exposures}
    assert found == {0, 1, 2, 3, 4, 5, 7}  # not the revoked key (6) nor the one never heard (8)
    assert sum(e.sightings for e in exposures if e.key_index == 4) == 3  # 12 intervals late: in; 13: out


def test_a_key_with_period_0_is_read_as_a_whole_day() -> None:
    """The matcher reads a rolling_period of 0 as a whole day (GAEN: unset); the span of sightings
    read must too, or check_store reads none of the day after the key's first two hours."""
    keys, rows = scene()
    store = store_with(rows)
    whole = keys[[0]]
    unset = whole.copy()
    unset["rolling_period"] = 0
    expected = check_store(whole, store, SCORERS["bluezone"])
    assert expected[1] and check_store(unset, store, SCORERS["bluezone"]) == expected
    assert sightings_span(unset) == sightings_span(whole)


def test_the_scene_needs_the_receiver_context_read_beyond_the_judged_minutes() -> None:
    """The comparison above has teeth: a context read from too little changes the exposures."""
    keys, rows = scene()
    store = store_with(rows)
    _, expected = reference(keys, store, "bluezone")
    _, without_context = reference(keys, store, "gaen")
    span = sightings_span(keys)
    assert span is not None
    scorer = SCORERS["bluezone"]
    matched = check_sightings(keys, store.sightings(*whole_days(span)), scorer, calibrate_receiver=False)
    assert [e.score for e in matched] != [e.score for e in expected]  # no context: other verdicts
    # a context read from the diagnosis keys' own sightings only is not the receiver's context either
    assert check_store(keys, OwnRowsOnly(store, keys_rpis(keys, store)), scorer)[1] != expected
    assert len(without_context) == len(expected)


class OwnRowsOnly:
    """A store that shows the receiver context only the sightings of ``rpis`` (a context computed
    on too little), and is otherwise the store."""

    def __init__(self, store: SightingStore, rpis: np.ndarray) -> None:
        self.store, self.rpis = store, rpis

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def usable_sightings(self, since: float, until: float, correction: object = None) -> tuple[np.ndarray, np.ndarray]:
        rows, ids = self.store.usable_sightings(since, until, correction)
        own = np.isin(rows["rpi"], self.rpis)
        return rows[own], ids[own]


def keys_rpis(keys: np.ndarray, store: SightingStore) -> np.ndarray:
    """The stored RPIs that some diagnosis key sent (as V16)."""
    every, _ = store.heard_rpis()
    _, rpis = keys_heard(keys, HeardIndex(every, store.heard_intervals()))
    return np.ascontiguousarray(rpis).view("V16").reshape(-1)


def test_jobs_do_not_change_what_check_store_reports() -> None:
    keys, rows = scene()
    # seeds apart from the scene's (0): default_rng(0)'s first key is the scene's first, which a check reported twice
    extra = make_keys([(bytes(np.random.default_rng((1 << 20) + i).bytes(16)), DAY, 144) for i in range(2 * MIN_KEYS_PER_JOB)])
    keys = np.concatenate([extra[: MIN_KEYS_PER_JOB], keys, extra[MIN_KEYS_PER_JOB:]])
    store = store_with(rows)
    one = check_store(keys, store, SCORERS["bluezone"], jobs=1)
    two = check_store(keys, store, SCORERS["bluezone"], jobs=2)
    assert one == two and one == reference(keys, store, "bluezone")
    assert {e.key_index for e in one[1]} >= {MIN_KEYS_PER_JOB, MIN_KEYS_PER_JOB + 7}


def test_keys_heard_finds_every_key_match_finds() -> None:
    keys, rows = scene()
    store = store_with(rows)
    every, _ = store.heard_rpis()
    found, rpis = keys_heard(keys, HeardIndex(every, store.heard_intervals()))
    matched = match(keys, rows)
    assert set(matched["key_index"].tolist()) <= set(found.tolist())
    assert set(np.unique(rows["rpi"][matched["sighting_index"]]).tolist()) <= set(rpis.view("V16").ravel().tolist())
    with pytest.raises(TypeError, match="keys_heard"):
        match(keys, HeardIndex(every, store.heard_intervals()))
    assert np.array_equal(found, np.unique(found))  # each key once, in order
    # the full rows of those RPIs: the same asked with each RPI several times, in any order
    rows_of, ids = store.sightings_with_rpis(rpis)
    again = np.random.default_rng(3).permutation(np.concatenate([rpis, rpis[::2]]))
    assert all(np.array_equal(a, b) for a, b in zip((rows_of, ids), store.sightings_with_rpis(again)))
    assert len(rows_of) == np.isin(rows["rpi"], rpis.view("V16").ravel()).sum() > 0


NO_NUMPY_MA = """
import sys
import numpy as np
from bluezone.matching.matcher import HeardIndex, keys_heard
from bluezone.proximity.store import SightingStore
keys = np.load(sys.argv[2])
with SightingStore.open(sys.argv[1], create=False) as store:
    found, rpis = keys_heard(keys, HeardIndex(store.heard_rpis()[0], store.heard_intervals()))
    assert len(found) and len(store.sightings_with_rpis(rpis)[0])
print("numpy.ma" in sys.modules)
"""


def test_deriving_and_reading_the_rows_found_leave_numpy_ma_unimported(tmp_path) -> None:
    """numpy 2's np.unique imports numpy.ma on its first plain call (0.01-0.03 s): keys_heard runs in
    every process of a check, a worker's first batch paying it, so neither it nor the rows' read calls it."""
    import subprocess
    import sys

    keys, rows = scene()
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows)
    np.save(tmp_path / "keys.npy", keys)
    out = subprocess.run(
        [sys.executable, "-c", NO_NUMPY_MA, str(tmp_path / "s.db"), str(tmp_path / "keys.npy")],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert out.stdout.strip() == "False"


def test_check_keys_reads_the_store_the_new_way_and_reports_the_same(tmp_path) -> None:
    keys, rows = scene()
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows)
        expected_count, expected = reference(keys, store, "bluezone")
    result = check_keys(keys, tmp_path / "s.db", scorer=SCORERS["bluezone"], jobs=2)
    assert result.sightings == expected_count and result.exposures == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    slot_seconds=st.sampled_from([60.0, 45.0, 70.0, 600.0]),
    windows=st.lists(st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(1, 90)), min_size=1, max_size=4),
    min_run=st.sampled_from([1, 2, 3, 16]),
)
def test_stored_context_answers_as_the_context_of_everything(seed: int, slot_seconds: float, windows: list, min_run: int) -> None:
    """Per day and per minute, with the judged link's sightings left out, for slot lengths that do and
    do not divide a day, counting every link or only those heard in runs of ``min_run`` minutes (a run
    may cross the read's edges or midnight): the same answers as a ReceiverContext built over all of the bounds."""
    rng = np.random.default_rng(seed)
    per_rpi = int(rng.choice([1, 2, 5, 40]))
    rows = neighbours(rng, DAY, 2 * 144, int(rng.integers(1, 5)), per_rpi)
    rows = rows[np.argsort(rows["time"], kind="stable")]
    store = store_with(rows)
    bounds = (DAY * INTERVAL_SECONDS, (DAY + 2 * 144) * INTERVAL_SECONDS)
    everything, ids = store.usable_sightings(*bounds)
    eager = receiver_context(everything, slot_seconds=slot_seconds)
    _, repeated = store.heard_rpis(*bounds)
    for variant in (repeated, None):  # days read by RPI where few repeat, or always whole
        lazy = StoredReceiverContext(store, ids, bounds, variant, slot_seconds=slot_seconds)
        for minute, length in windows:
            t0 = bounds[0] + minute * 60.0
            judged = np.flatnonzero((everything["time"] >= t0) & (everything["time"] < t0 + length * 60))[:: int(rng.integers(1, 4))]
            slots = np.unique(np.floor(everything["time"][judged] / slot_seconds).astype(np.int64))
            day = int(t0 // DAY_SECONDS * DAY_SECONDS)
            for exclude in (None, judged):
                assert lazy.reference(day, 1, exclude, min_run) == eager.reference(day, 1, exclude, min_run)
                for q, strongest in ((25.0, 0), (50.0, 0), (25.0, 2), (100.0, 3)):
                    got = lazy.minute_reference(slots, q, exclude, min_run, strongest)
                    want = eager.minute_reference(slots, q, exclude, min_run, strongest)
                    np.testing.assert_array_equal(got[0], want[0])
                    np.testing.assert_array_equal(got[1], want[1])


def test_check_store_reads_the_context_in_the_scorers_own_slots() -> None:
    keys, rows = scene()
    store = store_with(rows)
    span = sightings_span(keys)
    assert span is not None
    scorer = BluezoneScorer(BluezoneConfig(slot_seconds=30.0, smooth_slots=5))
    expected = check_sightings(keys, store.sightings(*whole_days(span)), scorer)
    assert check_store(keys, store, scorer)[1] == expected
    assert [e.score for e in expected] != [e.score for e in check_store(keys, store, SCORERS["bluezone"])[1]]
