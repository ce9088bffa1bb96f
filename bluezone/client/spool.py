"""Records keyed by a 16-byte key, kept on disk and read back a bucket (the key's first byte) at a time.

What a check must answer across all its batches (copies of a key, revisions of a key) needs a key to
meet every other record of the same key, and a national check has too many to hold: here each write
appends its records sorted into ``BUCKETS`` runs by the key's first byte, in one file (one open file,
not a file a bucket: macOS allows a process 256), and a bucket is read back from every write in the
order written, so records keep the order they came in.  The file has no name once made (O_TMPFILE, or
unlinked at once; mode 0600): it goes with the check on every way out, a SIGKILL too.  A ``lazy``
spool makes it only once more than ``write_records`` have come: until then they stay in memory.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO

import numpy as np

from bluezone.errors import BluezoneError

#: Spool buckets, by the key's first byte: 84M keys (14 days of 6M) are ~330,000 (11 MB) a bucket.
BUCKETS = 256
#: Records gathered before they are written (8 MB of keys): the spool is written in a few large appends.
WRITE_KEYS = 1 << 18


class BucketSpool:
    """Records of ``dtype`` (its first field a 16-byte ``key``), given with ``add``, read back with
    ``bucket`` once ``finish`` is called; ``what`` names them in an error ("keys", "revisions")."""

    def __init__(self, dtype: np.dtype, what: str, *, lazy: bool = False, write_records: int | None = None) -> None:
        self.dtype, self.what = dtype, what
        self.count = 0
        self.write_records = WRITE_KEYS if write_records is None else write_records
        self._pending: list[np.ndarray] = []  # records not yet written: written together, a few MB at a time
        self._pending_count = 0
        self._where = spool_directory() or tempfile.gettempdir()
        # each write's records sorted by bucket: (offset of the write in the file, its BUCKETS + 1 bounds in records)
        self._runs: list[tuple[int, np.ndarray]] = []
        self._size = 0
        self._held: np.ndarray | None = None  # a lazy spool never written: its records sorted by bucket, in memory
        self._file: IO[bytes] | None = None
        if not lazy:
            self._open()

    def __enter__(self) -> BucketSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def on_disk(self) -> bool:
        """Whether the spool has a file (a lazy one: once more than ``write_records`` came)."""
        return self._file is not None

    def close(self) -> None:
        """Delete the spool (its disk given back now); again: nothing more."""
        if self._file is not None:
            self._file.close()
        self._held = None

    def _open(self) -> None:
        try:
            # nameless once made (O_TMPFILE, or unlinked at once): a check killed mid-way leaves no gigabytes behind
            self._file = tempfile.TemporaryFile(prefix="bluezone-check-", dir=self._where)
        except OSError as exc:
            raise self._error(exc) from None

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
        """The records given since the last write, sorted by bucket (each bucket's in the order given),
        and the BUCKETS + 1 bounds of the buckets' runs."""
        records = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_count = [], 0
        buckets = bucket_of(records)
        # a radix sort, each bucket's rows kept in order; taken as plain bytes (a structured take is 10x slower)
        order = np.argsort(buckets, kind="stable")
        records = np.take(records.view(np.uint8).reshape(len(records), -1), order, axis=0).view(self.dtype).reshape(-1)
        return records, np.concatenate([[0], np.cumsum(np.bincount(buckets, minlength=BUCKETS))])

    def _write(self) -> None:
        """The records given since the last write, appended in one piece sorted by bucket."""
        if not self._pending:
            return
        if self._file is None:
            self._open()
        assert self._file is not None
        records, bounds = self._sorted_pending()
        try:
            records.tofile(self._file)
        except OSError as exc:
            raise self._error(exc) from None
        self._runs.append((self._size, bounds))
        self._size += records.nbytes

    def finish(self) -> None:
        """No more records: what is pending is written (a lazy spool never written keeps it in memory)."""
        if self._file is None:
            if self._pending:
                self._held, bounds = self._sorted_pending()
                self._runs.append((0, bounds))
            return
        self._write()
        try:
            self._file.flush()
        except OSError as exc:
            raise self._error(exc) from None

    def held(self) -> np.ndarray | None:
        """Every record (after ``finish``) sorted by bucket, where the spool never went to disk; else None."""
        if self._file is not None:
            return None
        return self._held if self._held is not None else np.empty(0, self.dtype)

    def bucket(self, b: int) -> np.ndarray:
        """Bucket ``b``'s records (after ``finish``), its runs read in the order they were written."""
        if self._held is not None:
            bounds = self._runs[0][1]
            return self._held[bounds[b] : bounds[b + 1]]
        size = self.dtype.itemsize
        records = np.empty(sum(int(bounds[b + 1] - bounds[b]) for _, bounds in self._runs), self.dtype)
        if not len(records):
            return records
        assert self._file is not None
        into, at = records.view(np.uint8), 0
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
            raise self._error(exc) from None
        return records

    def nonempty(self) -> list[int]:
        """The buckets holding a record (after ``finish``)."""
        if not self._runs:
            return []
        sizes = sum(np.diff(bounds) for _, bounds in self._runs)
        return np.flatnonzero(sizes).tolist()

    def _error(self, exc: OSError) -> BluezoneError:
        """One line for a spool that cannot be made or written (a full disk): where, and what to do."""
        return BluezoneError(
            # numpy's short write ("1214 requested and 124 written") has no errno: the disk (or a quota) is full
            f"cannot write the check's spool in {self._where}: {exc.strerror or 'no room left'} ({self.count:,}"
            f" {self.what} so far, {self.dtype.itemsize} bytes each): make room there, or set TMPDIR to a directory"
            " with more"
        )


def spool_directory() -> str | None:
    """Where the spool goes: the directory $TMPDIR (or $TEMP, $TMP) names, else /var/tmp, on disk where
    /tmp is often memory (tmpfs: Fedora, Arch, Debian 13): 33 bytes a key there is memory after all, and
    a tmpfs is half the RAM at most (a node away 14 days at 6M keys a day spools 2.8 GB)."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        if os.environ.get(name):
            return os.environ[name]
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK | os.X_OK) else None


def bucket_of(records: np.ndarray) -> np.ndarray:
    """Each record's spool bucket: its key's first byte (uint8)."""
    return np.ascontiguousarray(records["key"]).view(np.uint8)[::16].copy()


def first_of_each(keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` (KEY_DTYPE, or a spool's records) is the first with its key (bool): a
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


def among(few: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each of ``few`` (KEY_DTYPE, or a spool's records), whether its key is among ``keys``': compared
    whole only where the first eight bytes are (sorting 16-byte keys is slow)."""
    if not len(few) or not len(keys):
        return np.zeros(len(few), bool)
    near = keys["key"][np.isin(_prefixes(keys), _prefixes(few))]
    return np.isin(few["key"], near)


def _prefixes(keys: np.ndarray) -> np.ndarray:
    """The first eight bytes of each row's ``key`` (the first field of every spooled dtype) as uint64, in place."""
    keys = np.ascontiguousarray(keys)
    return np.ndarray(len(keys), "<u8", keys, 0, (keys.strides[0],))


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
_BLOCK = 1 << 12  # bytes of a bitmap summed together when counting the bits before a row


def set_bits(bits: np.ndarray, rows: np.ndarray) -> None:
    """Set the bits of ``rows`` in ``bits`` (little-endian within a byte): one bit a record."""
    rows = np.asarray(rows, np.int64)
    np.bitwise_or.at(bits, rows >> 3, (1 << (rows & 7)).astype(np.uint8))


def set_before(bits: np.ndarray, rows: np.ndarray) -> np.ndarray:
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
