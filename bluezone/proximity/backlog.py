"""What the daemon heard but the store could not take yet (a full disk, an I/O error, a lock).

The daemon keeps running: batches wait here in memory, at most ``limit`` sightings (the oldest
go first beyond it, counted), and are written in order at the next try, which backs off from
``min_delay`` to ``max_delay`` seconds while writes keep failing.  ``bluezone status`` and the
daemon's status line show what waits and why.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bluezone.errors import StoreWriteError

log = logging.getLogger(__name__)

#: (kind, rows, addresses) -> rows written; raises StoreWriteError when the store cannot take them now.
Writer = Callable[[str, np.ndarray, Sequence[str | None]], int]


class Backoff:
    """When to try again a write the store refused: at once until a failure, then after ``min_delay`` seconds,
    doubling up to ``max_delay`` while tries keep failing (the backlog's sightings, the daemon's unsaved keys)."""

    def __init__(self, min_delay: float = 5.0, max_delay: float = 300.0) -> None:
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.delay = 0.0  # 0 while nothing fails
        self._retry_at = 0.0

    def due(self, now: float) -> bool:
        """Whether to try now: always, unless backing off after a failure.  A try due further off than the delay
        is due now: the clock stepped back since the failure, and on the old clock it waited until the new one
        caught up (an hour's step: an hour of sightings held in memory, and lost beyond the backlog's bound)."""
        return self.delay == 0.0 or not now < self._retry_at <= now + self.delay

    def failed(self, now: float) -> None:
        self.delay = min(max(self.delay * 2, self.min_delay), self.max_delay)
        self._retry_at = now + self.delay

    def succeeded(self) -> None:
        self.delay = 0.0


@dataclass
class _Batch:
    kind: str  # which table: "gaen" sightings, "bluezone3" sightings
    rows: np.ndarray
    addresses: list[str | None]


class WriteBacklog:
    """Bounded, ordered batches waiting for the store, with retry and backoff."""

    def __init__(self, limit: int, min_delay: float = 5.0, max_delay: float = 300.0) -> None:
        self.limit = limit
        self.waiting = 0  # sightings held now
        self.dropped = 0  # sightings lost because more than ``limit`` waited
        self.failures = 0  # failed writes so far
        self.error: str | None = None  # the last failure, while anything waits
        self.failing_since: float | None = None
        self._batches: deque[_Batch] = deque()
        self._backoff = Backoff(min_delay, max_delay)

    def add(self, kind: str, rows: np.ndarray, addresses: Sequence[str | None] | None) -> None:
        """Queue a batch to write; beyond ``limit`` the oldest waiting sightings are dropped."""
        if len(rows) == 0:
            return
        self._batches.append(_Batch(kind, rows, list(addresses) if addresses is not None else [None] * len(rows)))
        self.waiting += len(rows)
        while self.waiting > self.limit:
            oldest = self._batches[0]
            cut = min(len(oldest.rows), self.waiting - self.limit)
            if cut == len(oldest.rows):
                self._batches.popleft()
            else:
                oldest.rows, oldest.addresses = oldest.rows[cut:], oldest.addresses[cut:]
            self.waiting -= cut
            self.dropped += cut

    def due(self, now: float) -> bool:
        """Whether a write should be tried now (always, unless backing off after a failure)."""
        return bool(self._batches) and self._backoff.due(now)

    def write(self, writer: Writer, now: float, *, last: bool = False) -> dict[str, int]:
        """Write what waits, oldest first, each batch in one call; stops at the first failure
        and backs off.  Returns the sightings written per kind.  Errors other than
        StoreWriteError (a damaged database) propagate: retrying cannot mend them.  ``last``: the daemon's stop,
        after which nothing is retried: a first failure is not warned of (the stop says what it lost)."""
        written: dict[str, int] = {}
        while self._batches:
            batch = self._batches[0]
            try:
                n = writer(batch.kind, batch.rows, batch.addresses)
            except StoreWriteError as exc:
                self.failures += 1
                if self.error is None:
                    self.failing_since = now
                    if not last:
                        log.warning("%s; keeping up to %d sightings in memory and retrying", exc, self.limit)
                self.error = str(exc)
                self._backoff.failed(now)
                return written
            self._batches.popleft()
            self.waiting -= len(batch.rows)
            written[batch.kind] = written.get(batch.kind, 0) + n
        if self.error is not None:
            log.warning("the store takes writes again (after %d failed tries)", self.failures)
        self.error, self.failing_since = None, None
        self._backoff.succeeded()
        return written

    def as_dict(self) -> dict[str, object]:
        return {
            "waiting": self.waiting,
            "limit": self.limit,
            "dropped": self.dropped,
            "failures": self.failures,
            "error": self.error,
            "failing_since": self.failing_since,
        }
