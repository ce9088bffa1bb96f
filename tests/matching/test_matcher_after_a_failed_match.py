"""A match with ``jobs`` > 1 that fails part-way, then another at once in the same process (a program
using bluezone as a library; a check read again): the second one's chunks are its own.  The chunk
counter was a ``multiprocessing.Value`` in multiprocessing's shared heap: the failed match freed it, the
next one's counter took the same block, and a worker of the failed match, still on its chunk, then
took the next one's chunks (its own keys' rows, its result read by nobody): those keys were never
derived, their matches missing (as scale13 found for ``SharedBatches``, e8bff70)."""

from __future__ import annotations

import gc
import multiprocessing
import os

import numpy as np
import pytest

import bluezone.matching.matcher as matcher_module
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.matcher import match

PARENT = os.getpid()


def test_a_worker_of_a_failed_match_takes_no_chunk_of_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)  # small data, still split
    keys, sightings, planted = synthetic_data(4 * matcher_module._CHUNK, 20_000, seed=13, planted=30)
    expected = match(keys, sightings)
    assert len(expected) == planted * 15
    real = matcher_module._matches
    context = multiprocessing.get_context("fork")
    worker_waits, next_match_forked, old_worker_done = context.Event(), context.Event(), context.Event()

    def fails_in_the_parent(*args: object) -> object:
        """The first match: this process fails while its worker is on its first chunk (not yet taken)."""
        if os.getpid() == PARENT:
            assert worker_waits.wait(30)
            raise RuntimeError("failed part-way")
        worker_waits.set()
        assert next_match_forked.wait(30)  # the next match's counter is set up: take chunks now
        found = real(*args)  # type: ignore[arg-type]
        old_worker_done.set()
        return found

    monkeypatch.setattr(matcher_module, "_matches", fails_in_the_parent)
    with pytest.raises(RuntimeError, match="failed part-way"):
        match(keys, sightings, jobs=2)
    gc.collect()  # the failed match's objects freed, as a program's next call would find them

    def after_the_old_worker(*args: object) -> object:
        """The next match: every process of it starts once the failed match's worker has finished."""
        next_match_forked.set()
        assert old_worker_done.wait(30)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(matcher_module, "_matches", after_the_old_worker)
    assert np.array_equal(match(keys, sightings, jobs=2), expected)
