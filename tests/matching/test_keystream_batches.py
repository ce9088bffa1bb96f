"""How a key stream hands its batches on with more than one job (issue 17, twenty-third session): each
batch is joined in the workers' shared slot itself, not in this process's memory and then copied
there, and what the batches found is told to the check's scoring in as few calls as the work allows:
all found so far in one, then what came in while this process derived each batch of its own."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import bluezone.matching.check as check_module
import bluezone.matching.keystream as keystream
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.check import Exposure
from bluezone.matching.keystream import KeyStream
from bluezone.matching.matcher import HeardIndex, keys_heard
from bluezone.matching.scoring import Score
from bluezone.matching.sharedbatches import SharedBatches


def heard_of(sightings: np.ndarray) -> HeardIndex:
    rpis = np.ascontiguousarray(sightings["rpi"]).view(np.uint8).reshape(-1, 16)
    return HeardIndex(rpis, np.unique(np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS))


@pytest.fixture
def day() -> tuple[np.ndarray, HeardIndex]:
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    return keys, heard_of(sightings)


def in_pieces(keys: np.ndarray, size: int = 50) -> list[np.ndarray]:
    """The keys as a file's pieces come: never a batch's edge."""
    return [keys[lo : lo + size] for lo in range(0, len(keys), size)]


def test_each_batch_is_joined_in_the_workers_shared_slot(day: tuple[np.ndarray, HeardIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch was joined from the file's pieces in this process's memory (a fresh ~0.5 MB each on the
    largest real day) and then copied into its shared slot: joined in the slot, nothing is copied."""
    keys, heard = day
    monkeypatch.setattr(keystream, "available_cores", lambda: 2)  # a worker even on one core
    in_slot: list[bool] = []
    post = SharedBatches.post

    def watched(self: SharedBatches, batch: np.ndarray) -> int | None:
        in_slot.append(bool(np.shares_memory(batch, self._keys)))
        return post(self, batch)

    monkeypatch.setattr(SharedBatches, "post", watched)
    with KeyStream(heard, jobs=2, batch=64) as stream:
        for piece in in_pieces(keys):
            stream.add(piece)
        found = stream.finish()
    rows, rpis = keys_heard(keys, heard)
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis)
    assert in_slot and all(in_slot)


