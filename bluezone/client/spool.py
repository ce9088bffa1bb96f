"""Records keyed by a 16-byte key, kept on disk and read back a part (a range of the key's first two bytes) at a time.

What a check must answer across all its batches (copies of a key, revisions of a key) needs a key to
meet every other record of the same key, and a national check has too many to hold: here each write
appends its records sorted by the key's first two bytes (its ``prefix``: ``PREFIXES`` of them), stably,
then the run's ``PREFIXES`` + 1 bounds, in one file (one open file, not a file a bucket: macOS allows a
process 256).  They are read back in parts, ranges of prefixes that hold about ``PART_RECORDS`` records
(``part_ends``), from every run in the order written, so a key's records keep the order they came in
and what is in memory does not grow with the records: the runs' bounds stay on disk, a part is at most
``PART_RECORDS`` and one prefix's (1/65,536 of them), and a run costs 24 bytes of bookkeeping.  The file
has no name once made (O_TMPFILE, or unlinked at once; mode 0600): it goes with the check on every way
out, a SIGKILL too.  A ``lazy`` spool makes it only once more than ``write_records`` have come: until
then they stay in memory.  ``RowSpool`` keeps rows (one int64 each) the same way, to count those
before a few rows at the end: what two bits a revision (which are withdrawn, which updated) and a bit
a key (copies) did in memory.
"""

from __future__ import annotations

import errno
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator
from typing import IO, Protocol, Self

import numpy as np

from bluezone.errors import BluezoneError

#: Parts by the key's first two bytes: 84M keys (14 days of 6M) are ~1,300 (42 KB) a prefix.
PREFIXES = 1 << 16
#: Records gathered before they are written (8 MB of keys): the spool is written in a few large appends.
WRITE_KEYS = 1 << 18
#: Records read back at once (of spools read together, together): ~0.3 MB of revisions, whatever their number.
PART_RECORDS = 1 << 13
#: Rows a ``RowSpool`` holds in memory (64 KB) before it writes them, and reads back at once.
ROWS_IN_MEMORY = 1 << 13
_BOUND = np.dtype("<u4")  # a run's bounds on disk: a run is one write, fewer than 2**32 records (all in memory once)


class _Spooled:
    """What the spools share: a nameless file made once needed (``_file``), gone on the way out."""

    _file: IO[bytes] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def on_disk(self) -> bool:
        """Whether a file was made (a lazy spool: once more than it holds in memory came)."""
        return self._file is not None

    def close(self) -> None:
        """Delete the file (its disk given back now); again: nothing more."""
        if self._file is not None:
            self._file.close()


