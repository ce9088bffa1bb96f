"""The keys of a key file derived against a store's heard RPIs as the file is read.

A national day is millions of keys (6M: a 115 MB zip, 189 MiB as ``KEY_DTYPE``).  Held whole they
were the largest part of a check's memory, and reading them was serial work done before any key
was derived.  Here the file's keys arrive piece by piece as the export inflates
(``keyformat.keyfile.stream_keys``): the first ``BUFFER_KEYS`` are kept, and a file that ends by
then is checked as one array, as before (the store is opened only once such a file is known to be
good).  Past that, the keys go in batches of ``BATCH`` to ``keys_heard`` against every distinct
RPI the store holds (which days the keys cover is known only at the end of the file).  With more
than one job the store is read while the file is (``check.check_key_file``), and the keys go in
batches of ``EARLY_BATCH`` as soon as it has been, kept as well while they are at most
``BUFFER_KEYS``: to ``jobs - 1`` forked worker processes that share the index copy-on-write, and
to this process, which derives a batch itself whenever the workers have enough queued, and the
last ones at the end, so that every core derives while the file is still inflating.  With one
job, here, between pieces.  What is kept of a batch is the few keys that sent an RPI the store
heard, and those RPIs.  ``check.check_key_file`` does the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD
from bluezone.errors import KeyFileError
from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.matching.matcher import TOLERANCE_INTERVALS, HeardIndex, available_cores, can_fork, keys_heard

if TYPE_CHECKING:
    from bluezone.matching.sharedbatches import SharedBatches
    from cryptography.hazmat.primitives.asymmetric import ec

#: Keys of a file kept as they arrive before it is matched as it streams (33 MB of KEY_DTYPE): a
#: file with fewer is checked whole, as an array; the largest real day (358,105 keys) is one.
BUFFER_KEYS = 1 << 20
#: Keys derived together with one job (8.7 MB of KEY_DTYPE).
BATCH = 1 << 18
#: Keys derived together with more jobs (~20 ms of work with the compiled helper): small, so that
#: the workers start early and this process, which reads the file, can take the last ones.
EARLY_BATCH = 1 << 14

#: What ``KeyStream.finish`` tells its caller of each batch that found keys: (their rows in the file, the RPIs).
OnFound = Callable[[np.ndarray, np.ndarray], None]


def _found(heard: HeardIndex, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, keys, RPIs) of the ``keys`` that sent an RPI in ``heard``: what is kept of a batch."""
    rows, rpis = keys_heard(keys, heard)
    return rows, keys[rows], rpis


@dataclass(frozen=True)
class HeardKeys:
    """What ``KeyStream.finish`` found: the keys that sent an RPI the store heard."""

    rows: np.ndarray  # int64, ascending: each key's row in the file
    keys: np.ndarray  # KEY_DTYPE: those keys, as the file gave them
    rpis: np.ndarray  # uint8 (m, 16): the heard RPIs they sent
    count: int  # keys in the file
    span: tuple[float, float] | None  # ``check.sightings_span`` of all of them (None: no keys)


