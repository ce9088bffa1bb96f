"""``inthread.InThread``: a Ctrl-C while its work is waited for is raised only once the work has ended.

A check's store is read and counted by such work; the check, unwinding on Ctrl-C, closed the store
while a count still ran on it, and SQLite crashed the process (SIGSEGV, -wal left beside the store:
~15 % of Ctrl-Cs in the last quarter of a two-job check of the largest real day).  ``Thread.join``
cannot be used for the wait: on Python before 3.13 one that Ctrl-C interrupts marks the thread as
ended while it still runs."""

from __future__ import annotations

import inspect
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

import pytest

from bluezone.inthread import InThread, ctrl_c_deferred


def _until_blocked_in_join(thread: threading.Thread) -> None:
    """Return once ``thread`` waits in ``InThread.join``, on the waiter's lock in ``Condition.wait`` (the line of its
    second ``waiter.acquire()``, inside the ``try`` that takes the condition's lock back).  A Ctrl-C sent as soon as
    the test had asked for the result could land before ``result()`` was entered, outside ``pytest.raises`` (failed
    once under -n 2 at load 6-7); one landing between ``Condition.wait``'s own steps broke the condition."""
    lines, first = inspect.getsourcelines(threading.Condition.wait)
    blocked = first + [i for i, line in enumerate(lines) if line.strip() == "waiter.acquire()"][-1]
    while True:
        frame = sys._current_frames().get(thread.ident or 0)
        if frame is not None and frame.f_code is threading.Condition.wait.__code__ and frame.f_lineno == blocked:
            while frame is not None and frame.f_code is not InThread.join.__code__:
                frame = frame.f_back
            if frame is not None:
                return
        time.sleep(0.001)


def test_a_ctrl_c_while_the_work_is_waited_for_is_raised_once_it_has_ended() -> None:
    interrupted, ended = threading.Event(), []

    def on_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
        if not interrupted.is_set():  # (a Ctrl-C sent again, below, is the same one)
            interrupted.set()
            raise KeyboardInterrupt

    def work() -> int:
        asked.wait()
        _until_blocked_in_join(threading.main_thread())  # Ctrl-C the main thread there, not before result()
        # Sent again until its handler has run: one that lands as the main thread's lock wait begins (the GIL let
        # go, the semaphore not yet waited on) wakes nothing, and is handled only once the wait ends, which here
        # waits for the handler: a hang (~1 in 13 runs of this file beside tests/cli/test_ctrl_c*.py under -n 2,
        # "release unlocked lock" after pytest-timeout's SIGALRM woke it).  A real Ctrl-C there is raised once the
        # work has ended, as this test asks.
        while not interrupted.wait(0.1):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        ended.append(sum(range(100_000)))  # the work's last steps (a store's last statement)
        return 7

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    asked = threading.Event()
    try:
        running = InThread("test-work", work)
        asked.set()
        with pytest.raises(KeyboardInterrupt):
            running.result()
        assert ended, "Ctrl-C came out of the wait while the work still ran"
        assert running.done() and running.result() == 7
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_work_s_error_is_raised_by_result_and_given_by_exception() -> None:
    def failing() -> None:
        raise ValueError("bad")

    running = InThread("test-error", failing)
    assert isinstance(running.exception(), ValueError)
    with pytest.raises(ValueError, match="bad"):
        running.result()


# Work that never ends (its next import waiting on an import lock a Ctrl-C left held, seen by attack24): the first
# Ctrl-C is held until the work ends, so a second one must end the process, or only kill -9 would.
_STUCK = """
import signal, sys, threading, time
from bluezone.inthread import InThread, ctrl_c_deferred

main = threading.main_thread().ident

def waiting_in_join(interrupted_before: bool) -> bool:
    frame = sys._current_frames().get(main)
    innermost = frame.f_code.co_name if frame else ""
    while frame is not None and frame.f_code.co_name != "join":
        frame = frame.f_back
    return frame is not None and innermost == "wait" and (frame.f_locals.get("interrupted") is not None) == interrupted_before

def ctrl_c_twice() -> None:
    for before in (False, True):
        while not waiting_in_join(before):
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)

stuck = InThread("bluezone-stuck", threading.Event().wait)
threading.Thread(target=ctrl_c_twice, daemon=True).start()
try:
    stuck.result()
finally:
    print("unwound", flush=True)
"""


def test_a_second_ctrl_c_while_work_that_never_ends_is_waited_for_exits_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", _STUCK], capture_output=True, text=True, timeout=30)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr == "bluezone: Ctrl-C again while bluezone-stuck still ran: exiting now (what was stored is kept)\n"
    assert "unwound" not in done.stdout  # nothing unwound under the work (a store closed under it crashed SQLite)


def test_a_ctrl_c_in_a_deferred_block_is_raised_once_it_ends_and_the_handler_is_back() -> None:
    steps: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("after the Ctrl-C")  # (Python's own handler raised before this step)
            steps.append("noted")
    assert steps == ["after the Ctrl-C", "noted"]
    assert signal.getsignal(signal.SIGINT) is before
    with ctrl_c_deferred():  # none: nothing raised
        steps.append("quiet")
