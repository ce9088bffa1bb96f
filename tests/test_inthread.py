"""``inthread.InThread``: a Ctrl-C while its work is waited for is raised only once the work has ended.

A check's store is read and counted by such work; the check, unwinding on Ctrl-C, closed the store
while a count still ran on it, and SQLite crashed the process (SIGSEGV, -wal left beside the store:
~15 % of Ctrl-Cs in the last quarter of a two-job check of the largest real day).  ``Thread.join``
cannot be used for the wait: on Python before 3.13 one that Ctrl-C interrupts marks the thread as
ended while it still runs."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from bluezone.inthread import InThread


def test_a_ctrl_c_while_the_work_is_waited_for_is_raised_once_it_has_ended() -> None:
    interrupted, ended = threading.Event(), []

    def on_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    def work() -> int:
        asked.wait()  # the main thread is in result() now: Ctrl-C it there
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        interrupted.wait()  # its handler has raised KeyboardInterrupt in the main thread
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
