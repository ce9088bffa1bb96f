"""A stored receiver context finds a window's own sightings in a read by that read's ids sorted once
(eighteenth session, speed18): every window of a day asked its day's reference and minutes with the
day's ids sorted again.  The rows found are those the first form found, kept below, to the bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_helpers import DAY, neighbours

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.receiver import ReceiverContext, StoredReceiverContext, _Read, receiver_context
from bluezone.proximity.store import SightingStore


def first_form(exclude: np.ndarray | None, all_ids: np.ndarray, ids: np.ndarray) -> np.ndarray | None:
    """``StoredReceiverContext._local`` before speed18: the read's ids sorted on every call."""
    if exclude is None or len(exclude) == 0 or len(ids) == 0:
        return None
    wanted = all_ids[np.asarray(exclude, np.int64)]
    order = np.argsort(ids)
    at = np.minimum(np.searchsorted(ids[order], wanted), len(ids) - 1)
    return order[at[ids[order][at] == wanted]]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(-(2**40), 2**40), unique=True, max_size=60),
    st.lists(st.integers(-(2**40), 2**40), max_size=30),
    st.randoms(use_true_random=False),
)
def test_rows_of_a_read_are_the_first_forms(read_ids: list[int], others: list[int], rnd) -> None:
    """Reads in any order (rowids not in time order), windows whose sightings the read holds, some,
    none or twice, and empty reads and windows."""
    ids = np.array(read_ids, np.int64)
    everything = np.array(read_ids + others, np.int64)  # the matcher's rows' ids: some outside this read
    exclude = np.array([rnd.randrange(len(everything)) for _ in range(rnd.randrange(8))] if len(everything) else [], np.int64)
    context = StoredReceiverContext(_NoSource(), everything, (0.0, 1.0))
    read = _Read(ReceiverContext(), ids)
    for _ in range(2):  # the second call from the cached order
        got, want = context._local(exclude, read), first_form(exclude, everything, ids)
        assert (got is None) == (want is None)
        if want is not None:
            assert got is not None and got.dtype == want.dtype and got.tobytes() == want.tobytes()


class _NoSource:
    def usable_sightings(self, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("not read")

    sightings_with_rpis = count_sightings = usable_sightings


class CountingIds(np.ndarray):
    """Store ids that count how often they are sorted."""

    sorts = 0

    def argsort(self, *args, **kwargs):  # type: ignore[override]
        CountingIds.sorts += 1
        return np.asarray(self).argsort(*args, **kwargs)


class CountingStore:
    """A store whose reads return ``CountingIds``."""

    def __init__(self, store: SightingStore) -> None:
        self.store = store

    def usable_sightings(self, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        rows, ids = self.store.usable_sightings(since, until)
        return rows, ids.view(CountingIds)

    def sightings_with_rpis(self, rpis: np.ndarray, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        rows, ids = self.store.sightings_with_rpis(rpis, since, until)
        return rows, ids.view(CountingIds)

    def count_sightings(self, since: float, until: float, at_most: int | None = None) -> int:
        return self.store.count_sightings(since, until, at_most)


def test_a_days_ids_are_sorted_once_for_all_its_windows() -> None:
    """Twenty windows of one day, each asking its day's reference and its minutes without its own
    sightings: one sort of the day's ids, and the answers of a context of everything."""
    rows = neighbours(np.random.default_rng(3), DAY + 10, 60, 2, 5)
    rows = rows[np.argsort(rows["time"], kind="stable")]
    store = SightingStore.open(":memory:")
    store.add_sightings(rows[np.random.default_rng(4).permutation(len(rows))])
    bounds = (DAY * INTERVAL_SECONDS, (DAY + 144) * INTERVAL_SECONDS)
    everything, ids = store.usable_sightings(*bounds)
    eager = receiver_context(everything)
    lazy = StoredReceiverContext(CountingStore(store), ids, bounds, None)
    day = DAY * INTERVAL_SECONDS
    CountingIds.sorts = 0
    for k in range(20):
        own = np.flatnonzero(everything["rpi"] == everything["rpi"][k * 25])
        slots = np.unique(np.floor(everything["time"][own] / 60.0).astype(np.int64))
        assert lazy.reference(day, 1, own) == eager.reference(day, 1, own)
        got, want = lazy.minute_reference(slots, 25.0, own), eager.minute_reference(slots, 25.0, own)
        assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()
    assert CountingIds.sorts == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.integers(0, 40))
def test_any_superset_of_the_repeated_rpis_gives_the_answers_of_the_exact_set(seed: int, share: float, unheard: int) -> None:
    """``HeardRpis.repeated`` may be a superset of the RPIs heard ``MIN_SIGHTINGS`` times (``read_all``
    reads every day; a read of the store before its purge would count purged rows too): a link-minute
    needs that many sightings of one RPI in one slot, so any RPI added (heard once, or not heard) and
    either read of a day it makes ``_day`` choose leave every answer as a context of everything has it."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([neighbours(rng, DAY + 10, 30, 2, 4), neighbours(rng, DAY + 12, 30, 3, 1)])
    store = SightingStore.open(":memory:")
    store.add_sightings(rows[rng.permutation(len(rows))])
    bounds = (DAY * INTERVAL_SECONDS, (DAY + 144) * INTERVAL_SECONDS)
    everything, ids = store.usable_sightings(*bounds)
    heard, exact = store.heard_rpis(*bounds, repeated=2)
    once = heard[~np.isin(heard.view("V16").ravel(), exact.view("V16").ravel())]
    extra = [once[rng.random(len(once)) < share], np.frombuffer(rng.bytes(16 * unheard), np.uint8).reshape(-1, 16)]
    superset = np.concatenate([exact, *extra])[rng.permutation(len(exact) + sum(map(len, extra)))]
    eager = receiver_context(everything)
    contexts = [StoredReceiverContext(store, ids, bounds, r) for r in (exact, superset)]
    day = DAY * INTERVAL_SECONDS
    for k in rng.choice(len(everything), 6, replace=False).tolist():
        own = np.flatnonzero(everything["rpi"] == everything["rpi"][k])
        slots = np.unique(np.floor(everything["time"][own] / 60.0).astype(np.int64))
        want_minutes = eager.minute_reference(slots, 25.0, own)
        for lazy in contexts:
            assert lazy.reference(day, 1, own) == eager.reference(day, 1, own)
            got = lazy.minute_reference(slots, 25.0, own)
            assert got[0].tobytes() == want_minutes[0].tobytes() and got[1].tobytes() == want_minutes[1].tobytes()
