"""``SharedCounter``: a process killed while it holds the counter's lock (``kill -9``, the OOM killer)
must not stop every other process at its next ``take``.  Last session's ``multiprocessing.Lock``
stayed held for ever by a dead worker: the check's parent then hung at its next claim, where it
should have said that a worker died (``SharedBatches``) or gone on (``matcher``'s chunks)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable

import numpy as np
import pytest

from bluezone.errors import MatchWorkerError
from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.matching.sharedbatches import Found, SharedBatches
from bluezone.matching.sharedcounter import SharedCounter

PARENT = os.getpid()
CONTEXT = multiprocessing.get_context("fork")


@pytest.fixture
def dies_holding_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked process that takes a number is killed (SIGKILL, uncatchable) with the lock held,
    before it has taken one: the worst moment, every time."""
    plain = SharedCounter._take_held

    def take_held(self: SharedCounter) -> int | None:
        if os.getpid() != PARENT:
            os.kill(os.getpid(), signal.SIGKILL)
        return plain(self)

    monkeypatch.setattr(SharedCounter, "_take_held", take_held)


def within(seconds: float, call: Callable[[], object]) -> object:
    """``call()``'s result (or the exception it raised), failing the test if it has not returned in
    ``seconds`` (a thread: a hung call cannot be interrupted, the thread is left behind as a daemon)."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still waiting after {seconds} s: a lock held by a dead process"
    return out[0]


def test_numbers_are_taken_in_order_until_the_end_or_a_stop() -> None:
    counter = SharedCounter(end=3)
    assert [counter.take() for _ in range(4)] == [0, 1, 2, None]
    stopped = SharedCounter()
    assert stopped.take() == 0
    stopped.stop()
    assert stopped.take() is None


def test_every_number_goes_to_one_process_once() -> None:
    counter = SharedCounter(end=2000)
    reader, writer = CONTEXT.Pipe(duplex=False)

    def take_all() -> None:
        writer.send([n for n in iter(counter.take, None)])

    workers = [CONTEXT.Process(target=take_all) for _ in range(3)]
    for worker in workers:
        worker.start()
    mine = list(iter(counter.take, None))
    theirs = [n for _ in workers for n in reader.recv()]
    for worker in workers:
        worker.join(30)
    assert sorted(mine + theirs) == list(range(2000))


@pytest.mark.usefixtures("dies_holding_the_lock")
def test_a_process_killed_holding_the_lock_leaves_it_free() -> None:
    counter = SharedCounter()
    worker = CONTEXT.Process(target=counter.take)
    worker.start()
    worker.join(30)
    assert worker.exitcode == -signal.SIGKILL
    assert within(20, counter.take) == 0  # it died before taking a number: the next is still 0


@pytest.mark.usefixtures("dies_holding_the_lock")
def test_a_deriving_worker_killed_holding_the_lock_is_an_error_not_a_hang() -> None:
    """Two batches posted: the worker claims one (the semaphore), dies in the counter's lock; this
    process claims the other at the end (the counter) and must then say the worker died."""

    def derive(keys: np.ndarray) -> Found:
        return np.arange(len(keys)), keys.copy(), np.empty((0, 16), np.uint8)

    batches = SharedBatches(derive, workers=1, slots=4, slot_keys=4)
    try:
        batches.post(np.zeros(4, KEY_DTYPE))
        batches.post(np.zeros(4, KEY_DTYPE))
        batches._processes[0].join(30)  # dead, holding the lock
        assert batches._processes[0].exitcode == -signal.SIGKILL
        outcome = within(20, lambda: list(batches.collect(wait=True)))
    finally:
        within(20, batches.close)  # stopping takes the lock too
    assert isinstance(outcome, MatchWorkerError)


@pytest.mark.usefixtures("dies_holding_the_lock")
def test_a_matching_worker_killed_holding_the_lock_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """``match`` with two jobs: its worker dies in the chunk counter's lock; this process takes every
    chunk, then says the worker died (it had said it with a traceback of the pool's own)."""
    import bluezone.matching.matcher as matcher_module
    from bluezone.matching.benchmark import synthetic_data

    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)  # small data, still split
    keys, sightings, _ = synthetic_data(4 * matcher_module._CHUNK, 20_000, seed=13, planted=30)
    outcome = within(60, lambda: matcher_module.match(keys, sightings, jobs=2))
    assert isinstance(outcome, MatchWorkerError), outcome
