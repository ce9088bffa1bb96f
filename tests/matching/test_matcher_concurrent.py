"""Two matches with ``jobs`` > 1 at once (threads of a program using bluezone as a library): each
one's workers must derive its own keys. The workers used to find their work in a module global
set just before the fork, so another thread's match setting it in between made this one's workers
match that one's keys and report their rows as this one's."""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import bluezone.matching.matcher as matcher_module
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.matcher import SightingIndex, match


def test_another_match_between_the_setup_and_the_fork_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)  # small data, still split
    keys, sightings, planted = synthetic_data(700, 20_000, seed=11, planted=30)
    other_keys, other_sightings, _ = synthetic_data(700, 20_000, seed=12, planted=30)
    expected = match(keys, sightings)
    assert len(expected) == planted * 15

    # what another thread's match would have set up for its own workers, at the worst moment
    other_index = SightingIndex(other_sightings)
    other = (
        matcher_module._KeyTable(other_keys),
        other_index,
        matcher_module._SharedBlocks(len(other_keys)),
        matcher_module.TOLERANCE_INTERVALS,
    )

    def pool_after_another_match(*args: object, **kwargs: object) -> ProcessPoolExecutor:
        monkeypatch.setattr(matcher_module, "_SHARED", other)
        return ProcessPoolExecutor(*args, **kwargs)  # type: ignore[arg-type]

    # the matcher imports the pool where it forks (multiprocessing is not in a check's serial start)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", pool_after_another_match)
    assert np.array_equal(match(keys, sightings, jobs=2), expected)