class BucketSpool(_Spooled):
    """Records of ``dtype`` (its first field a 16-byte ``key``), given with ``add``, read back with
    ``read_upto`` once ``finish`` is called; ``what`` names them in an error ("keys", "revisions")."""

    def __init__(self, dtype: np.dtype, what: str, *, lazy: bool = False, write_records: int | None = None) -> None:
        self.dtype, self.what = dtype, what
        self.count = 0
        self.write_records = WRITE_KEYS if write_records is None else write_records
        self._counts: np.ndarray | None = None  # records of each prefix, written or held (made at the first)
        self._pending: list[np.ndarray] = []  # records not yet written: written together, a few MB at a time
        self._pending_count = 0
        self._where = spool_directory() or tempfile.gettempdir()
        # each write: where its records start in the file (bytes), and how many; its bounds follow them
        self._run_at, self._run_records = array("q"), array("q")
        self._size = 0
        self._held: np.ndarray | None = None  # a lazy spool never written: its records sorted by prefix, in memory
        self._file = None
        self._read_to = 0  # the prefix ``read_upto`` read to
        self._run_read = np.zeros(0, np.int64)  # each run's records read so far (after ``finish``)
        if not lazy:
            self._open()

    @property
    def counts(self) -> np.ndarray:
        """Records of each prefix (``PREFIXES`` of them), after ``finish``: what ``part_ends`` plans by."""
        return np.zeros(PREFIXES, np.uint32) if self._counts is None else self._counts

    def close(self) -> None:
        super().close()
        self._held = None

    def _open(self) -> None:
        self._file = nameless_file(self._where, self._error)

    def add(self, records: np.ndarray) -> None:
        """More records (``dtype``), after those given before."""
        if not len(records):
            return
        self.count += len(records)
        self._pending.append(records)
        self._pending_count += len(records)
        if self._pending_count >= self.write_records:
            self._write()

    def _sorted_pending(self) -> tuple[np.ndarray, np.ndarray]:
        """The records given since the last write, sorted by prefix (each prefix's in the order given),
        and the PREFIXES + 1 bounds of the prefixes' runs (counted in ``counts`` too)."""
        records = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_count = [], 0
        prefixes = prefix_of(records)
        # a radix sort, each prefix's rows kept in order; taken as plain bytes (a structured take is 10x slower)
        order = np.argsort(prefixes, kind="stable")
        records = np.take(records.view(np.uint8).reshape(len(records), -1), order, axis=0).view(self.dtype).reshape(-1)
        sizes = np.bincount(prefixes, minlength=PREFIXES)
        counts = sizes if self._counts is None else self._counts + sizes
        # 4 bytes a prefix: none can hold 2**32 records before the spool does (130 GB of them)
        self._counts = counts.astype(np.uint32 if self.count < 1 << 32 else np.int64)
        return records, np.concatenate([[0], np.cumsum(sizes)])

    def _write(self) -> None:
        """The records given since the last write, appended in one piece sorted by prefix, then its bounds."""
        if not self._pending:
            return
        if self._file is None:
            self._open()
        assert self._file is not None
        records, bounds = self._sorted_pending()
        try:
            write_array(self._file, records)
            write_array(self._file, bounds.astype(_BOUND))
        except OSError as exc:
            raise self._error(exc) from None
        self._run_at.append(self._size)
        self._run_records.append(len(records))
        self._size += records.nbytes + bounds.size * _BOUND.itemsize

    def finish(self) -> None:
        """No more records: what is pending is written (a lazy spool never written keeps it in memory)."""
        if self._file is None:
            if self._pending:
                self._held, _ = self._sorted_pending()
            return
        self._write()
        try:
            self._file.flush()
        except OSError as exc:
            raise self._error(exc) from None
        self._run_read = np.zeros(len(self._run_at), np.int64)

    def held(self) -> np.ndarray | None:
        """Every record (after ``finish``) sorted by prefix, where the spool never went to disk; else None."""
        if self._file is not None:
            return None
        return self._held if self._held is not None else np.empty(0, self.dtype)

    def read_upto(self, end: int) -> np.ndarray:
        """The records (after ``finish``) whose prefix lies from where the last call ended (0 at first) up to
        ``end`` (excluded), each run's in the order they were written: parts are read in order."""
        start, self._read_to = self._read_to, max(self._read_to, end)
        if end <= start:
            return np.empty(0, self.dtype)
        if self._file is None:
            held = self.held()
            assert held is not None
            lo, hi = np.searchsorted(prefix_of(held), [start, end]).tolist()
            return held[lo:hi]
        size, fd = self.dtype.itemsize, self._file.fileno()
        try:
            ends = np.fromiter((self._bound(fd, i, end) for i in range(len(self._run_at))), np.int64, len(self._run_at))
            records = np.empty(int((ends - self._run_read).sum()), self.dtype)
            into, at = records.view(np.uint8), 0
            for i, offset in enumerate(self._run_at):  # not ``tolist()``s: a Python int a run, a list growing with them
                begin, stop = int(self._run_read[i]), int(ends[i])
                n = (stop - begin) * size
                if n:
                    into[at : at + n] = np.frombuffer(_pread(fd, n, offset + begin * size), np.uint8)
                    at += n
                self._run_read[i] = stop
        except OSError as exc:
            raise self._error(exc) from None
        return records

    def _bound(self, fd: int, run: int, prefix: int) -> int:
        """Where run ``run``'s records of ``prefix`` begin (records from the run's start): its bounds on disk."""
        n = self._run_records[run]
        if prefix >= PREFIXES:
            return n
        at = self._run_at[run] + n * self.dtype.itemsize + prefix * _BOUND.itemsize
        return int(np.frombuffer(_pread(fd, _BOUND.itemsize, at), _BOUND)[0])

    def _error(self, exc: OSError) -> BluezoneError:
        return spool_error(self._where, exc, f"{self.count:,} {self.what} so far, {self.dtype.itemsize} bytes each")


