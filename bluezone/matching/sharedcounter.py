"""A counter that forked processes take numbers from, each number once, in memory of its own.

``matcher._SharedBlocks`` (a match's chunks) and ``SharedBatches`` (a key file's batches) hand out
work this way.  Not a ``multiprocessing.Value``: that lives in multiprocessing's shared heap, whose
block the next counter reuses once this one is freed, while a stopped worker of a failed or restarted
run, still on its piece, may take from it again: it took the next run's numbers, whose work nobody
then did (tests/matching/test_matcher_after_a_failed_match.py).  Here each counter is a small shared
file of its own (``memfd``, never on disk): the processes forked after it share it, and it dies with
the last of them.

Guarded by a POSIX record lock (``lockf``) on that file, not a ``multiprocessing.Lock``: the kernel
drops a record lock when its holder dies, so a worker killed while it held it (``kill -9``, the OOM
killer) no longer leaves every other process waiting for ever at its next ``take`` or ``stop``
(tests/matching/test_sharedcounter.py).  A record lock belongs to a process, not a thread: one thread
of each process uses a counter.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import weakref

import numpy as np

_NO_END = 2**62
_BYTES = 16  # [the next number, the end], int64 each


class SharedCounter:
    """Numbers 0, 1, 2, ... below ``end``, each to whichever of this process and the processes it
    forks afterwards asks first, until ``stop``."""

    def __init__(self, end: int = _NO_END) -> None:
        self._fd = _shared_file(_BYTES)
        weakref.finalize(self, os.close, self._fd)
        # MAP_SHARED over the file: each process sees the others' takes; guarded by the file's lock
        self._counters = np.frombuffer(mmap.mmap(self._fd, _BYTES), np.int64)
        self._counters[1] = end

    def take(self) -> int | None:
        """The next number, or None once past the end or stopped."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            return self._take_held()
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def _take_held(self) -> int | None:
        """``take`` with the lock held.  A holder killed here has either taken its number (its work
        is lost: its parent hears of it through its pipe or pool) or not (the next taker gets it)."""
        number, end = (int(c) for c in self._counters)
        if number >= end:
            return None
        self._counters[0] = number + 1
        return number

    def end_at(self, end: int) -> None:
        """Hand out nothing from ``end`` on (nor past an earlier end or a stop)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            self._counters[1] = min(int(self._counters[1]), end)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def stop(self) -> None:
        """Hand out nothing more: every process stops at its next ``take``."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            self._counters[1] = 0
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)


def _shared_file(size: int) -> int:
    """A file descriptor of ``size`` zero bytes no other program can open: in memory on Linux
    (``memfd_create``), else an unlinked temporary file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("bluezone-counter", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        import tempfile  # here: on Linux never (~4 ms of a check's serial start, with shutil and random)

        fd, path = tempfile.mkstemp(prefix="bluezone-counter-")
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd
