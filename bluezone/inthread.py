"""Work run at once in a thread of its own, its end waited for even through Ctrl-C.

A caller that unwinds (Ctrl-C, an error) while such work still uses a store must wait for it first:
closing a SQLite connection under a statement another thread runs crashed the process (SIGSEGV).
Not ``Thread.join``: on Python before 3.13 a join that Ctrl-C interrupts marks the thread as ended
while it still runs (bpo-45274's fix releases the running thread's own lock), so every later join
and ``threading``'s wait at exit returned at once.  A plain thread, not a ``concurrent.futures``
pool: that import (~2 ms) came before a check's store was read, in the steps one thread does.

A second Ctrl-C while the work is still waited for ends the process at once, with one line: work that
never ends (a Ctrl-C landing inside the import system on Python 3.11 can leave the import lock held, and
the work's next import waits on it forever) must not leave ``kill -9`` as the only way out (``exitnow``).

A Ctrl-C between the start of such work and the caller's note to wait for it (``ExitStack.callback``) left it
unwaited: the store was closed under a count still running on it (SIGSEGV after "Interrupted", 1 in ~100 random
Ctrl-Cs of ``check --jobs 2`` on the largest real day), or a store opened by the work was never closed (its
``-wal`` and ``-shm`` left).  ``ctrl_c_deferred`` holds a Ctrl-C over both steps."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Generic, TypeVar

from bluezone.exitnow import exit_now

_T = TypeVar("_T")


class InThread(Generic[_T]):
    """``work()`` run at once in a thread of its own, its result or error kept for ``result``."""

    def __init__(self, name: str, work: Callable[[], _T]) -> None:
        self._result: _T | None = None
        self._error: BaseException | None = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), name=name)
        self._thread.start()

    def _run(self, work: Callable[[], _T]) -> None:
        try:
            self._result = work()
        except BaseException as exc:  # noqa: BLE001 - raised again by result(), in the thread that asks
            self._error = exc
        finally:
            self._ended.set()

    def done(self) -> bool:
        """Whether the work has ended (without waiting for it)."""
        return self._ended.is_set()

    def join(self) -> None:
        """Wait for the work to end; a Ctrl-C meanwhile is raised here once it has, and a second one
        exits the process at once (``exitnow``)."""
        interrupted: KeyboardInterrupt | None = None
        while not self._ended.is_set():
            try:
                self._ended.wait()
            except KeyboardInterrupt as exc:
                if interrupted is not None:
                    exit_now(f"bluezone: Ctrl-C again while {self._thread.name} still ran: exiting now (what was stored is kept)", 130)
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def exception(self) -> BaseException | None:
        """The error it ended in, or None (waiting for it to end)."""
        self.join()
        return self._error

    def result(self) -> _T:
        """The work's result, or its error raised here, once it has ended."""
        self.join()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # (None only when _T allows it)



@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that comes in the block until it ends, then raise it (as SIGINT's handler then in place
    would): around starting work in a thread and noting that it is to be waited for, which Python's own
    handler could otherwise split (KeyboardInterrupt comes between any two steps, even out of
    ``Thread.start`` once the thread runs), and around the CLI's imports (``bluezone.__main__``).  Only in the
    main thread, which alone runs signal handlers, and only over a handler set from Python (else the block runs
    as it is)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        if callable(previous):
            previous(signal.SIGINT, None)  # (Python's default handler raises KeyboardInterrupt)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)
