"""A Ctrl-C signals every process of the terminal's group, the matcher's forked workers too.  The
parent handles it (its ``finally`` hands out no more chunks, so the workers stop after the one they
are on); a worker must not act on it: one waiting for work died with a traceback of its own on the
user's terminal beside the CLI's one line, and one matching raised KeyboardInterrupt out of a match
that a stray SIGINT to a worker (not to the parent) should not end."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import bluezone.matching.matcher as matcher_module
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.matcher import match

_original_worker = matcher_module._worker


def interrupted_worker() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A worker's share, with a Ctrl-C arriving as it starts (module-level: pickled by name)."""
    os.kill(os.getpid(), signal.SIGINT)
    return _original_worker()


def test_a_ctrl_c_in_a_worker_is_left_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)  # small data, still split
    keys, sightings, planted = synthetic_data(700, 20_000, seed=11, planted=30)
    expected = match(keys, sightings)
    assert len(expected) == planted * 15
    monkeypatch.setattr(matcher_module, "_worker", interrupted_worker)
    assert np.array_equal(match(keys, sightings, jobs=2), expected)


def test_a_ctrl_c_before_a_worker_has_started_is_left_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker ignores SIGINT from its pool's initializer on; one arriving between the fork and
    that (a Ctrl-C just as the match starts) killed it and broke the pool: the workers are now
    forked with SIGINT held, and it is dropped once they ignore it."""
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)
    share = matcher_module._share

    def share_after_a_ctrl_c(shared: tuple) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # arrives before this worker could ignore it
        share(shared)

    keys, sightings, planted = synthetic_data(700, 20_000, seed=11, planted=30)
    expected = match(keys, sightings)
    monkeypatch.setattr(matcher_module, "_share", share_after_a_ctrl_c)
    assert np.array_equal(match(keys, sightings, jobs=2), expected)
