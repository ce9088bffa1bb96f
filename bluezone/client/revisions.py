"""A check's revisions (keys re-published with a new report type) in memory that does not grow with them.

A file's ``revised_keys`` revise keys of the same check's batches (applied before matching) or keys
an earlier check downloaded (withdrawn when revoked, updated when confirmed: matched, and what was
told changed).  A check used to join every file's revisions and keep the earlier ones whole to match
them: ~75 bytes a revision.  Here they go to a ``BucketSpool`` (in memory while few, on disk past
``IN_MEMORY``) and come back a part (a range of the key's first two bytes) at a time beside the same
part of the keys (``settle``); of those that revise an earlier check's keys (``EarlierRevisions``)
only ``EARLIER_IN_MEMORY`` are kept whole, past that only the few that sent an RPI the store heard
(the others can match nothing), each with its row among all of them (counted at the end from their
rows, spooled as a ``RowSpool``), so the report (and what is remembered) is the same to the row.
Memory past the budgets does not grow with the revisions (24 bytes a spool write of at least
``IN_MEMORY`` aside: docs/benchmarks.md, "Seventeenth session"); on disk, 41 bytes a revision (and
16 bytes a prefix's bounds a write) and 8 bytes a row of an earlier check's key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from bluezone.client.exposures import CERTAINTY, Keys, told_among
from bluezone.client.spool import BucketSpool, RowSpool, among, first_of_each, part_ends, prefix_of
from bluezone.keyformat.keys import KEY_DTYPE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.check import sightings_span
from bluezone.matching.matcher import HeardIndex, keys_heard

#: A revision as spooled: the key as published again, and its row among the check's revisions (in the
#: order they came, copies included), so that each key's keep their order.
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
    """Every file's revisions, given in order with ``add``; after ``finish``, each part's distinct
    ones (``read_upto``: the first of each key, as ``check._first_of_each`` of them all keeps it)."""

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

    @property
    def counts(self) -> np.ndarray:
        """Revisions of each prefix, copies included (``BucketSpool.counts``), after ``finish``."""
        return self._spool.counts

    def read_upto(self, end: int) -> np.ndarray:
        """The distinct revisions of the next part (``BucketSpool.read_upto``), each key's first."""
        return _distinct(self._spool.read_upto(end))

    def held(self) -> np.ndarray | None:
        """Every distinct revision (by prefix, each key's in the order they came) where they never went
        to disk (few: settled at once rather than a part at a time), else None."""
        records = self._spool.held()
        return None if records is None else _distinct(records)


def _distinct(records: np.ndarray) -> np.ndarray:
    """One revision of each key: the first where they agree, else the most certain (in their order: a check may
    fetch both files of a key revised twice)."""
    keep = first_of_each(records)
    if keep.all():
        return records
    order = np.argsort(-CERTAINTY[records["report_type"].astype(np.uint8)], kind="stable")
    keep[order] = first_of_each(records[order])
    return records[keep]


