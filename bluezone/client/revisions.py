"""A check's revisions (keys re-published with a new report type) in memory that does not grow with them.

A file's ``revised_keys`` revise keys of the same check's batches (applied before matching) or keys
an earlier check downloaded (withdrawn when revoked, updated when confirmed: matched, and what was
told changed).  A check used to join every file's revisions and keep the earlier ones whole to match
them: ~75 bytes a revision.  Here they go to a ``BucketSpool`` (in memory while few, on disk past
``IN_MEMORY``) and come back one bucket at a time beside that bucket's keys (``settle``); of those
that revise an earlier check's keys (``EarlierRevisions``) only ``EARLIER_IN_MEMORY`` are kept whole,
past that only the few that sent an RPI the store heard (the others can match nothing), each with its
row among all of them, so the report (and what is remembered) is the same to the row.  What grows in
memory past the budgets is ~0.6 bytes a revision: two bits (which are withdrawn, which updated), one
bucket in flight (1/256 of them) and 2 KB of bounds a spool write; on disk, 41 bytes a revision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from bluezone.client.exposures import Keys, told_among
from bluezone.client.spool import BucketSpool, among, first_of_each, set_before, set_bits
from bluezone.keyformat.keys import KEY_DTYPE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.check import sightings_span
from bluezone.matching.matcher import HeardIndex, keys_heard

#: A revision as spooled: the key as published again, and its row among the check's revisions (in the
#: order they came, copies included), so that every bucket's keep their order.
REVISION_DTYPE = np.dtype(KEY_DTYPE.descr + [("row", "<i8")])
#: Revisions held in memory before the spool goes to disk (2.7 MB): a real day has few.
IN_MEMORY = 1 << 16
#: Revisions of earlier checks' keys kept whole (2.2 MB): past that only those the store heard.
EARLIER_IN_MEMORY = 1 << 16


def as_keys(records: np.ndarray) -> np.ndarray:
    """``records`` (any spooled dtype) as KEY_DTYPE, the fields they lack left as ``empty_keys`` has them."""
    keys = empty_keys(len(records))
    for name in KEY_DTYPE.names or ():
        if name in (records.dtype.names or ()):
            keys[name] = records[name]
    return keys


class RevisionSpool:
    """Every file's revisions, given in order with ``add``; after ``finish``, each bucket's distinct
    ones (``bucket``: the first of each key, as ``check._first_of_each`` of them all keeps it)."""

    def __init__(self) -> None:
        self._spool = BucketSpool(REVISION_DTYPE, "revisions", lazy=True, write_records=IN_MEMORY)

    def __enter__(self) -> RevisionSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spool; again: nothing more."""
        self._spool.close()

    @property
    def count(self) -> int:
        """Revisions given so far, copies included."""
        return self._spool.count

    @property
    def on_disk(self) -> bool:
        return self._spool.on_disk

    def add(self, revised: np.ndarray) -> None:
        """A file's ``revised_keys`` (KEY_DTYPE)."""
        records = np.empty(len(revised), REVISION_DTYPE)
        for name in KEY_DTYPE.names or ():
            records[name] = revised[name]
        records["row"] = np.arange(self.count, self.count + len(revised))
        self._spool.add(records)

    def finish(self) -> None:
        self._spool.finish()

    def bucket(self, b: int) -> np.ndarray:
        """Bucket ``b``'s distinct revisions, in the order they came."""
        return _distinct(self._spool.bucket(b))

    def held(self) -> np.ndarray | None:
        """Every distinct revision (by bucket, each bucket's in the order they came) where they never went
        to disk (few: settled at once rather than a bucket at a time), else None."""
        records = self._spool.held()
        return None if records is None else _distinct(records)

    def nonempty(self) -> list[int]:
        """The buckets holding a revision."""
        return self._spool.nonempty()


def _distinct(records: np.ndarray) -> np.ndarray:
    keep = first_of_each(records)
    return records if keep.all() else records[keep]


def settle(revisions: np.ndarray, keys: np.ndarray, told: AbstractSet[bytes]) -> np.ndarray:
    """Which of ``revisions`` (one bucket's) revise one of ``keys`` (the same bucket's keys of this check)
    and are applied to it (bool); the others revise a key of an earlier check, or one it told of
    (``told``: hashes of keys an earlier check reported), and change what was told."""
    return among(revisions, keys) & ~told_among(revisions, told)


@dataclass(frozen=True)
class RevisedSet:
    """Revisions of an earlier check's keys of one kind (withdrawn or updated), as a check matches them:
    all of them in the order they came (``rpis`` None), or only those that sent an RPI the store heard
    (``rpis``: those RPIs), each at its ``index`` among all of them."""

    keys: np.ndarray  # KEY_DTYPE; withdrawn ones as they were reported before (report type 0)
    index: np.ndarray  # int64, ascending: each one's row among all of the set
    rpis: np.ndarray | None  # uint8 (m, 16)
    count: int  # all of the set
    span: tuple[float, float] | None  # ``sightings_span`` of all of the set

    @property
    def whole(self) -> bool:
        return self.rpis is None

    @property
    def by_index(self) -> Keys:
        """The keys by their row among all of the set (what ``ExposureMemory`` takes)."""
        return self.keys if self.whole else dict(zip(self.index.tolist(), self.keys["key"]))


