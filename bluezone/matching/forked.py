"""Forked worker processes that leave Ctrl-C to their parent.

Ctrl-C signals every process of the terminal's group; the parent handles it (it stops its workers
after the piece they are on), so a worker ignores SIGINT, set by its pool's initializer.  Between
the fork and that initializer a worker still has the parent's handler: a SIGINT then killed it
(a traceback of its own, the pool broken).  So SIGINT is blocked in the thread that forks, the
worker is born with it blocked, and the initializer unblocks it only once it is ignored: one that
arrived meanwhile is dropped, never acted on.  Blocking delays nothing in the parent: a Ctrl-C
during the fork is delivered when the block ends.

A worker also dies with its parent: one killed outright (the OOM killer picks the largest process, a
check's parent holding the store; ``kill -9``) left its workers waiting for work for ever, each
holding its copy of the parent's memory and the parent's stdout (``bluezone check | tee`` never ended).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager


#: Linux's prctl option: a signal to this process when its parent (the thread that forked it) ends.
_PR_SET_PDEATHSIG = 1
#: The process that forks inside ``ctrl_c_held`` (always this process's id, whichever thread sets it):
#: a worker inherits it, to tell a parent gone before the worker could ask to die with it.
_forker = 0


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Around a fork pool's ``submit`` (it forks its workers at the first one): SIGINT blocked
    in this thread, so the workers start with it blocked; delivered here once the block ends."""
    global _forker
    _forker = os.getpid()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def leave_ctrl_c_to_parent() -> None:
    """In a worker forked inside ``ctrl_c_held``, first thing: ignore SIGINT, then unblock it; and
    end with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _end_with_parent() -> None:
    """Ask Linux for SIGKILL when the parent ends (a worker holds nothing to clean up: its pool's shared
    memory is anonymous), and end now if it already has.  The signal follows the thread that forked:
    every pool here lives within the call that made it.  Elsewhere nothing (no such call)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # here, in the worker: not in a one-job check's imports

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0 and _forker and os.getppid() != _forker:
        os._exit(1)  # the parent ended between the fork and the prctl
