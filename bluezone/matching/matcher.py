"""The vectorised matcher: which stored sightings were broadcast by a diagnosis key.

A sighting at interval j matches the RPI of interval i when |i - j| <= 12 (GAEN's +-2 h
tolerance for clock drift) and i lies within the key's rolling period.

How it stays fast: keys whose window holds no sighting at all are not derived.  The others
are derived in batches (``rpis_passing``: one HKDF and one ECB call per key).  The stored
sightings are indexed once with two bit sets over independent bits of their RPIs: 24 bits of
bytes 0-2 (2 MB, stays in cache) and then up to 26 bits of bytes 4-7 (up to 8 MB, asked only
for the ~6 % that pass the first).  With a million distinct stored RPIs about one random RPI
in 1,000 passes both; the compiled helper tests them as it derives them, and only those
survivors are kept and compared in full, in one pass at the end.  No Python loop runs per RPI or per sighting; AEM decryption costs one AES block per
distinct matched RPI.

Deriving RPIs is nearly all of the time, and keys are independent, so ``jobs`` > 1 shares
the keys between this process and forked workers that inherit the index copy-on-write.
Chunks of keys are handed out one at a time to whichever process is free (the shares
balance themselves); each process picks the keys of its chunks that have sightings in their
windows, derives and pre-filters them, compares its own survivors in full, and only matches
travel back: what stays serial (the index, the fork, AEMs) is ~5 % of a large match
(docs/benchmarks.md).  The result is the same as with one process.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD
from bluezone.crypto.payload import metadata_fields
from bluezone.crypto.derivation import Sieve, bit_set, decrypt_aems, rpis_passing
from bluezone.errors import MatchWorkerError
from bluezone.keyformat.keys import key_bytes
from bluezone.matching.forked import ctrl_c_held, leave_ctrl_c_to_parent
from bluezone.matching.sharedcounter import SharedCounter
from bluezone.proximity.sightings import SIGHTING_DTYPE

log = logging.getLogger(__name__)

#: GAEN: a sighting matches an RPI whose interval is within 12 intervals (2 h) of it.
TOLERANCE_INTERVALS = 12
#: TX power assumed when a match's metadata is implausible (unknown major version, or
#: outside -50..+20 dBm, where Google drops it); such matches are flagged.  It is the TX
#: power bluezone's own daemon advertises by default (``bluezone.config.DaemonConfig``).
DEFAULT_TX_POWER = -24
_CHUNK = 2048  # keys per batch (~3 ms with the compiled helper): one call per batch, and each process's last batch ends near the others'
_BITS_1 = 24  # first filter: bits 0-23 (bytes 0-2) of the RPI
_BITS_2 = 26  # second filter: at most bits 32-57 (bytes 4-7), independent of the first
_COUNT_TABLE_LIMIT = 1 << 22  # intervals (76 years) a running count may span: 32 MB at most
#: Below this many keys with sightings per process, forking (~10-30 ms) costs more than it saves.
MIN_KEYS_PER_JOB = 8 * _CHUNK

#: One matched sighting: which key, which sighting (row of the sightings array), and
#: what the AEM said.
MATCH_DTYPE = np.dtype(
    [
        ("key_index", "i8"),
        ("sighting_index", "i8"),
        ("rpi_interval", "i4"),  # interval the matching RPI belongs to
        ("time", "f8"),
        ("rssi", "i2"),
        ("tx_power", "i2"),  # from the decrypted metadata, or DEFAULT_TX_POWER
        ("metadata_ok", "?"),  # False: metadata implausible, tx_power is the default
    ]
)


def _test_bits(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bool array: which ``values`` are set in ``table``."""
    return ((table[values >> 3] >> (values & 7).astype(np.uint8)) & 1).view(np.bool_)