class EarlierRevisions:
    """The distinct revisions that ``settle`` did not apply (given a bucket at a time with ``add``):
    counted, their spans kept, and kept whole while at most ``budget``; past it only those whose
    RPIs ``heard()`` holds (None: no index to look in, all are kept), looked up ``budget`` of a kind
    at a time (so at most a budget of each kind and a bucket wait)."""

    def __init__(self, total: int, heard: Callable[[], HeardIndex | None], budget: int | None = None) -> None:
        self._heard = heard
        self._budget = EARLIER_IN_MEMORY if budget is None else budget
        self._index: HeardIndex | None = None
        self._asked = False  # whether ``heard`` was called: once
        self._unsieved = {True: 0, False: 0}  # per kind: kept and not yet looked up
        # per kind (withdrawn: True, updated: False): one bit a revision of the check (its row), the parts kept
        self._bits = {kind: np.zeros((total + 7) // 8, np.uint8) for kind in (True, False)}
        self._kept: dict[bool, list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {True: [], False: []}
        self._spans: dict[bool, list[tuple[float, float] | None]] = {True: [], False: []}
        self._counts = {True: 0, False: 0}
        self.distinct = 0  # revisions given, these and those applied

    def add(self, records: np.ndarray, applied: np.ndarray | None = None) -> None:
        """One bucket's distinct revisions (REVISION_DTYPE); those ``applied`` (bool, ``settle``) to
        this check's keys are only counted.  No copy of the bucket where one is not needed: a copy
        costs 1/256 of the revisions, and a bucket grows with them."""
        self.distinct += len(records)
        if applied is not None and applied.any():
            records = records[~applied]
        revoked = records["report_type"] == REPORT_TYPE_REVOKED
        n_revoked = int(np.count_nonzero(revoked))
        for kind, count in ((True, n_revoked), (False, len(records) - n_revoked)):
            if not count:
                continue
            part = records if count == len(records) else records[revoked == kind]
            set_bits(self._bits[kind], part["row"])
            self._counts[kind] += len(part)
            self._spans[kind].append(sightings_span(part))
            keys = as_keys(part)
            if kind:
                keys["report_type"] = 0  # matched as they were reported before
            self._keep(kind, part["row"].copy(), keys)  # not a view: it would keep the whole bucket

    def _keep(self, kind: bool, rows: np.ndarray, keys: np.ndarray) -> None:
        self._kept[kind].append((rows, keys, None))
        self._unsieved[kind] += len(rows)
        if not self._asked and sum(self._unsieved.values()) > self._budget:
            self._asked, self._index = True, self._heard()
        if self._index is not None and self._unsieved[kind] >= max(self._budget, 1):
            self._sieve(kind, whole_groups=True)

    def _sieve(self, kind: bool, whole_groups: bool = False) -> None:
        """Of the ``kind``'s parts not yet looked up, keep only the keys whose RPIs the store heard:
        looked up together, ``budget`` at a time (a bucket's few hundred a call cost a call's overhead
        256 times; the budget and a bucket in one call made the lookup's memory grow with a bucket, so
        with the revisions: the steps in tracemalloc's peak, docs/benchmarks.md "Sixteenth session").
        With ``whole_groups`` the last group short of ``budget`` waits for more."""
        assert self._index is not None
        size, self._unsieved[kind] = max(self._budget, 1), 0
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = [p for p in self._kept[kind] if p[2] is not None]
        for rows, keys in _in_groups([(p[0], p[1]) for p in self._kept[kind] if p[2] is None], size):
            if whole_groups and len(rows) < size:
                kept.append((rows, keys, None))
                self._unsieved[kind] = len(rows)
                continue
            found, rpis = keys_heard(keys, self._index)
            if len(found):  # most groups keep none: an empty part a group would grow with the revisions
                kept.append((rows[found], keys[found], rpis))
        self._kept[kind] = kept

    def finish(self) -> tuple[RevisedSet, RevisedSet]:
        """(withdrawn, updated): revoked ones and the others."""
        if self._index is not None:
            self._sieve(True)
            self._sieve(False)
        return self._set(True), self._set(False)

    def _set(self, kind: bool) -> RevisedSet:
        parts = self._kept[kind]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        keys = np.concatenate([p[1] for p in parts]) if parts else empty_keys(0)
        order = np.argsort(rows, kind="stable")
        rows, keys = rows[order], keys[order]
        count, span = self._counts[kind], widest_span(self._spans[kind])
        if self._index is None:
            return RevisedSet(keys, np.arange(len(keys), dtype=np.int64), None, count, span)
        rpis = np.concatenate([p[2] for p in parts if p[2] is not None] or [np.zeros((0, 16), np.uint8)]).reshape(-1, 16)
        return RevisedSet(keys, set_before(self._bits[kind], rows), rpis, count, span)


def _in_groups(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (rows, keys) of ``parts`` in order, joined ``size`` at a time (the last may hold fewer)."""
    rows: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    held = 0
    for part_rows, part_keys in parts:
        at = 0
        while at < len(part_rows):
            take = min(size - held, len(part_rows) - at)
            rows.append(part_rows[at : at + take])
            keys.append(part_keys[at : at + take])
            held, at = held + take, at + take
            if held == size:
                yield np.concatenate(rows), np.concatenate(keys)
                rows, keys, held = [], [], 0
    if held:
        yield np.concatenate(rows), np.concatenate(keys)


def widest_span(spans: Iterable[tuple[float, float] | None]) -> tuple[float, float] | None:
    """The span from the earliest start to the latest end of ``spans`` (None where none is given)."""
    given = [s for s in spans if s is not None]
    return (min(s[0] for s in given), max(s[1] for s in given)) if given else None
