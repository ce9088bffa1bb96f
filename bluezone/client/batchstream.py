"""A check's new batches matched as they arrive, in memory that does not grow with them.

A node away for days meets millions of keys a day (6M at national scale, ~200 MB as ``KEY_DTYPE``
a day).  Joined before matching, a check held them all, twice while joining.  Here each batch's
keys go, as it is read, to a ``KeyStream`` (derived against every RPI the store heard; only the few
keys that sent one are kept) and to a spool on disk: one file, each write of it cut into ``BUCKETS``
runs by the key's first byte (one open file, not a file a bucket: macOS allows a process 256).
What must span batches is answered at the end from the spool, one bucket at a time (so a key
and all its copies and revisions meet in one small array): which keys are copies of an earlier one
(a file replayed under another name; the first is kept, as ``check._first_of_each`` keeps it), which
revisions revise a key of these batches, how many keys there are, how many are revoked, and the span
they cover.  Memory: the stream's queue (``keystream.BUFFER_KEYS`` keys at most), one bucket, one bit
a key (copies), the revisions; disk: ``SPOOL_DTYPE.itemsize`` (33) bytes a key, deleted at the end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import numpy as np

from bluezone.errors import BluezoneError
from bluezone.keyformat.export import apply_revisions
from bluezone.keyformat.keys import KEY_DTYPE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.check import sightings_span
from bluezone.matching.keystream import KeyStream
from bluezone.matching.matcher import HeardIndex

#: What the spool keeps of a key: enough to tell copies apart, apply a revision and find the span.
SPOOL_DTYPE = np.dtype(
    [("key", "V16"), ("rolling_start", "<i4"), ("rolling_period", "<i4"), ("report_type", "i1"), ("row", "<i8")]
)
#: Spool buckets, by the key's first byte: 84M keys (14 days of 6M) are ~330,000 (11 MB) a bucket.
BUCKETS = 256
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
#: Records gathered before they are written (8 MB): the spool is written in a few large appends.
WRITE_KEYS = 1 << 18
_BLOCK = 1 << 12  # bytes of the copy bitmap summed together when counting copies before a row


@dataclass(frozen=True)
class StreamedKeys:
    """What the batches held, as ``check_server`` would find it in their keys joined (copies
    dropped, revisions applied), without them: counts, spans and the keys that sent a heard RPI."""

    count: int  # distinct keys
    revoked: int  # of them, revoked once revised
    span: tuple[float, float] | None  # ``sightings_span`` of all of them
    usable_span: tuple[float, float] | None  # of those not revoked
    earlier: np.ndarray  # bool, per revision given to ``finish``: it revises no key of these batches, or what was told
    keys: np.ndarray  # KEY_DTYPE: the distinct keys that sent a heard RPI, revised
    key_index: np.ndarray  # int64: their index in the joined keys (copies dropped)
    rpis: np.ndarray  # uint8 (m, 16): the heard RPIs they sent


class BatchStream:
    """The keys of a check's batches, given in order with ``add``; ``finish`` tells what they held."""

    def __init__(self, heard: HeardIndex, jobs: int = 1, batch: int | None = None) -> None:
        self.stream = KeyStream(heard, jobs, batch)
        self.count = 0
        self._pending: list[np.ndarray] = []  # records not yet written: written together, a few MB at a time
        self._pending_count = 0
        self._where = spool_directory() or tempfile.gettempdir()
        # each write's records sorted by bucket and appended whole: where each bucket's run of each write lies
        self._runs: list[tuple[int, np.ndarray]] = []  # (offset of the write, its BUCKETS + 1 bounds in records)
        self._size = 0
        try:
            # nameless once made (O_TMPFILE, or unlinked at once): a check killed mid-way leaves no gigabytes behind
            self._file: IO[bytes] = tempfile.TemporaryFile(prefix="bluezone-check-", dir=self._where)
        except OSError as exc:
            self.stream.close()
            raise self._spool_error(exc) from None

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and delete the spool (again: nothing more)."""
        self.stream.close()
        self._file.close()

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
        self.count += len(keys)
        self._pending.append(records)
        self._pending_count += len(records)
        if self._pending_count >= WRITE_KEYS:
            self._write()

    def _write(self) -> None:
        """The records given since the last write, appended in one piece sorted by bucket."""
        if not self._pending:
            return
        records = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_count = [], 0
        buckets = _bucket_of(records)
        # a radix sort, each bucket's rows kept in order; taken as plain bytes (a structured take is 10x slower)
        order = np.argsort(buckets, kind="stable")
        records = np.take(records.view(np.uint8).reshape(len(records), -1), order, axis=0).view(SPOOL_DTYPE).reshape(-1)
        bounds = np.concatenate([[0], np.cumsum(np.bincount(buckets, minlength=BUCKETS))])
        try:
            records.tofile(self._file)
        except OSError as exc:
            raise self._spool_error(exc) from None
        self._runs.append((self._size, bounds))
        self._size += records.nbytes

    def _read_bucket(self, b: int) -> np.ndarray:
        """Bucket ``b``'s records, its runs read in the order they were written (so rows ascend)."""
        size = SPOOL_DTYPE.itemsize
        keys = np.empty(sum(int(bounds[b + 1] - bounds[b]) for _, bounds in self._runs), SPOOL_DTYPE)
        into, at = keys.view(np.uint8), 0
        try:
            for offset, bounds in self._runs:
                n = int(bounds[b + 1] - bounds[b]) * size
                if n:
                    self._file.seek(offset + int(bounds[b]) * size)
                    run = self._file.read(n)
                    if len(run) != n:
                        raise OSError(0, "the spool was cut short")
                    into[at : at + n] = np.frombuffer(run, np.uint8)
                    at += n
        except OSError as exc:
            raise self._spool_error(exc) from None
        return keys

    def _spool_error(self, exc: OSError) -> BluezoneError:
        """One line for a spool that cannot be made or written (a full disk): where, and what to do."""
        return BluezoneError(
            # numpy's short write ("1214 requested and 124 written") has no errno: the disk (or a quota) is full
            f"cannot write the check's spool in {self._where}: {exc.strerror or 'no room left'} ({self.count:,} keys so far,"
            f" {SPOOL_DTYPE.itemsize} bytes each): make room there, or set TMPDIR to a directory with more"
        )

    def finish(self, revised: np.ndarray, told: np.ndarray | None = None) -> StreamedKeys:
        """What the batches held, given ``revised``: the revisions of all of them, each key once;
        those ``told`` (bool) revise what an earlier check reported, and are not applied here."""
        found = self.stream.finish()
        self._write()
        copies = np.zeros((self.count + 7) // 8, np.uint8)  # one bit a row: a copy of an earlier key
        earlier = np.ones(len(revised), bool)
        applicable = np.ones(len(revised), bool) if told is None else ~np.asarray(told, bool)
        revised_bucket = _bucket_of(revised).astype(np.intp)
        count = revoked = 0
        spans: list[tuple[float, float] | None] = []
        usable_spans: list[tuple[float, float] | None] = []
        try:
            self._file.flush()
        except OSError as exc:
            raise self._spool_error(exc) from None
        for b in range(BUCKETS):
            keys = self._read_bucket(b)
            if not len(keys):
                continue
            first = first_of_each(keys)
            if not first.all():
                rows = keys["row"][~first]
                np.bitwise_or.at(copies, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
                keys = keys[first]
            mine = np.flatnonzero((revised_bucket == b) & applicable)
            if len(mine):
                known = mine[_among(revised[mine], keys)]
                earlier[known] = False
                whole = empty_keys(len(keys))
                for name in ("key", "rolling_start", "rolling_period", "report_type"):
                    whole[name] = keys[name]
                keys = apply_revisions(whole, revised[known])  # each of ``known`` revises one of ``keys``: none appended
            is_revoked = keys["report_type"] == REPORT_TYPE_REVOKED
            count, revoked = count + len(keys), revoked + int(is_revoked.sum())
            spans.append(sightings_span(keys))
            usable_spans.append(sightings_span(keys[~is_revoked] if is_revoked.any() else keys))
        self._file.close()  # its disk given back now, not when the check ends
        is_copy = (copies[found.rows >> 3] >> (found.rows & 7)) & 1 == 1
        rows, keys = found.rows[~is_copy], found.keys[~is_copy]
        keys = apply_revisions(keys, revised[~earlier])[: len(keys)]
        return StreamedKeys(
            count=count,
            revoked=revoked,
            span=widest_span(spans),
            usable_span=widest_span(usable_spans),
            earlier=earlier,
            keys=keys,
            key_index=rows - _set_before(copies, rows),
            rpis=found.rpis,
        )


def spool_directory() -> str | None:
    """Where the spool goes: the directory $TMPDIR (or $TEMP, $TMP) names, else /var/tmp, on disk where
    /tmp is often memory (tmpfs: Fedora, Arch, Debian 13): 33 bytes a key there is memory after all, and
    a tmpfs is half the RAM at most (a node away 14 days at 6M keys a day spools 2.8 GB)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        if os.environ.get(name):
            return os.environ[name]
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK | os.X_OK) else None


def first_of_each(keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` (KEY_DTYPE, or the spool's records) is the first with its key (bool): a
    legitimate server publishes a key once.

    Keys are sorted by their first eight bytes (a uint64 each, read in place) and only those that
    share them are compared whole: sorting millions of 16-byte keys took seconds and twice their size."""
    keep = np.ones(len(keys), bool)
    prefixes = _prefixes(keys)
    ordered = np.sort(prefixes)
    if not (ordered[1:] == ordered[:-1]).any():  # the usual case: no argsort needed
        return keep
    del ordered
    order = np.argsort(prefixes, kind="stable")
    ordered = prefixes[order]
    shared = np.flatnonzero(ordered[1:] == ordered[:-1])
    rows = np.unique(np.concatenate([order[shared], order[shared + 1]]))  # ascending: first appearance first
    _, first = np.unique(np.ascontiguousarray(keys["key"][rows]), return_index=True)
    keep[rows] = False
    keep[rows[first]] = True
    return keep


def _prefixes(keys: np.ndarray) -> np.ndarray:
    """The first eight bytes of each row's ``key`` (the first field of KEY_DTYPE and SPOOL_DTYPE) as uint64, in place."""
    keys = np.ascontiguousarray(keys)
    return np.ndarray(len(keys), "<u8", keys, 0, (keys.strides[0],))


def _bucket_of(keys: np.ndarray) -> np.ndarray:
    """Each key's spool bucket: its first byte (uint8)."""
    return np.ascontiguousarray(keys["key"]).view(np.uint8)[::16].copy()


def _among(few: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each of ``few`` (KEY_DTYPE), whether its key is among ``keys``': compared whole only where
    the first eight bytes are (sorting 16-byte keys is slow)."""
    near = keys["key"][np.isin(_prefixes(keys), _prefixes(few))]
    return np.isin(few["key"], near)


def _set_before(bits: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``, how many bits of ``bits`` (little-endian within a byte) lie before it."""
    if not len(rows):
        return np.zeros(0, np.int64)
    counts = _POPCOUNT[bits]
    blocks = np.concatenate([[0], np.cumsum(np.add.reduceat(counts, np.arange(0, len(counts), _BLOCK), dtype=np.int64))])
    out = np.empty(len(rows), np.int64)
    for i, row in enumerate(rows.tolist()):
        byte = row >> 3
        block = byte // _BLOCK
        within = int(counts[block * _BLOCK : byte].sum())
        out[i] = blocks[block] + within + _POPCOUNT[bits[byte] & ((1 << (row & 7)) - 1)]
    return out


def widest_span(spans: Iterable[tuple[float, float] | None]) -> tuple[float, float] | None:
    """The span from the earliest start to the latest end of ``spans`` (None where none is given)."""
    given = [s for s in spans if s is not None]
    return (min(s[0] for s in given), max(s[1] for s in given)) if given else None
