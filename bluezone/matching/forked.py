"""Forked worker processes that leave Ctrl-C to their parent.

Ctrl-C signals every process of the terminal's group; the parent handles it (it stops its workers
after the piece they are on), so a worker ignores SIGINT, set by its pool's initializer.  Between
the fork and that initializer a worker still has the parent's handler: a SIGINT then killed it
(a traceback of its own, the pool broken).  So SIGINT is blocked in the thread that forks, the
worker is born with it blocked, and the initializer unblocks it only once it is ignored: one that
arrived meanwhile is dropped, never acted on.  Blocking delays nothing in the parent: a Ctrl-C
during the fork is delivered when the block ends.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Around a fork pool's ``submit`` (it forks its workers at the first one): SIGINT blocked
    in this thread, so the workers start with it blocked; delivered here once the block ends."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def leave_ctrl_c_to_parent() -> None:
    """In a worker forked inside ``ctrl_c_held``, first thing: ignore SIGINT, then unblock it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
