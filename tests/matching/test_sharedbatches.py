"""``SharedBatches``: every posted batch derived once, by a worker or by this process, and at the end
this process waits for no more than the batch each worker is on (a ``ProcessPoolExecutor`` had two
committed to its worker, and the parent idled 15-40 ms for them on the largest real day)."""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import pytest

from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.errors import MatchWorkerError
from bluezone.matching.sharedbatches import Found, SharedBatches

PARENT = os.getpid()


def keys_numbered(n: int) -> np.ndarray:
    keys = np.zeros(n, KEY_DTYPE)
    keys["rolling_start"] = np.arange(n)
    return keys


def who_derived(keys: np.ndarray) -> Found:
    """(rows: the pid, once per key; the keys; no RPIs)."""
    return np.full(len(keys), os.getpid(), np.int64), keys.copy(), np.empty((0, 16), np.uint8)


def test_every_batch_is_derived_once_with_its_own_keys() -> None:
    keys = keys_numbered(1000)
    batches = SharedBatches(who_derived, workers=2, slots=64, slot_keys=16)
    try:
        numbers = [batches.post(keys[lo : lo + 16]) for lo in range(0, 1000, 16)]
        assert numbers == list(range(len(numbers)))
        got = dict(batches.collect(wait=True))
    finally:
        batches.close()
    assert sorted(got) == numbers
    for number, (_, derived, _) in got.items():
        assert np.array_equal(derived, keys[16 * number : 16 * number + 16])


def test_at_the_end_this_process_derives_every_batch_no_worker_has_claimed() -> None:
    go = multiprocessing.get_context("fork").Event()

    def held_in_the_worker(keys: np.ndarray) -> Found:
        if os.getpid() != PARENT:
            assert go.wait(30)
        return who_derived(keys)

    batches = SharedBatches(held_in_the_worker, workers=1, slots=8, slot_keys=4)
    try:
        keys = keys_numbered(24)
        for lo in range(0, 24, 4):
            batches.post(keys[lo : lo + 4])
        by: dict[int, int] = {}
        for number, (pids, _, _) in batches.collect(wait=True):
            by[number] = int(pids[0])
            if sum(pid == PARENT for pid in by.values()) == 5:
                go.set()  # the worker may finish the one it holds only once this process has derived 5
    finally:
        go.set()
        batches.close()
    assert sorted(by) == list(range(6))
    assert sum(pid != PARENT for pid in by.values()) <= 1


def test_a_full_ring_hands_the_batch_back_until_one_is_collected() -> None:
    batches = SharedBatches(who_derived, workers=1, slots=2, slot_keys=4)
    try:
        keys = keys_numbered(12)
        assert batches.post(keys[0:4]) == 0 and batches.post(keys[4:8]) == 1
        assert batches.post(keys[8:12]) is None  # slot 0 still holds batch 0: derive these here
        assert sorted(number for number, _ in batches.collect(wait=True)) == [0, 1]
        assert batches.post(keys[8:12]) == 2
        got = dict(batches.collect(wait=True))
    finally:
        batches.close()
    assert np.array_equal(got[2][1], keys[8:12])


def test_an_error_in_a_worker_is_raised_here() -> None:
    def fails_in_the_worker(keys: np.ndarray) -> Found:
        if os.getpid() != PARENT:
            raise ValueError("broken batch")
        return who_derived(keys)

    batches = SharedBatches(fails_in_the_worker, workers=1, slots=4, slot_keys=4)
    try:
        batches.post(keys_numbered(4))
        with pytest.raises(ValueError, match="broken batch"):
            while True:  # until the worker has claimed and failed it (this process may not take it)
                list(batches.collect())
    finally:
        batches.close()


def test_a_worker_killed_with_its_batch_is_an_error_not_a_hang() -> None:
    started = multiprocessing.get_context("fork").Event()

    def never_ends_in_the_worker(keys: np.ndarray) -> Found:
        if os.getpid() != PARENT:
            started.set()
            signal.pause()
        return who_derived(keys)

    batches = SharedBatches(never_ends_in_the_worker, workers=1, slots=4, slot_keys=4)
    try:
        batches.post(keys_numbered(4))
        assert started.wait(30)
        os.kill(batches.pids[0], signal.SIGKILL)
        with pytest.raises(MatchWorkerError):
            list(batches.collect(wait=True))
    finally:
        batches.close()


def test_closed_workers_exit_and_closing_again_does_nothing() -> None:
    batches = SharedBatches(who_derived, workers=2, slots=4, slot_keys=4)
    processes = list(batches._processes)
    batches.post(keys_numbered(4))
    batches.close()
    batches.close()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0


