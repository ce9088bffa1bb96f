"""A counter that forked processes take numbers from, each number once, in memory of its own.

``matcher._SharedBlocks`` (a match's chunks) and ``SharedBatches`` (a key file's batches) hand out
work this way.  Not a ``multiprocessing.Value``: that lives in multiprocessing's shared heap, whose
block the next counter reuses once this one is freed, while a stopped worker of a failed or restarted
run, still on its piece, may take from it again: it took the next run's numbers, whose work nobody
then did (tests/matching/test_matcher_after_a_failed_match.py).  Here each counter is an anonymous
shared mapping of its own: the processes forked after it share it, and it dies with the last of them.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import multiprocessing.context

_NO_END = 2**62


class SharedCounter:
    """Numbers 0, 1, 2, ... below ``end``, each to whichever of this process and the processes it
    forks afterwards asks first, until ``stop``."""

    def __init__(self, context: multiprocessing.context.BaseContext, end: int = _NO_END) -> None:
        # [the next number, the end], guarded by _lock; MAP_SHARED: each process sees the others' takes
        self._counters = np.frombuffer(mmap.mmap(-1, 16), np.int64)
        self._counters[1] = end
        self._lock = context.Lock()

    def take(self) -> int | None:
        """The next number, or None once past the end or stopped."""
        with self._lock:
            number, end = (int(c) for c in self._counters)
            if number >= end:
                return None
            self._counters[0] = number + 1
        return number

    def stop(self) -> None:
        """Hand out nothing more: every process stops at its next ``take``."""
        with self._lock:
            self._counters[1] = 0