class Counted(Protocol):
    """A spool that tells how many records it holds of each prefix (``BucketSpool.counts``)."""

    @property
    def counts(self) -> np.ndarray: ...


def part_ends(*spools: Counted) -> Iterator[int]:
    """Where each part of ``spools`` (finished, read together) ends (a prefix, excluded), the last at
    ``PREFIXES``: consecutive prefixes whose records start within ``PART_RECORDS`` of the part's first,
    so a part holds at most that many and one prefix's.  Planned a first byte's prefixes at a time, as
    they are asked for: neither a list of them nor the records before every prefix is held."""
    part_start = 0  # records before the part (of all the spools)
    done = 0  # records before the prefixes of ``block``
    for block in range(0, PREFIXES, 256):
        sizes = sum(spool.counts[block : block + 256].astype(np.int64) for spool in spools)
        assert isinstance(sizes, np.ndarray)
        starts = done + np.cumsum(sizes) - sizes  # records before each prefix of the block
        while (j := int(np.searchsorted(starts, part_start + max(PART_RECORDS, 1)))) < len(starts):
            yield block + j
            part_start = int(starts[j])
        done += int(sizes.sum())
    yield PREFIXES


class RowSpool(_Spooled):
    """Rows (int64, each given once, in any order) given with ``add``: gathered in a buffer of
    ``ROWS_IN_MEMORY`` (made at the first, the same however many come), written to a nameless file
    each time it fills; ``among_before`` answers for a few rows at the end, a read of them all."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._buffer: np.ndarray | None = None
        self._filled = 0  # rows in the buffer
        self._where = spool_directory() or tempfile.gettempdir()
        self._file = None
        self._size = 0  # bytes written

    def close(self) -> None:
        super().close()
        self._buffer = None

    def add(self, rows: np.ndarray) -> None:
        """More rows (copied: nothing given is kept)."""
        rows = np.asarray(rows, np.int64)
        self.count += len(rows)
        at = 0
        while at < len(rows):
            if self._buffer is None:
                self._buffer = np.empty(max(ROWS_IN_MEMORY, 1), np.int64)
            take = min(len(self._buffer) - self._filled, len(rows) - at)
            self._buffer[self._filled : self._filled + take] = rows[at : at + take]
            self._filled, at = self._filled + take, at + take
            if self._filled == len(self._buffer):
                self._write()

    def _write(self) -> None:
        assert self._buffer is not None
        if self._file is None:
            self._file = nameless_file(self._where, self._error)
        try:
            write_array(self._file, self._buffer[: self._filled])
        except OSError as exc:
            raise self._error(exc) from None
        self._size, self._filled = self._size + self._filled * 8, 0

    def among_before(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of ``rows``: whether it was given (bool), and how many given rows are below it (int64)."""
        rows = np.asarray(rows, np.int64)
        among, before = np.zeros(len(rows), bool), np.zeros(len(rows), np.int64)
        if not len(rows) or not self.count:
            return among, before
        for chunk in self._chunks():
            given = np.sort(chunk)
            below = np.searchsorted(given, rows, "left")
            among |= np.searchsorted(given, rows, "right") > below
            before += below
        return among, before

    def _chunks(self) -> Iterator[np.ndarray]:
        """Every row given, ``ROWS_IN_MEMORY`` or so at a time."""
        if self._file is not None:
            fd, at, step = self._file.fileno(), 0, max(ROWS_IN_MEMORY, 1) * 8
            try:
                self._file.flush()
                while at < self._size:
                    yield np.frombuffer(_pread(fd, min(step, self._size - at), at), np.int64)
                    at += step
            except OSError as exc:
                raise self._error(exc) from None
        if self._buffer is not None and self._filled:
            yield self._buffer[: self._filled]

    def _error(self, exc: OSError) -> BluezoneError:
        return spool_error(self._where, exc, f"{self.count:,} rows of {self.what} so far, 8 bytes each")