def beside_keys(plain: np.ndarray, revisions: RevisionSpool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(distinct revisions, the keys of ``plain`` they may revise) of ``revisions`` (finished) and the keys
    joined (each once, at most ``buffer_keys``): all of both where the revisions are in memory, else a
    part at a time beside the keys of the same prefixes."""
    held = revisions.held()
    if held is not None:
        if len(held):
            yield held, plain
        return
    of_plain = prefix_of(plain)
    order = np.argsort(of_plain, kind="stable")
    of_plain = of_plain[order]
    start = 0
    for end in part_ends(revisions):
        revised = revisions.read_upto(end)
        if len(revised):
            lo, hi = np.searchsorted(of_plain, [start, end]).tolist()
            yield revised, plain[order[lo:hi]]
        start = end


def settle(revisions: np.ndarray, keys: np.ndarray, told: AbstractSet[bytes]) -> np.ndarray:
    """Which of ``revisions`` (one part's) revise one of ``keys`` (the same part's keys of this check)
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
    """The distinct revisions that ``settle`` did not apply (given a part at a time with ``add``):
    counted, their spans kept, and kept whole while at most ``budget``; past it only those whose
    RPIs ``heard()`` holds (None: no index to look in, all are kept), looked up exactly ``budget`` of
    a kind at a time, as they come (so a group, the part being cut and fewer than a budget of each
    kind waiting are held, whatever the number before).  Each one's row among the check's revisions
    is spooled (``RowSpool``: 8 bytes on disk, not two bits in memory) to tell, at the end, the row of
    each kept one among all of its kind."""

    def __init__(self, heard: Callable[[], HeardIndex | None], budget: int | None = None) -> None:
        self._heard = heard
        self._budget = EARLIER_IN_MEMORY if budget is None else budget
        self._index: HeardIndex | None = None
        self._asked = False  # whether ``heard`` was called: once
        # per kind (withdrawn: True, updated: False): the rows of all of them; those not yet looked up
        # (rows, keys), and how many; those looked up and heard (rows, keys, the RPIs heard)
        self._rows = {kind: RowSpool("revisions") for kind in (True, False)}
        self._waiting: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {True: [], False: []}
        self._waiting_count = {True: 0, False: 0}
        self._found: dict[bool, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {True: [], False: []}
        self._spans: dict[bool, tuple[float, float] | None] = {True: None, False: None}
        self._counts = {True: 0, False: 0}
        self.distinct = 0  # revisions given, these and those applied

    def __enter__(self) -> EarlierRevisions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the rows' spools (again: nothing more)."""
        for rows in self._rows.values():
            rows.close()

    def add(self, records: np.ndarray, applied: np.ndarray | None = None) -> None:
        """One part's distinct revisions (REVISION_DTYPE); those ``applied`` (bool, ``settle``) to
        this check's keys are only counted.  No copy of the part where one is not needed."""
        self.distinct += len(records)
        if applied is not None and applied.any():
            records = records[~applied]
        revoked = records["report_type"] == REPORT_TYPE_REVOKED
        n_revoked = int(np.count_nonzero(revoked))
        for kind, count in ((True, n_revoked), (False, len(records) - n_revoked)):
            if not count:
                continue
            part = records if count == len(records) else records[revoked == kind]
            self._rows[kind].add(part["row"])
            self._counts[kind] += len(part)
            self._spans[kind] = widest_span([self._spans[kind], sightings_span(part)])
            keys = as_keys(part)
            if kind:
                keys["report_type"] = 0  # matched as they were reported before
            self._wait(kind, part["row"].copy(), keys)  # not a view: it would keep the whole part

    def _wait(self, kind: bool, rows: np.ndarray, keys: np.ndarray) -> None:
        self._waiting[kind].append((rows, keys))
        self._waiting_count[kind] += len(rows)
        if not self._asked and sum(self._waiting_count.values()) > self._budget:
            self._asked, self._index = True, self._heard()
        if self._index is not None and self._waiting_count[kind] >= max(self._budget, 1):
            self._look_up(kind, whole_groups=True)

    def _look_up(self, kind: bool, whole_groups: bool = False) -> None:
        """Of the ``kind``'s waiting keys, keep only those whose RPIs the store heard: looked up together,
        ``budget`` at a time (a bucket's few hundred a call cost a call's overhead 256 times; the budget
        and a bucket in one call made the lookup's memory grow with a bucket, so with the revisions: the
        steps in tracemalloc's peak, docs/benchmarks.md "Sixteenth session").  With ``whole_groups`` the
        last group short of ``budget`` waits for more (a copy: a view would keep its part)."""
        assert self._index is not None
        size = max(self._budget, 1)
        waiting, self._waiting[kind], self._waiting_count[kind] = self._waiting[kind], [], 0
        for rows, keys in _in_groups(waiting, size):
            if whole_groups and len(rows) < size:
                self._waiting[kind], self._waiting_count[kind] = [(rows, keys)], len(rows)
                continue
            found, rpis = keys_heard(keys, self._index)
            if len(found):  # most groups keep none: an empty part a group would grow with the revisions
                self._found[kind].append((rows[found], keys[found], rpis))

    def finish(self) -> tuple[RevisedSet, RevisedSet]:
        """(withdrawn, updated): revoked ones and the others."""
        if self._index is not None:
            self._look_up(True)
            self._look_up(False)
        return self._set(True), self._set(False)

    def _set(self, kind: bool) -> RevisedSet:
        parts = self._found[kind] if self._index is not None else [(r, k, None) for r, k in self._waiting[kind]]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        keys = np.concatenate([p[1] for p in parts]) if parts else empty_keys(0)
        order = np.argsort(rows, kind="stable")
        rows, keys = rows[order], keys[order]
        count, span = self._counts[kind], self._spans[kind]
        if self._index is None:
            return RevisedSet(keys, np.arange(len(keys), dtype=np.int64), None, count, span)
        rpis = np.concatenate([p[2] for p in self._found[kind]] or [np.zeros((0, 16), np.uint8)]).reshape(-1, 16)
        return RevisedSet(keys, self._rows[kind].among_before(rows)[1], rpis, count, span)


def _in_groups(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (rows, keys) of ``parts`` in order, joined ``size`` at a time (the last may hold fewer); each
    part leaves ``parts`` as it is cut, and a group's pieces are let go before it is yielded, so while a
    group is looked up only it and the part being cut are held (not what waited before)."""
    parts.reverse()
    rows: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    held = 0
    while parts:
        part_rows, part_keys = parts.pop()
        at = 0
        while at < len(part_rows):
            take = min(size - held, len(part_rows) - at)
            rows.append(part_rows[at : at + take])
            keys.append(part_keys[at : at + take])
            held, at = held + take, at + take
            if held == size:
                group = np.concatenate(rows), np.concatenate(keys)
                rows, keys, held = [], [], 0
                yield group
    if held:
        group = np.concatenate(rows), np.concatenate(keys)
        rows, keys = [], []
        yield group


def widest_span(spans: Iterable[tuple[float, float] | None]) -> tuple[float, float] | None:
    """The span from the earliest start to the latest end of ``spans`` (None where none is given)."""
    given = [s for s in spans if s is not None]
    return (min(s[0] for s in given), max(s[1] for s in given)) if given else None
