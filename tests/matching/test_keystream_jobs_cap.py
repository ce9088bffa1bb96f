"""A key stream asked for more jobs than this process has cores behaves as one asked for the cores
(``KeyStream``: "more derive no faster"), in the keys it keeps waiting for its workers too.  A library
caller's ``jobs=300`` on two cores forked one worker, as it should, but sized its queue for 299: up to
594 batches of ``EARLY_BATCH`` keys (321 MB of a file's pieces) waited, where ``jobs=2`` lets at most
60 (``BUFFER_KEYS``' worth, 33 MB) wait before this process derives them itself."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest

import bluezone.matching.keystream as keystream
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.keystream import KeyStream
from bluezone.matching.matcher import HeardIndex, keys_heard

PARENT = os.getpid()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("jobs", [2, 300])
def test_more_jobs_than_cores_hold_no_more_keys_waiting(monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    keys, sightings, _ = synthetic_data(2560, 5_000, seed=3, planted=10)
    rpis = np.ascontiguousarray(sightings["rpi"]).view(np.uint8).reshape(-1, 16)
    heard = HeardIndex(rpis, np.unique(np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS))
    monkeypatch.setattr(keystream, "available_cores", lambda: 2)  # one worker, whatever was asked
    monkeypatch.setattr(keystream, "BUFFER_KEYS", 256)  # four batches of 64
    release = multiprocessing.get_context("fork").Event()
    found_here = keystream._found

    def held_in_the_worker(index: HeardIndex, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if os.getpid() != PARENT:  # the worker stays on its first batch while the file is read
            assert release.wait(30)
        return found_here(index, batch)

    monkeypatch.setattr(keystream, "_found", held_in_the_worker)
    with KeyStream(heard, jobs=jobs, batch=64) as stream:
        try:
            for lo in range(0, len(keys), 50):  # as a file's pieces come: never a batch's edge
                stream.add(keys[lo : lo + 50])
            waiting = sum(len(piece) for _, pieces in stream.waiting for piece in pieces)
        finally:
            release.set()
        found = stream.finish()
    assert waiting <= keystream.BUFFER_KEYS, waiting
    rows, rpis = keys_heard(keys, heard)
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis)