def test_a_new_ring_right_after_a_stopped_one_gets_every_batch_once() -> None:
    """A key stream read again (protobuf parses the file after all) stops its workers and forks new
    ones at once.  The claim counter lived in multiprocessing's shared heap: the new one reused the
    stopped one's block while a stopped worker, just woken to its stop, still read it, took a batch
    number of the new ring, and a new worker then claimed a batch never posted (IndexError)."""
    keys = keys_numbered(400)
    for _ in range(10):
        SharedBatches(who_derived, workers=2, slots=4, slot_keys=4).close()
        batches = SharedBatches(who_derived, workers=2, slots=128, slot_keys=4)
        try:
            for lo in range(0, 400, 4):
                batches.post(keys[lo : lo + 4])
            got = dict(batches.collect(wait=True))
        finally:
            batches.close()
        assert sorted(got) == list(range(100))
        assert all(np.array_equal(derived, keys[4 * n : 4 * n + 4]) for n, (_, derived, _) in got.items())


@pytest.mark.parametrize("posted", [0, 5])
def test_told_nothing_more_comes_a_worker_ends_once_no_batch_is_left_not_at_close(posted: int) -> None:
    """``no_more``: a worker ends as soon as it finds nothing left to claim, so that its exit overlaps
    this process's last batch (issue 17, twenty-second session), and every batch is still derived once."""
    keys = keys_numbered(4 * posted)
    batches = SharedBatches(who_derived, workers=2, slots=8, slot_keys=4)
    try:
        for lo in range(0, len(keys), 4):
            batches.post(keys[lo : lo + 4])
        processes = list(batches._processes)
        batches.no_more()
        got = dict(batches.collect(wait=True))
        for process in processes:
            process.join(30)  # not closed: told only that nothing more comes
            assert process.exitcode == 0
    finally:
        batches.close()
    assert sorted(got) == list(range(posted))
    assert np.array_equal(np.concatenate([got[n][1] for n in range(posted)]) if posted else keys, keys)


def test_a_worker_ending_with_nothing_left_while_another_still_derives_is_no_error() -> None:
    """After ``no_more`` a worker that finds nothing left ends, its pipe closed, while another worker
    may still derive the last batch: that end is no worker killed (``MatchWorkerError``, raised for a
    good check whenever it was seen before the last batch came in: with three jobs or more)."""
    context = multiprocessing.get_context("fork")
    claimed, go, holder = context.Event(), context.Event(), context.Value("i", 0)

    def held_in_a_worker(keys: np.ndarray) -> Found:
        if os.getpid() != PARENT:
            holder.value = os.getpid()
            claimed.set()
            assert go.wait(30)
        return who_derived(keys)

    batches = SharedBatches(held_in_a_worker, workers=2, slots=4, slot_keys=4)
    try:
        batches.post(keys_numbered(4))
        assert claimed.wait(30)
        batches.no_more()
        idle = next(p for p in batches._processes if p.pid != holder.value)
        idle.join(30)  # ended: nothing left to claim
        assert idle.exitcode == 0
        go.set()
        got = dict(batches.collect(wait=True))
    finally:
        go.set()
        batches.close()
    assert list(got) == [0] and int(got[0][0][0]) == holder.value


def test_a_ctrl_c_anywhere_in_post_reaches_the_caller() -> None:
    """A signal handler's KeyboardInterrupt raised at each line ``post`` runs in turn (Python code it calls
    included), as a Ctrl-C lands: each must come out.  ``post`` read the slot's address from a structured
    array's ``__array_interface__``, whose descr numpy builds in Python and whose errors it drops: a
    Ctrl-C landing there was lost and the check ran to its end (9 of 30 Ctrl-Cs sent as a worker forked)."""
    import sys
    from types import FrameType

    keys = keys_numbered(16)
    batches = SharedBatches(who_derived, workers=0, slots=64, slot_keys=16)
    try:
        nth = 0
        while True:
            nth += 1
            lines = 0

            def trace(frame: FrameType, event: str, arg: object) -> object:
                nonlocal lines
                if event == "line":
                    lines += 1
                    if lines == nth:
                        raise KeyboardInterrupt
                return trace

            sys.settrace(trace)
            try:
                batches.post(keys)
            except KeyboardInterrupt:
                continue  # came out: the next line
            finally:
                sys.settrace(None)
            assert lines < nth, f"a KeyboardInterrupt raised at line {nth} of post's run was dropped"
            break
    finally:
        batches.close()
