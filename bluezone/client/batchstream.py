"""A check's new batches matched as they arrive, in memory that does not grow with them.

A node away for days meets millions of keys a day (6M at national scale, ~200 MB as ``KEY_DTYPE``
a day).  Joined before matching, a check held them all, twice while joining.  Here each batch's
keys go, as it is read, to a ``KeyStream`` (derived against every RPI the store heard; only the few
keys that sent one are kept) and to a ``spool.BucketSpool`` on disk (by the key's first two bytes).
What must span batches is answered at the end from the spool, one part (a range of those two bytes)
at a time, beside the same part of the revisions' spool (so a key and all its copies and revisions
meet in one small array):
which keys are copies of an earlier one (a file replayed under another name; the first is kept, as
``check._first_of_each`` keeps it), which revisions revise a key of these batches
(``revisions.settle``), how many keys there are, how many are revoked, and the span they cover.
Memory: the stream's queue (``keystream.BUFFER_KEYS`` keys at most), one part (``spool.PART_RECORDS``
keys and revisions), the keys found; disk: ``SPOOL_DTYPE.itemsize`` (33) bytes a key, and 8 bytes a
copy (their rows: ``spool.RowSpool``), deleted at the end.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from bluezone.client.revisions import EarlierRevisions, RevisionSpool, as_keys, settle, widest_span
from bluezone.client.spool import BucketSpool, RowSpool, among, first_of_each, part_ends
from bluezone.keyformat.export import apply_revisions
from bluezone.keyformat.keys import KEY_DTYPE, REPORT_TYPE_REVOKED
from bluezone.matching.check import sightings_span
from bluezone.matching.keystream import HeardKeys, KeyStream
from bluezone.matching.matcher import HeardIndex

#: What the spool keeps of a key: enough to tell copies apart, apply a revision and find the span.
SPOOL_DTYPE = np.dtype(
    [("key", "V16"), ("rolling_start", "<i4"), ("rolling_period", "<i4"), ("report_type", "i1"), ("row", "<i8")]
)


@dataclass(frozen=True)
class StreamedKeys:
    """What the batches held, as ``check_server`` would find it in their keys joined (copies
    dropped, revisions applied), without them: counts, spans and the keys that sent a heard RPI."""

    count: int  # distinct keys
    revoked: int  # of them, revoked once revised
    span: tuple[float, float] | None  # ``sightings_span`` of all of them
    usable_span: tuple[float, float] | None  # of those not revoked
    keys: np.ndarray  # KEY_DTYPE: the distinct keys that sent a heard RPI, revised
    key_index: np.ndarray  # int64: their index in the joined keys (copies dropped)
    rpis: np.ndarray  # uint8 (m, 16): the heard RPIs they sent


class BatchStream:
    """The keys of a check's batches, given in order with ``add``; ``finish`` tells what they held."""

    def __init__(self, heard: HeardIndex, jobs: int = 1, batch: int | None = None) -> None:
        self.stream = KeyStream(heard, jobs, batch)
        try:
            self._spool = BucketSpool(SPOOL_DTYPE, "keys")
        except BaseException:
            self.stream.close()
            raise

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def count(self) -> int:
        """Keys given so far."""
        return self._spool.count

    def close(self) -> None:
        """Stop the workers and delete the spool (again: nothing more)."""
        self.stream.close()
        self._spool.close()

    def add(self, keys: np.ndarray) -> None:
        """The next batch's keys (its ``keys``, not its revisions)."""
        if not len(keys):
            return
        keys = np.ascontiguousarray(keys, KEY_DTYPE)
        self.stream.add(keys)
        records = np.empty(len(keys), SPOOL_DTYPE)
        for name in ("key", "rolling_start", "rolling_period", "report_type"):
            records[name] = keys[name]
        records["row"] = np.arange(self.count, self.count + len(keys))
        self._spool.add(records)

    def finish(self, revisions: RevisionSpool, earlier: EarlierRevisions, told: AbstractSet[bytes] = frozenset()) -> StreamedKeys:
        """What the batches held, given every revision of the check (``revisions``, finished): those that
        revise a key of these batches and not one an earlier check ``told`` of (key hashes) are applied
        here, the others go to ``earlier``."""
        found = self.stream.finish()
        self._spool.finish()
        with RowSpool("keys") as copies:  # the rows of copies of an earlier key: none but a replayed file's
            return self._settle(found, revisions, earlier, told, copies)

    def _settle(
        self, found: HeardKeys, revisions: RevisionSpool, earlier: EarlierRevisions, told: AbstractSet[bytes], copies: RowSpool
    ) -> StreamedKeys:
        """``finish``'s reading of the spools, a part at a time."""
        found_revisions: list[np.ndarray] = []  # those applied to a key found (to apply to ``found.keys``)
        count = revoked = 0
        span: tuple[float, float] | None = None
        usable_span: tuple[float, float] | None = None
        for end in part_ends(self._spool, revisions):
            keys, revised = self._spool.read_upto(end), revisions.read_upto(end)
            if len(keys):
                first = first_of_each(keys)
                if not first.all():
                    copies.add(keys["row"][~first])
                    keys = keys[first]
            known = settle(revised, keys, told)
            earlier.add(revised, applied=known)
            if not len(keys):
                continue
            if known.any():
                applied = as_keys(revised[known])
                found_revisions.append(applied[among(applied, found.keys)])
                keys = apply_revisions(as_keys(keys), applied)  # each revises one of ``keys``: none appended
            is_revoked = keys["report_type"] == REPORT_TYPE_REVOKED
            count, revoked = count + len(keys), revoked + int(is_revoked.sum())
            span = widest_span([span, sightings_span(keys)])
            usable_span = widest_span([usable_span, sightings_span(keys[~is_revoked] if is_revoked.any() else keys)])
        self._spool.close()  # its disk given back now, not when the check ends
        is_copy, copies_before = copies.among_before(found.rows)
        rows, keys = found.rows[~is_copy], found.keys[~is_copy]
        if found_revisions:
            keys = apply_revisions(keys, np.concatenate(found_revisions))[: len(keys)]
        return StreamedKeys(
            count=count,
            revoked=revoked,
            span=span,
            usable_span=usable_span,
            keys=keys,
            key_index=rows - copies_before[~is_copy],
            rpis=found.rpis,
        )