def test_few_slots_serve_every_batch_and_the_others_wait_as_the_files_pieces(
    day: tuple[np.ndarray, HeardIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot's shared pages cost 3.2 us each to touch first on the reference machine (no huge pages for
    shared memory): 64 slots, one per batch of the largest real day, touched ~2,900 pages.  A few slots,
    reused, hold the workers' next batches; the rest wait as the file's pieces, and this process still
    derives none of them while it reads the file (it does so only once the file is read)."""
    keys, heard = day
    monkeypatch.setattr(keystream, "available_cores", lambda: 2)
    here: list[int] = []
    found_here = keystream._found

    def counted(index: HeardIndex, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        here.append(len(batch))
        return found_here(index, batch)

    monkeypatch.setattr(keystream, "_found", counted)
    with KeyStream(heard, jobs=2, batch=64) as stream:
        assert stream.workers is not None and stream.workers._keys.shape[0] == 4 < stream.queued
        for piece in in_pieces(keys):
            stream.add(piece)
        assert not here  # read with the workers deriving: none derived here yet
        assert stream.workers.posted <= 4 + len(stream.found) and stream.workers.posted + len(stream.waiting) == len(keys) // 64
        found = stream.finish()
    rows, rpis = keys_heard(keys, heard)
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis)


def test_a_ring_slot_is_offered_only_once_its_batch_is_collected() -> None:
    keys = np.zeros(12, keystream.KEY_DTYPE)
    keys["rolling_start"] = np.arange(12)
    batches = SharedBatches(lambda got: (np.arange(len(got)), got.copy(), np.empty((0, 16), np.uint8)), workers=1, slots=2, slot_keys=4)
    try:
        for lo in (0, 4):
            slot = batches.next_slot()
            assert slot is not None
            np.concatenate([keys[lo : lo + 2], keys[lo + 2 : lo + 4]], out=slot[:4])
            assert batches.post(slot[:4]) == lo // 4
        assert batches.next_slot() is None and batches.post(keys[8:12]) is None  # slot 0 still holds batch 0
        got = dict(batches.collect(wait=True))
        assert batches.next_slot() is not None
    finally:
        batches.close()
    assert [got[n][1]["rolling_start"].tolist() for n in (0, 1)] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_what_was_found_is_told_in_one_call_not_batch_by_batch(day: tuple[np.ndarray, HeardIndex]) -> None:
    """Each call scores against the store (~1 ms and its page faults on the largest real day): the
    batches found before ``finish`` are told at once, in file order."""
    keys, heard = day
    told: list[np.ndarray] = []
    with KeyStream(heard, jobs=1, batch=64) as stream:
        for piece in in_pieces(keys):
            stream.add(piece)
        found = stream.finish(lambda rows, rpis: told.append(rows))
    assert len({int(row) // 64 for row in found.rows}) >= 3  # found in several batches
    assert len(told) == 1 and np.array_equal(told[0], found.rows)


def test_with_a_worker_each_call_tells_what_came_in_since_the_last(day: tuple[np.ndarray, HeardIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    keys, heard = day
    monkeypatch.setattr(keystream, "available_cores", lambda: 2)
    told: list[np.ndarray] = []
    own: list[int] = []
    found_here = keystream._found

    def counted(index: HeardIndex, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        own.append(len(batch))  # in this process (the worker's count stays in the worker)
        return found_here(index, batch)

    monkeypatch.setattr(keystream, "_found", counted)
    with KeyStream(heard, jobs=2, batch=64) as stream:
        for piece in in_pieces(keys):
            stream.add(piece)
        found = stream.finish(lambda rows, rpis: told.append(rows))
    assert 1 <= len(told) <= len(own) + 2  # all found so far, one per batch derived here, the workers' last
    assert np.array_equal(np.sort(np.concatenate(told)), found.rows)
    assert all(np.all(rows[1:] > rows[:-1]) for rows in told)


def _exposure(row: int, start: float) -> Exposure:
    return Exposure(
        date="2026-12-06", start=start, end=start + 60, sightings=3, key_index=row, transmission_risk=0,
        tx_power_estimated=False, score=_SCORE,
    )


_SCORE = Score("gaen", {}, 0.0, 0.0, 60, 60.0, "> 3 m", close_contact=False)


def test_exposures_told_in_any_grouping_keep_the_files_order_for_ties() -> None:
    """One call may hold keys of batches far apart (all found so far) and a later call a key between
    them (a worker's batch collected late): exposures that tie on date and start stay in file order, as
    one call over every key (``_scored``) leaves them."""
    starts = {0: 100.0, 5: 100.0, 10: 100.0, 7: 50.0}
    heard = SimpleNamespace(exposures=lambda keys, rows, *rest: [_exposure(int(r), starts[int(r)]) for r in rows])
    counting = SimpleNamespace(span=(0.0, 1.0), result=lambda span: 0)
    every = np.zeros(11, keystream.KEY_DTYPE)
    scored = check_module._ScoredAsFound(heard, every, counting, None, 0)  # type: ignore[arg-type]
    scored.add(np.array([0, 10]), np.empty((0, 16), np.uint8))
    scored.add(np.array([5, 7]), np.empty((0, 16), np.uint8))
    assert [e.key_index for e in scored.exposures()] == [7, 0, 5, 10]


@pytest.mark.parametrize("scorer", ["gaen", "bluezone"])
def test_a_three_job_check_reports_what_one_job_reports(tmp_path, monkeypatch: pytest.MonkeyPatch, scorer: str) -> None:  # type: ignore[no-untyped-def]
    """Two workers (three jobs, the cores faked) and this process share the batches through seven slots:
    the report is one job's.  Small batches, the store read first: the keys stream to both workers.  (A
    worker ending while the other still derives the last batch, taken for a worker killed in 6 of 10
    three-job checks of the largest real day, needs a longer last batch than this scene's: the race is
    held deterministically in ``test_sharedbatches``.)"""
    import bluezone.keyformat.exportstream as exportstream
    from matching_helpers import SCORERS, as_array, day_file

    path, db, _, _ = day_file(tmp_path)
    expected = as_array(path, db, scorer)
    monkeypatch.setattr(keystream, "available_cores", lambda: 3)
    monkeypatch.setattr(keystream, "EARLY_BATCH", 256)
    monkeypatch.setattr(exportstream, "PIECE", 4096)
    monkeypatch.setattr(check_module._HeardInBackground, "ready", lambda self: self._read.exception() is None)
    for _ in range(3):
        checked = check_module.check_key_file(path, db, scorer=SCORERS[scorer], jobs=3)
        assert checked.as_dict() == expected.as_dict()