class KeyStream:
    """A ``KeySink`` deriving each batch of a file's keys against ``heard``.  With ``jobs`` > 1 in
    ``jobs - 1`` forked workers and in this process (``SharedBatches``): the batches wait for the
    workers while this process reads the file (up to ``BUFFER_KEYS`` keys of them; past that it
    derives a batch itself now and then, so the file is read no faster than derived), a few in the
    workers' shared slots and the rest as the file's pieces, and at the end it derives the newest
    while the workers take the oldest, then the ones no worker has claimed while the workers finish theirs.  ``jobs`` is capped at
    the cores this process may use, as the CLI caps ``--jobs``: more derive no faster (a program
    asking for 300 forked 299 workers, each mapping the index)."""

    def __init__(self, heard: HeardIndex, jobs: int = 1, batch: int | None = None) -> None:
        self.heard = heard
        self.jobs = min(jobs, available_cores())
        self.batch = BATCH if batch is None else batch
        self.queued = max(2 * (self.jobs - 1), BUFFER_KEYS // self.batch)  # batches in flight at most (of the jobs kept)
        # of them in the workers' shared slots: enough for each worker's batch, its next and its last
        # not yet collected; the others wait as the file's pieces (a slot's page costs 3.2 us to touch first)
        self.slots = min(self.queued, 3 * (self.jobs - 1) + 1)
        self.workers: SharedBatches | None = None
        self.restart()

    def __enter__(self) -> KeyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (their memory given back); again: nothing more."""
        if self.workers is not None:
            self.workers.close()
            self.workers = None

    def restart(self) -> None:
        """Forget every key given so far (a ``KeySink``: the file is being read again): the workers,
        if any, are stopped and new ones forked, so no batch of the first reading comes back."""
        self.close()
        if self.jobs > 1 and can_fork():
            from bluezone.matching.sharedbatches import SharedBatches  # with multiprocessing: not in one job's imports

            self.heard.count_in_windows(np.zeros(1, np.int64), np.zeros(1, np.int64))  # its table built once, here
            self.workers = SharedBatches(functools.partial(_found, self.heard), self.jobs - 1, self.slots, self.batch)
        self.firsts: list[int] = []  # per batch posted to the workers: its first row in the file
        self.waiting: list[tuple[int, list[np.ndarray]]] = []  # batches for the workers, no slot free yet: (first row, pieces)
        self.pending: list[np.ndarray] = []  # keys not yet in a batch
        self.pending_count = 0
        self.count = 0  # keys in batches so far
        self.first: int | None = None  # earliest rolling start, latest end of validity so far
        self.end: int | None = None
        self.found: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (first row, rows, keys, RPIs) per batch

    def add(self, keys: np.ndarray) -> None:
        for lo in range(0, len(keys), self.batch):  # a file parsed whole comes as one array
            part = keys[lo : lo + self.batch]
            self.pending.append(part)
            self.pending_count += len(part)
            if self.pending_count >= self.batch:
                self._submit()

    def _submit(self) -> None:
        pieces = self._take()
        count = sum(len(piece) for piece in pieces)
        first, self.count = self.count, self.count + count
        for piece in pieces:
            starts = piece["rolling_start"].astype(np.int64)
            periods = piece["rolling_period"].astype(np.int64)
            ends = starts + np.where(periods == 0, ROLLING_PERIOD, periods)
            self.first = int(starts.min()) if self.first is None else min(self.first, int(starts.min()))
            self.end = int(ends.max()) if self.end is None else max(self.end, int(ends.max()))
        if self.workers is None:  # one job: derived here
            self._keep(first, _found(self.heard, _joined(pieces)))
            return
        self.waiting.append((first, pieces))
        self._feed()
        if len(self.waiting) > self.queued - self.slots:  # the queue is full: the newest derived here
            self._derive_newest()

    def _take(self) -> list[np.ndarray]:
        """The pending pieces, up to a batch of keys (the rest stays pending)."""
        pieces, count = self.pending, self.pending_count
        self.pending, self.pending_count = [], 0
        if count > self.batch:  # the pieces overshot a batch: the rest waits for the next one
            last = pieces[-1]
            cut = len(last) - (count - self.batch)
            pieces, rest = [*pieces[:-1], last[:cut]], last[cut:]
            self.pending, self.pending_count = [rest], len(rest)
        return pieces

    def _feed(self) -> None:
        """What the workers finished collected, and the oldest waiting batches joined into the slots
        that frees: a batch joined in its slot is neither joined in this process's memory nor copied,
        and a slot's pages, once touched, serve batch after batch."""
        assert self.workers is not None
        self._collect()
        while self.waiting and (slot := self.workers.next_slot()) is not None:
            first, pieces = self.waiting.pop(0)
            self.workers.post(_joined(pieces, slot))
            self.firsts.append(first)

    def _derive_newest(self) -> None:
        """Derive here the newest waiting batch (the workers take the oldest)."""
        first, pieces = self.waiting.pop()
        self._keep(first, _found(self.heard, _joined(pieces)))

    def _collect(self) -> None:
        assert self.workers is not None
        for number, found in self.workers.collect():
            self._keep(self.firsts[number], found)

    def _keep(self, first: int, found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        rows, keys, rpis = found
        self.found.append((first, first + rows, keys, rpis))

    def flush(self) -> None:
        """Every key given so far into a batch now (the last short of a whole one): handed to the
        workers (or derived)."""
        while self.pending:
            self._submit()

    def span(self) -> tuple[float, float] | None:
        """``check.sightings_span`` of every key given so far (None: none), those not yet in a batch
        handed to the workers (or derived) first."""
        self.flush()
        return None if self.first is None or self.end is None else span_of(self.first, self.end)

    def finish(self, each: OnFound | None = None) -> HeardKeys:
        """The keys found in the whole file (call once it has been read without error); the
        workers are stopped.  ``each(rows, rpis)`` is told what the batches that found keys found
        (their rows in the file, ascending within a call, the heard RPIs they sent; calls in any
        order): all found so far in one call, then before each batch this process derives what came
        in since, so that the work done on them runs while the workers still derive instead of after
        the last key, in few calls (each costs ~1 ms and page faults of its own)."""
        span = self.span()
        told = 0  # batches of ``found`` told to ``each``

        def tell() -> None:  # what was found since the last call, in file order
            nonlocal told
            parts = sorted((part for part in self.found[told:] if len(part[1])), key=lambda part: part[0])
            told = len(self.found)
            if each is not None and parts:
                each(np.concatenate([part[1] for part in parts]), np.concatenate([part[3] for part in parts]))

        if self.workers is not None:
            self._feed()
            while self.waiting:  # this process derives the newest, the workers take the oldest
                tell()
                self._derive_newest()
                self._feed()
            self.workers.no_more()
            for number, found in self.workers.collect(wait=True, between=tell):
                self._keep(self.firsts[number], found)
        tell()
        self.close()
        self.found.sort(key=lambda part: part[0])  # batches are kept out of order with more jobs
        parts = [part[1:] for part in self.found] or [(np.empty(0, np.int64), np.empty(0, KEY_DTYPE), np.empty((0, 16), np.uint8))]
        return HeardKeys(
            rows=np.concatenate([p[0] for p in parts]).astype(np.int64),
            keys=np.concatenate([p[1] for p in parts]),
            rpis=np.concatenate([p[2] for p in parts]).reshape(-1, 16),
            count=self.count,
            span=span,
        )


def _joined(pieces: list[np.ndarray], slot: np.ndarray | None = None) -> np.ndarray:
    """The pieces as one array: joined in ``slot`` when given, else a piece alone as it is."""
    if slot is not None:
        return np.concatenate(pieces, out=slot[: sum(len(piece) for piece in pieces)])
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


class BufferedStream:
    """A ``KeySink`` keeping a file's keys while they are at most ``limit``, and handing them to the
    ``KeyStream`` that ``start`` opens (once): when there are more (from then on none is kept), or,
    with ``ready``, as soon as ``ready()`` says the stream can start (the store has been read) and
    ``early`` keys have come, which go to it at once as a first batch (short of a whole one); those are
    kept too while they are at most ``limit`` (``whole``)."""

    def __init__(
        self, start: Callable[[], KeyStream], limit: int = BUFFER_KEYS, ready: Callable[[], bool] | None = None, early: int | None = None
    ) -> None:
        self.start = start
        self.limit = limit
        self.ready = ready
        # an eighth of a batch by default (the first piece of a file, ~2 ms of parsing): the workers start
        # on it while this process parses the next batch, not after it
        self.early = EARLY_BATCH // 8 if early is None else early
        self.stream: KeyStream | None = None
        self.buffered: list[np.ndarray] = []
        self.count = 0

    @property
    def whole(self) -> bool:
        """Whether every key given so far is kept (``keys``)."""
        return self.count <= self.limit

    def add(self, keys: np.ndarray) -> None:
        self.count += len(keys)
        early = self.stream is None and self.whole and self.ready is not None and self.count >= self.early and self.ready()
        if self.stream is None and (not self.whole or early):
            self.stream = self.start()
            for part in self.buffered:
                self.stream.add(part)
        if self.stream is not None:
            self.stream.add(keys)
            if early:
                self.stream.flush()  # the keys so far as a first batch, short of a whole one
        if self.whole:
            self.buffered.append(keys)
        else:
            self.buffered = []

    def restart(self) -> None:
        self.buffered, self.count = [], 0
        if self.stream is not None:
            self.stream.restart()

    def keys(self) -> np.ndarray:
        """The keys kept (all of the file's, when ``whole``)."""
        return np.concatenate(self.buffered) if self.buffered else np.empty(0, KEY_DTYPE)


class _Revised:
    """A ``KeySink`` telling which ``revised`` keys are also among a file's keys."""

    def __init__(self, revised: np.ndarray) -> None:
        self.revised = np.ascontiguousarray(revised["key"])
        self.restart()

    def add(self, keys: np.ndarray) -> None:
        self.known |= np.isin(self.revised, keys["key"])
        self.count += len(keys)

    def restart(self) -> None:
        self.known = np.zeros(len(self.revised), bool)
        self.count = 0


def revising(
    path: str | Path,
    revised: np.ndarray,
    count: int,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_id: str | None = None,
) -> np.ndarray:
    """Which ``revised`` keys revise a key of the file at ``path`` (holding ``count`` keys), read
    again as a stream (and verified again with ``public_key``, as it was the first time).

    ``apply_revisions`` needs it: a revised key that is not among the file's keys is a key of its
    own (published in an earlier file), appended after them."""
    from bluezone.keyformat.keyfile import stream_keys  # as check.py: imported once a check is under way

    sink = _Revised(revised)
    stream_keys(path, sink, public_key, key_id)
    if sink.count != count:
        raise KeyFileError(f"{path}: the key file changed while it was read ({count} keys, then {sink.count})")
    return sink.known


def span_of(first_interval: int, end_interval: int) -> tuple[float, float]:
    """``check.sightings_span`` of keys valid from ``first_interval`` to before ``end_interval``."""
    return (
        float((first_interval - TOLERANCE_INTERVALS) * INTERVAL_SECONDS),
        float((end_interval + TOLERANCE_INTERVALS) * INTERVAL_SECONDS),
    )