def _rpi_words(rpis: np.ndarray) -> np.ndarray:
    """RPIs (any shape ending in 16 bytes) as two little-endian uint64 words each."""
    return np.ascontiguousarray(rpis).view("<u8").reshape(-1, 2)


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [lo[w], hi[w]): (w, position) for every position of every range."""
    counts = hi - lo
    which = np.repeat(np.arange(len(lo)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return which, lo[which] + offsets


class SightingIndex:
    """Stored sightings prepared for many lookups; build once per check (~0.1 s per million)."""

    def __init__(self, sightings: np.ndarray) -> None:
        if sightings.dtype != SIGHTING_DTYPE:
            sightings = sightings.astype(SIGHTING_DTYPE)
        self.sightings = sightings
        rpis = np.ascontiguousarray(sightings["rpi"]).view(np.uint8).reshape(len(sightings), 16)
        # floor(t) // 600 == floor(t / 600) for t >= 0, and integer division is exact.
        self.intervals: np.ndarray | None = np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS
        self.sorted_intervals = np.sort(self.intervals)
        self._index_rpis(rpis)

    def _index_rpis(self, rpis: np.ndarray) -> None:
        n = len(rpis)
        self.words = _rpi_words(rpis)
        quads = rpis.view("<u4")
        self.prefix1 = quads[:, 0] & ((1 << _BITS_1) - 1)
        # ~64 bits per stored RPI, capped at 8 MB (page faults on a bigger fresh table cost more
        # than the extra survivors): small stores get a small table.
        bits2 = int(np.clip(np.ceil(np.log2(max(n, 1))) + 6, 16, _BITS_2))
        self.sieve = Sieve(bit_set(self.prefix1, _BITS_1), _BITS_1, bit_set(quads[:, 1], bits2), bits2)

    def __len__(self) -> int:
        return len(self.words)

    def count_in_windows(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Number of sightings whose interval lies in [first, last], per window.

        Read from a running count per interval (a few ms for a million windows; binary search
        costs ~15x more) unless the sightings span more intervals than such a table should hold.
        """
        counts = self._running_counts
        if counts is None:
            lo = np.searchsorted(self.sorted_intervals, first, "left")
            hi = np.searchsorted(self.sorted_intervals, last, "right")
            return hi - lo
        base, span = int(self.sorted_intervals[0]), len(counts) - 1
        return counts[np.clip(last - (base - 1), 0, span)] - counts[np.clip(first - base, 0, span)]

    @functools.cached_property
    def _running_counts(self) -> np.ndarray | None:
        """Sightings before each interval from the first one on (one more entry than intervals), or
        None when they span more than ``_COUNT_TABLE_LIMIT`` intervals or there are none."""
        intervals = self.sorted_intervals
        if len(intervals) == 0 or int(intervals[-1]) - int(intervals[0]) >= _COUNT_TABLE_LIMIT:
            return None
        counts = np.zeros(int(intervals[-1]) - int(intervals[0]) + 2, np.int64)
        np.cumsum(np.bincount(intervals - intervals[0]), out=counts[1:])
        return counts

    def prefilter(self, rpis: np.ndarray) -> np.ndarray:
        """Flat positions of the RPIs (uint8 (..., 16), contiguous) that may be stored.

        No false negatives; about one random RPI in 1,000 passes with a million stored RPIs.
        """
        return self.sieve.passing(rpis)

    def lookup(self, rpis: np.ndarray, intervals: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact matches of ``rpis`` (uint8 (m, 16)) seen within ``tolerance`` of ``intervals``.

        Returns (position in ``rpis``, sighting row) pairs.  Meant to be called once with
        all pre-filtered candidates: it makes one cheap pass over the stored sightings
        (which share a 24-bit prefix with some candidate) instead of sorting them all.
        """
        none = np.empty(0, np.intp), np.empty(0, np.intp)
        if len(rpis) == 0 or len(self) == 0:
            return none
        rpis = np.ascontiguousarray(rpis, np.uint8).reshape(-1, 16)
        cand = _rpi_words(rpis)
        rows = np.flatnonzero(_test_bits(bit_set(rpis.view("<u4")[:, 0], _BITS_1), self.prefix1))
        order = np.argsort(cand[:, 0], kind="stable")
        sorted_lo = cand[order, 0]
        lo = np.searchsorted(sorted_lo, self.words[rows, 0], "left")
        hi = np.searchsorted(sorted_lo, self.words[rows, 0], "right")
        r, pos = expand_ranges(lo, hi)
        rows, which = rows[r], order[pos]
        ok = self.words[rows, 1] == cand[which, 1]
        if self.intervals is not None:
            ok &= np.abs(self.intervals[rows] - intervals[which]) <= tolerance
        return which[ok], rows[ok]


class HeardIndex(SightingIndex):
    """The distinct RPIs a store heard, without their times, and the intervals it heard anything
    in (``SightingStore.heard_rpis``, ``heard_intervals``): enough to tell which keys may match
    before a single full row is read.  Its ``lookup`` matches an RPI heard at any time; the
    tolerance is applied to the full rows of the few RPIs found (``keys_heard``)."""

    def __init__(self, rpis: np.ndarray, intervals: np.ndarray) -> None:
        self.intervals = None
        self.sorted_intervals = np.sort(np.asarray(intervals, np.int64))
        rpis = np.ascontiguousarray(rpis, np.uint8).reshape(-1, 16)
        self._index_rpis(rpis)
        # Each RPI's first eight bytes as a big-endian number sort as its bytes do, the order the
        # store hands them over in (sorted here if they ever were not): ``lookup`` searches them.
        high = _high_words(rpis)
        self._order = None if bool(np.all(high[1:] >= high[:-1])) else np.argsort(high, kind="stable")
        self._high = high if self._order is None else high[self._order]

    def lookup(self, rpis: np.ndarray, intervals: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact matches of ``rpis`` (uint8 (m, 16)) among the RPIs heard, at any time (the tolerance
        is applied to the full rows later), as (position in ``rpis``, heard row) pairs.  Few of them
        (a batch of a streamed file: ~2,000 from 16,384 keys against a million RPIs) are found by
        binary search (~1 us each, in 2 ms where a pass over every heard RPI costs 6); many by that
        pass (``SightingIndex.lookup``: 18 ms for 30,000, where searching costs 24)."""
        if len(rpis) * _SEARCH_BELOW > len(self):
            return super().lookup(rpis, intervals, tolerance)
        return self._searched(rpis)

    def _searched(self, rpis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``lookup``, each RPI found by binary search over the heard RPIs' first eight bytes."""
        none = np.empty(0, np.intp), np.empty(0, np.intp)
        if len(rpis) == 0 or len(self) == 0:
            return none
        rpis = np.ascontiguousarray(rpis, np.uint8).reshape(-1, 16)
        high = _high_words(rpis)
        which, position = expand_ranges(np.searchsorted(self._high, high, "left"), np.searchsorted(self._high, high, "right"))
        rows = position if self._order is None else self._order[position]
        ok = self.words[rows, 1] == _rpi_words(rpis)[which, 1]
        return which[ok], rows[ok]


#: ``HeardIndex.lookup`` searches when it has fewer than one RPI per this many heard ones.
_SEARCH_BELOW = 64


def _high_words(rpis: np.ndarray) -> np.ndarray:
    """The first eight bytes of each RPI (uint8 (n, 16)) read as a big-endian number (native uint64)."""
    return np.ascontiguousarray(rpis[:, :8]).view(">u8").reshape(-1).astype(np.uint64)


def available_cores() -> int:
    """Cores this process may run on (the default for ``jobs``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def keys_heard(keys: np.ndarray, heard: HeardIndex, *, tolerance: int = TOLERANCE_INTERVALS, jobs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(key rows, RPIs): the ``keys`` (KEY_DTYPE) that sent an RPI the store heard, sorted, and
    those RPIs (uint8 (m, 16)).  Every key that ``match`` would match against the store's full rows
    is among them: only keys with some sighting within ``tolerance`` of their validity are derived,
    as in ``match``, and then an RPI counts whenever it was heard.  ``jobs`` as in ``match``."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    key_rows, heard_rows, _ = _find(keys, heard, tolerance, jobs)
    rpis = np.ascontiguousarray(heard.words[heard_rows]).view(np.uint8).reshape(-1, 16)
    # each key once; sorted already, so not np.unique, whose first plain call imports numpy.ma
    # (~0.01-0.03 s in every process of a check)
    first = np.ones(len(key_rows), bool)
    first[1:] = key_rows[1:] != key_rows[:-1]
    return key_rows[first], rpis


def match(
    keys: np.ndarray,
    sightings: np.ndarray | SightingIndex,
    *,
    tolerance: int = TOLERANCE_INTERVALS,
    default_tx_power: int = DEFAULT_TX_POWER,
    jobs: int = 1,
) -> np.ndarray:
    """All (diagnosis key, stored sighting) matches, as a MATCH_DTYPE array.

    ``keys`` is a KEY_DTYPE array (see ``keyfile``); ``sightings`` a SIGHTING_DTYPE array
    (or an index already built over one).  ``jobs`` > 1 derives RPIs in that many
    processes (at most the cores this process may use) when there are enough keys to pay for it;
    the result does not change.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if isinstance(sightings, HeardIndex):
        raise TypeError("a HeardIndex holds no sightings to match: use keys_heard, then match their rows")
    index = sightings if isinstance(sightings, SightingIndex) else SightingIndex(sightings)
    key_rows, sighting_rows, rpi_intervals = _find(keys, index, tolerance, jobs)
    return _decrypt(keys, index.sightings, key_rows, sighting_rows, rpi_intervals, default_tx_power)


@dataclass(frozen=True)
class _KeyTable:
    """The diagnosis keys (KEY_DTYPE) as given, shared with workers: each chunk's key bytes,
    starts and periods are taken as it is derived, so no column of every key is copied (6M keys
    would hold 240 MB of them through the whole match)."""

    keys: np.ndarray

    def busy(self, lo: int, hi: int, index: SightingIndex, tolerance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, key bytes uint8 (n, 16), starts int64, periods int64 with 0 as a whole day) of the
        keys in rows [lo, hi) whose +-tolerance window holds some sighting: the others need no AES."""
        keys = self.keys[lo:hi]
        periods = keys["rolling_period"].astype(np.int64)
        periods[periods == 0] = ROLLING_PERIOD
        starts = keys["rolling_start"].astype(np.int64)
        busy = np.flatnonzero(index.count_in_windows(starts - tolerance, starts + periods - 1 + tolerance) > 0)
        return lo + busy, key_bytes(keys[busy]), starts[busy], periods[busy]


def _find(keys: np.ndarray, index: SightingIndex, tolerance: int, jobs: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key row, sighting row, RPI interval) of every match, sorted by key row then sighting row
    whatever ``jobs`` is."""
    empty = np.empty(0, np.int64)
    if len(keys) == 0 or len(index) == 0:
        return empty, empty, empty
    table = _KeyTable(keys)
    if jobs > 1 and jobs > (cores := available_cores()):  # more derive no faster: 64 jobs on 2 cores forked 63
        log.info("matching in %d processes, the cores this process may use, not the %d asked", cores, jobs)
        jobs = cores
    if jobs > 1:
        jobs = min(jobs, len(keys) // MIN_KEYS_PER_JOB) if can_fork() else 1
    if jobs > 1:
        parts = _in_parallel(table, index, tolerance, jobs)
    else:
        parts = [_matches(table, index, _blocks(len(keys)), tolerance)]
    key_rows, rows, intervals = (np.concatenate(column) for column in zip(*parts))
    order = np.lexsort((rows, key_rows))  # the processes' shares end in no particular order
    return key_rows[order], rows[order], intervals[order]


def can_fork() -> bool:
    """Whether worker processes can be forked here.  ``multiprocessing`` is imported only now: a
    check imports it (~8-12 ms) once its store's thread is reading, not in its serial start."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _blocks(n: int) -> Iterator[tuple[int, int]]:
    """Rows [lo, hi) of ``n`` keys in chunks of ``_CHUNK``, in order (one process)."""
    for lo in range(0, n, _CHUNK):
        yield lo, min(lo + _CHUNK, n)


def _matches(table: _KeyTable, index: SightingIndex, blocks: Iterable[tuple[int, int]], tolerance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key row, sighting row, RPI interval) of the matches of the keys in ``blocks``: every RPI is
    derived and pre-filtered chunk by chunk, and the few survivors are looked up in one pass."""
    keys, intervals, rpis = _candidates(table, index, blocks, tolerance)
    which, rows = index.lookup(rpis, intervals, tolerance)
    return keys[which], rows, intervals[which]


def _candidates(
    table: _KeyTable, index: SightingIndex, blocks: Iterable[tuple[int, int]], tolerance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(key row, interval, RPI) of every RPI of the keys in ``blocks`` (rows [lo, hi), at most
    ``_CHUNK`` each) that has a sighting in its window and passes the pre-filter."""
    buffer = np.empty(_CHUNK * ROLLING_PERIOD * 16 + 15, np.uint8)  # for the Python path's RPIs
    found_keys, found_intervals, found_rpis = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty((0, 16), np.uint8)]
    for lo, hi in blocks:
        chunk, teks, starts, periods = table.busy(lo, hi, index, tolerance)
        if len(chunk) == 0:
            continue
        flat, rpis = rpis_passing(teks, starts, ROLLING_PERIOD, index.sieve, out=buffer)
        k, step = np.divmod(flat, ROLLING_PERIOD)
        sent = step < periods[k]  # RPIs past a short key's period were never sent
        k, step = k[sent], step[sent]
        found_keys.append(chunk[k])
        found_intervals.append(starts[k] + step)
        found_rpis.append(rpis[sent])
    return np.concatenate(found_keys), np.concatenate(found_intervals), np.concatenate(found_rpis)


class _SharedBlocks:
    """Rows of ``n`` keys in chunks of ``_CHUNK``, each handed to whichever process asks first.

    The next chunk's number is a ``SharedCounter`` that forked processes inherit, so a process that
    starts later or runs slower (another program on its core) simply takes fewer chunks: the shares
    balance themselves, at one uncontended lock per chunk (~3 ms of work).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._next = SharedCounter(end=-(-n // _CHUNK))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        while (number := self._next.take()) is not None:
            lo = number * _CHUNK
            yield lo, min(lo + _CHUNK, self.n)

    def close(self) -> None:
        """Hand out nothing more: every process stops after the chunk it is on."""
        self._next.stop()


# A worker's share of one match: set in the worker by its pool's initializer, whose arguments a
# forked process inherits copy-on-write (never pickled, never through a global of the parent,
# which another thread's match could set between the set-up and the fork).
_SHARED: tuple[_KeyTable, SightingIndex, _SharedBlocks, int] | None = None


def _share(shared: tuple[_KeyTable, SightingIndex, _SharedBlocks, int]) -> None:
    global _SHARED
    _SHARED = shared
    # Ctrl-C signals every process of the terminal's group: the parent handles it (its ``finally``
    # stops the workers after their chunk); a worker waiting for work would die with a traceback.
    leave_ctrl_c_to_parent()


def _worker() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    assert _SHARED is not None, "worker started without fork"
    table, index, blocks, tolerance = _SHARED
    return _matches(table, index, blocks, tolerance)


def _in_parallel(table: _KeyTable, index: SightingIndex, tolerance: int, jobs: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``_matches`` of all keys in ``jobs`` processes: this one and ``jobs - 1`` forked ones, all
    taking chunks from one ``_SharedBlocks``; each returns only its exact matches."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("fork")
    blocks = _SharedBlocks(len(table.keys))
    index.count_in_windows(np.zeros(1, np.int64), np.zeros(1, np.int64))  # its table built once, here
    pool = ProcessPoolExecutor(jobs - 1, mp_context=context, initializer=_share, initargs=((table, index, blocks, tolerance),))
    try:
        with ctrl_c_held():  # the workers are forked here
            others = [pool.submit(_worker) for _ in range(jobs - 1)]
        first = _matches(table, index, blocks, tolerance)
        try:
            return [first, *(other.result() for other in others)]
        except BrokenProcessPool as broken:
            # the futures hold this error, and its traceback the frames holding them: a reference cycle that
            # kept ``blocks``' memfd open and mapped until the next garbage collection
            broken.__traceback__ = None
            raise MatchWorkerError("a worker process matching keys ended (killed?) before the check did") from None
    finally:
        blocks.close()  # if this process failed, the workers stop soon too
        # The workers exit once their results are in (unmapping their copy of this process takes
        # ~10 ms): the pool's own thread reaps them, nobody waits for it here.
        pool.shutdown(wait=False)


def _decrypt(
    keys: np.ndarray,
    sightings: np.ndarray,
    key_rows: np.ndarray,
    sighting_rows: np.ndarray,
    rpi_intervals: np.ndarray,
    default_tx_power: int,
) -> np.ndarray:
    """Attach each match's TX power from its AEM (one AES block per distinct matched RPI)."""
    order = np.lexsort((sightings["time"][sighting_rows], key_rows))
    out = np.zeros(len(order), MATCH_DTYPE)
    out["key_index"] = key_rows[order]
    out["sighting_index"] = sighting_rows[order]
    out["rpi_interval"] = rpi_intervals[order]
    matched = gather(sightings, out["sighting_index"])
    out["time"] = matched["time"]
    out["rssi"] = matched["rssi"]
    matched_keys, key_rows = np.unique(out["key_index"], return_inverse=True)  # not every key's bytes
    metadata = decrypt_aems(
        key_bytes(keys[matched_keys]), key_rows,
        np.ascontiguousarray(matched["rpi"]).view(np.uint8), np.ascontiguousarray(matched["aem"]).view(np.uint8),
    )
    tx, ok = metadata_fields(metadata)
    out["tx_power"] = np.where(ok, tx, default_tx_power)
    out["metadata_ok"] = ok
    if len(out) and not ok.all():
        log.debug("%d matched sightings had implausible metadata; assumed TX power %d dBm", (~ok).sum(), default_tx_power)
    return out


def as_bytes(records: np.ndarray) -> np.ndarray:
    """Structured records (1-d, side by side) viewed as opaque items of their size: numpy copies
    these 6-9x faster than records, which it copies field by field (100,000 matches: 41 -> 6 ms)."""
    return records.view(np.dtype((np.void, records.dtype.itemsize)))


def gather(records: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``records[rows]`` of a structured array, copied as opaque bytes (``as_bytes``) when it can be."""
    if records.ndim != 1 or not records.flags.c_contiguous:
        return records[rows]
    return as_bytes(records)[rows].view(records.dtype)


@dataclass(frozen=True)
class ExposureWindow:
    """The sightings of one diagnosis key on one UTC day: what a scorer judges.

    ``attenuation`` = TX power - (RSSI + RSSI correction), in dB, per sighting.
    """

    key_index: int
    day: int  # Unix seconds of the UTC midnight starting the day
    times: np.ndarray
    rssi: np.ndarray
    attenuation: np.ndarray
    tx_power_estimated: bool  # some sightings used DEFAULT_TX_POWER
    transmission_risk: int = 0
    report_type: int = 0
    sighting_index: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def __len__(self) -> int:
        return len(self.times)


def one_row_per_key(keys: np.ndarray, matches: np.ndarray) -> np.ndarray:
    """``matches`` (MATCH_DTYPE) with a key that several rows of ``keys`` list (a file with a key twice, a daily key
    under two windows) matched as the first of those rows, each sighting once: one person's key is one exposure a
    day, as ``check --server`` finds it (it keeps the first of each key).  Few keys match: only theirs are compared."""
    rows = np.sort(matches["key_index"])
    distinct = rows[np.r_[True, rows[1:] != rows[:-1]]] if len(rows) else rows
    whole = np.ascontiguousarray(keys["key"][distinct])
    prefixes = np.sort(whole.view("<u8").reshape(-1, 2)[:, 0])
    if not (prefixes[1:] == prefixes[:-1]).any():  # the usual case: every matched key once
        return matches
    _, first, inverse = np.unique(whole, return_index=True, return_inverse=True)
    out = matches.copy()
    out["key_index"] = distinct[first][inverse.reshape(-1)][np.searchsorted(distinct, matches["key_index"])]
    out = out[np.lexsort((out["sighting_index"], out["key_index"]))]
    again = (out["key_index"][1:] == out["key_index"][:-1]) & (out["sighting_index"][1:] == out["sighting_index"][:-1])
    return out[np.r_[True, ~again]]


def exposure_windows(keys: np.ndarray, matches: np.ndarray, *, rssi_correction: int = 0) -> list[ExposureWindow]:
    """Group matches into windows, one per (key, UTC day), in key then time order."""
    if len(matches) == 0:
        return []
    days = (np.floor_divide(matches["time"], DAY_SECONDS) * DAY_SECONDS).astype(np.int64)
    order = np.lexsort((matches["time"], days, matches["key_index"]))
    m, days = gather(matches, order), days[order]
    key_index = m["key_index"]
    group = np.r_[True, (np.diff(key_index) != 0) | (np.diff(days) != 0)]
    starts = np.flatnonzero(group)
    bounds = np.r_[starts, len(m)]
    # each column taken out once (a field of a structured array is a new view each time it is named)
    times, rssi, index = np.ascontiguousarray(m["time"]), m["rssi"].astype(np.int32), np.ascontiguousarray(m["sighting_index"])
    attenuation = m["tx_power"].astype(np.int32) - (rssi + rssi_correction)
    estimated = ~np.logical_and.reduceat(m["metadata_ok"], starts)
    key_rows = key_index[starts]
    risks, reports = keys["transmission_risk"][key_rows].tolist(), keys["report_type"][key_rows].tolist()
    windows = []
    for i, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        windows.append(
            ExposureWindow(
                key_index=int(key_rows[i]),
                day=int(days[a]),
                times=times[a:b].copy(),
                rssi=rssi[a:b].copy(),
                attenuation=attenuation[a:b],
                tx_power_estimated=bool(estimated[i]),
                transmission_risk=int(risks[i]),
                report_type=int(reports[i]),
                sighting_index=index[a:b].copy(),
            )
        )
    return windows


def find_exposures(
    keys: np.ndarray,
    sightings: np.ndarray | SightingIndex,
    *,
    tolerance: int = TOLERANCE_INTERVALS,
    rssi_correction: int = 0,
    default_tx_power: int = DEFAULT_TX_POWER,
    jobs: int = 1,
) -> list[ExposureWindow]:
    """Match and group: the exposure windows of ``sightings`` against diagnosis ``keys`` (a key listed twice: one, as
    its first row: ``one_row_per_key``)."""
    matches = match(keys, sightings, tolerance=tolerance, default_tx_power=default_tx_power, jobs=jobs)
    return exposure_windows(keys, one_row_per_key(keys, matches), rssi_correction=rssi_correction)