def nameless_file(where: str, error: Callable[[OSError], BluezoneError]) -> IO[bytes]:
    """A file in ``where`` with no name once made (O_TMPFILE, or unlinked at once): a check killed mid-way
    leaves no gigabytes behind."""
    try:
        return tempfile.TemporaryFile(prefix="bluezone-check-", dir=where)
    except OSError as exc:
        raise error(exc) from None


def spool_error(where: str, exc: OSError, so_far: str) -> BluezoneError:
    """One line for a spool that cannot be made or written (a full disk): where, and what to do."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # the disk, a quota or a file size limit
    return BluezoneError(
        f"cannot write the check's spool in {where}: {'no room left' if full else exc.strerror} ({so_far}): make room"
        " there, or set TMPDIR to a directory with more"
    )


def write_array(file: IO[bytes], array: np.ndarray) -> None:
    """``array``'s bytes appended to ``file`` (an OSError if they cannot all be): not ``tofile``, whose
    every call left ~260 bytes in memory for its first few dozen calls (a step in the peak)."""
    file.write(np.ascontiguousarray(array).view(np.uint8).data)


def _pread(fd: int, n: int, at: int) -> bytes:
    """``n`` bytes at ``at``, all of them (a short read is a spool cut short: an OSError)."""
    got = os.pread(fd, n, at)
    if len(got) != n:
        raise OSError(0, "the spool was cut short")
    return got


def spool_directory() -> str | None:
    """Where the spool goes: the directory $TMPDIR (or $TEMP, $TMP) names, else /var/tmp, on disk where
    /tmp is often memory (tmpfs: Fedora, Arch, Debian 13): 33 bytes a key there is memory after all, and
    a tmpfs is half the RAM at most (a node away 14 days at 6M keys a day spools 2.8 GB)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        if os.environ.get(name):
            return os.environ[name]
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK | os.X_OK) else None


def prefix_of(records: np.ndarray) -> np.ndarray:
    """Each record's prefix: its key's first two bytes, the first the higher (uint16), read in place."""
    records = np.ascontiguousarray(records)
    return np.ndarray(len(records), ">u2", records, 0, (records.strides[0],)).astype(np.uint16)


def first_of_each(keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` (KEY_DTYPE, or a spool's records) is the first with its key (bool): a
    legitimate server publishes a key once.

    Keys are sorted by their first eight bytes (a uint64 each, read in place) and only those that
    share them are compared whole: sorting millions of 16-byte keys took seconds and twice their size."""
    keep = np.ones(len(keys), bool)
    prefixes = _first_eight(keys)
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


def among(few: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each of ``few`` (KEY_DTYPE, or a spool's records), whether its key is among ``keys``': compared
    whole only where the first eight bytes are (sorting 16-byte keys is slow)."""
    if not len(few) or not len(keys):
        return np.zeros(len(few), bool)
    near = keys["key"][np.isin(_first_eight(keys), _first_eight(few))]
    return np.isin(few["key"], near)


def _first_eight(keys: np.ndarray) -> np.ndarray:
    """The first eight bytes of each row's ``key`` (the first field of every spooled dtype) as uint64, in place."""
    keys = np.ascontiguousarray(keys)
    return np.ndarray(len(keys), "<u8", keys, 0, (keys.strides[0],))
