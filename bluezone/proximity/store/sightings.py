"""GAEN sightings: stored in batches, read as numpy arrays (every row, or the distinct RPIs from the
index by RPI and then only the rows of those that match), counted."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.errors import StoreError
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
from bluezone.proximity.store.adapters import Adapters, RssiCorrection
from bluezone.proximity.store.heardread import LAST_ROW, EarlyHeard, HeardBlobs, file_identity, read_heard, rpis_heard_often
from bluezone.proximity.store.schema import NUMERIC_TIME, READABLE_ROW, UNUSABLE, USABLE_FIELDS

log = logging.getLogger(__package__)  # the store's one logger, as before it was a package

_IN_BATCH = 500  # RPIs per `rpi IN (...)` query (SQLite allows 32,766 variables; small stays fast)


class Sightings(Adapters):
    """This device's GAEN sightings."""

    def add_sightings(
        self, rows: np.ndarray, addresses: Sequence[str | None] | None = None, adapter: str | None = None
    ) -> int:
        """Store a SIGHTING_DTYPE batch (and optional sender addresses) in one transaction, heard by ``adapter``
        (this device's adapter's Bluetooth address, "" for one that could not say it; None: not recorded)."""
        rows, addr, tx = _batch(rows, SIGHTING_DTYPE, addresses, "sightings must have SIGHTING_DTYPE")
        n = len(rows)
        if n == 0:
            return 0
        data = zip(
            rows["time"].tolist(),
            rows["rpi"].tolist(),
            rows["aem"].tolist(),
            rows["rssi"].tolist(),
            tx,
            addr,
        )
        with self._heard_by(adapter, rows["time"]) as (column, value):
            self._conn.executemany(
                f"INSERT INTO sightings (time, rpi, aem, rssi, tx_power, address{column}) VALUES (?, ?, ?, ?, ?, ?{value})",
                data,
            )
        return n

    def sightings(
        self, since: float | None = None, until: float | None = None, correction: RssiCorrection | None = None
    ) -> np.ndarray:
        """Sightings with ``since <= time < until`` (either bound optional), ordered by time; ``correction`` added to
        the RSSI of those it applies to (``RssiCorrection``)."""
        where, params = self._time_filter(since, until)
        select = (f"SELECT time, rpi, aem, {self._corrected_rssi(correction)}, COALESCE(tx_power, ?) FROM sightings"
                  " WHERE length(rpi) = 16 AND length(aem) = 4")
        try:
            return self._load(f"{select}{where} ORDER BY time", params)
        except (TypeError, ValueError, OverflowError):
            # A row the daemon never writes (hand-edited, damaged): read again without such rows.
            # Checked only now, as the checks cost about 6 % of every load.
            log.warning("%s holds sightings bluezone cannot read; they are skipped", self.path)
        try:
            return self._load(f"{select} AND {READABLE_ROW}{where} ORDER BY time", params)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"the sightings table holds a row bluezone cannot read: {exc}") from None

    def _load(self, query: str, params: list[float]) -> np.ndarray:
        # numpy fills the structured array straight from the cursor's tuples: no list, no zip.
        return np.fromiter(self._conn.execute(query, [NO_TX_POWER, *params]), SIGHTING_DTYPE)

    def heard_rpis(
        self, since: float | None = None, until: float | None = None, repeated: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        """(every distinct RPI, those heard at least ``repeated`` times) of the sightings with
        ``since <= time < until``, each as uint8 (n, 16), in byte order.

        Read from the index by RPI alone, without touching the rows (a phone advertises an RPI for
        10-20 minutes, so a store holds about a hundredth as many RPIs as sightings), and handed
        over as one blob per query instead of a Python object per RPI (``heardread``, which a
        check's early reader shares).  They may name an RPI whose rows are all unusable:
        ``sightings_with_rpis`` leaves those out.

        Two ways to read the same answer, chosen by the store's shape (``heardread.rpis_heard_often``):
        where each RPI is heard many times, SQLite groups them and hands over one per RPI, from the
        counts ``rpi_days`` keeps per RPI and UTC day (schema 13: about a hundredth of the entries)
        when the range is whole days, as a check's is, else from the index entries; where most are
        heard once or twice (every sighting its own RPI is the worst case), grouping in SQLite costs
        2-3 times what it saves, so every entry is handed over in index order and grouped by numpy."""
        return self._read_heard_rpis(since, until, repeated, grouped=self._rpis_heard_often())

    def _rpis_heard_often(self) -> bool:
        return rpis_heard_often(self._conn)

    def _read_heard_rpis(
        self, since: float | None, until: float | None, repeated: int, *, grouped: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``heard_rpis``, grouped by SQLite (``grouped``) or by numpy: the same arrays."""
        return heard_arrays(read_heard(self._conn, self._since(since), until, repeated, grouped), repeated, self.path)

    def heard_rpis_read_before(self, early: EarlyHeard, repeated: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
        """``heard_rpis()`` (every day) from what ``heardread.EarlyRead`` read of this store's file before it
        was opened, or None when that was another file (replaced at the same path meanwhile), when its
        schema cookie (but for this store's own rewrite, ``_cookie_stands``) or its rows from the last one read
        on are not what was read (a row stored since, a
        store restored over this file: its RPIs may be missing; ``EarlyHeard`` says what tells which change)
        or when it counted from more than ``repeated`` times.  Read before the open's purge, they are a
        superset of today's (what ``HeardRpis`` may hold): a key found only by a purged row matches no row
        that is read."""
        if self.path is None or file_identity(self.path) != early.identity:
            return None
        if not self._cookie_stands(early.schema_version):  # (the open's purge may have rewritten the file)
            return None
        last = early.last_row
        now = self._conn.execute(LAST_ROW, [-(2**63) if last is None else last[0]]).fetchall()
        if now != ([] if last is None else [last]) and not (now == [] and last is not None and self._purged(last[1])):
            return None
        if early.blobs.grouped and early.blobs.at_least > repeated:
            return None
        return heard_arrays(early.blobs, repeated, self.path)

    def _purged(self, time: object) -> bool:
        """Whether a row dated ``time`` is past the retention (``retained_since``): the purge deletes it."""
        cutoff = self.retained_since
        return cutoff is not None and isinstance(time, (int, float)) and time < cutoff

    def heard_intervals(self, since: float | None = None, until: float | None = None) -> np.ndarray:
        """10-minute intervals (``floor(time) // 600``, sorted) covering every sighting with
        ``since <= time < until``: of each UTC day heard, those from its first to its last
        sighting (a few index seeks per day, no row read; a superset of the intervals heard)."""
        conn = self._conn
        since = self._since(since)
        lo_bound = -math.inf if since is None else float(since)
        hi_bound = 1e300 if until is None else min(float(until), 1e300)  # text and blobs sort after numbers
        first_after = "SELECT MIN(time) FROM sightings WHERE time >= ? AND time < ?"
        last_before = "SELECT MAX(time) FROM sightings WHERE time >= ? AND time < ?"
        out = []
        first = conn.execute(first_after, [lo_bound, hi_bound]).fetchone()[0]
        while first is not None:
            end = min(float((math.floor(first) // DAY_SECONDS + 1) * DAY_SECONDS), hi_bound)
            last = conn.execute(last_before, [first, end]).fetchone()[0]
            out.append(np.arange(math.floor(first) // INTERVAL_SECONDS, math.floor(last) // INTERVAL_SECONDS + 1))
            first = conn.execute(first_after, [end, hi_bound]).fetchone()[0]
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def count_usable(self, since: float | None = None, until: float | None = None) -> int:
        """How many sightings with ``since <= time < until`` a check can use (what
        ``usable_sightings`` returns), counted from the indexes alone."""
        bounds = self._bounds(since, until)
        conn = self._conn
        timed = conn.execute("SELECT COUNT(*) FROM sightings WHERE time >= ? AND time < ?", bounds).fetchone()[0]
        unusable = conn.execute(
            f"SELECT COUNT(*) FROM sightings INDEXED BY sightings_unusable WHERE {UNUSABLE} AND time >= ? AND time < ?",
            bounds,
        ).fetchone()[0]
        return int(timed - unusable)

    def _bounds(self, since: float | None, until: float | None) -> list[float]:
        """``since <= time < until`` (never before the retention) as two numbers: a numeric upper bound
        also leaves out a time that is text or a blob (SQLite sorts those after every number).  One
        range, not a second ``time < 1e300``: SQLite would bound its index search by either."""
        since = self._since(since)
        return [-math.inf if since is None else float(since), 1e300 if until is None else min(float(until), 1e300)]

    def sightings_with_rpis(
        self, rpis: np.ndarray, since: float | None = None, until: float | None = None,
        correction: RssiCorrection | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, rowids): the usable sightings of ``rpis`` (uint8 (n, 16) or V16) with
        ``since <= time < until``, ordered by time as ``sightings`` orders them (``correction`` as it adds it), and
        each row's id."""
        bounds = self._bounds(since, until)
        # distinct, as _distinct_sorted finds them (np.unique's first plain call imports numpy.ma, ~0.01-0.03 s)
        wanted = _distinct_sorted(np.ascontiguousarray(rpis).view(np.uint8).reshape(-1, 16))[0]
        parts = [self._load_with_ids(
            f"WHERE {USABLE_FIELDS} AND {NUMERIC_TIME} AND time >= ? AND time < ? AND rpi IN ({', '.join('?' * len(batch))})",
            [*bounds, *(bytes(r) for r in batch)],
            index="sightings_by_rpi", rssi=self._corrected_rssi(correction),
        ) for batch in np.array_split(wanted, max(1, -(-len(wanted) // _IN_BATCH))) if len(batch)]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, SIGHTING_DTYPE)
        ids = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        order = np.lexsort((ids, rows["time"]))
        return rows[order], ids[order]

    def usable_sightings(
        self, since: float | None = None, until: float | None = None, correction: RssiCorrection | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, rowids): the usable sightings with ``since <= time < until``, ordered by time (the
        rows ``sightings`` returns, and each one's id, which ``sightings_with_rpis`` also gives)."""
        return self._load_with_ids(
            f"WHERE {USABLE_FIELDS} AND time >= ? AND time < ? ORDER BY time, rowid", self._bounds(since, until),
            rssi=self._corrected_rssi(correction),
        )

    def _load_with_ids(
        self, where: str, params: list[Any], index: str | None = None, rssi: str = "rssi"
    ) -> tuple[np.ndarray, np.ndarray]:
        indexed = f" INDEXED BY {index}" if index else ""
        rows = self._conn.execute(
            f"SELECT rowid, time, rpi, aem, {rssi}, COALESCE(tx_power, ?) FROM sightings{indexed} {where}",
            [NO_TX_POWER, *params],
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        return np.fromiter((r[1:] for r in rows), SIGHTING_DTYPE, len(rows)), ids

    def count_sightings(self, since: float | None = None, until: float | None = None, at_most: int | None = None) -> int:
        """Sightings with ``since <= time < until``, counted no further than ``at_most`` (a check asks
        whether a day holds more than so many: counting a whole day of a busy store took ~2.5 ms)."""
        where, params = self._time_filter(since, until)
        if at_most is None:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM sightings WHERE 1{where}", params).fetchone()[0])
        query = f"SELECT COUNT(*) FROM (SELECT 1 FROM sightings WHERE 1{where} LIMIT ?)"
        return int(self._conn.execute(query, [*params, max(int(at_most), 0)]).fetchone()[0])

    def damage(self, most: int = 5) -> list[str]:
        """What SQLite's ``PRAGMA quick_check`` finds wrong in every page of the file (at most ``most``
        findings; none: sound).  Opening reads only the pages it needs (the purge follows the time
        index), so damage elsewhere shows only when a read reaches it; ``bluezone doctor`` looks."""
        rows = [str(r[0]) for r in self._conn.execute(f"PRAGMA quick_check({int(most)})")]
        return [] if rows == ["ok"] else rows

    def newest_time(self) -> float | None:
        """Time of the newest sighting or daily key (None: an empty store)."""
        row = self._conn.execute(
            f"SELECT MAX(t) FROM (SELECT MAX(time) AS t FROM sightings WHERE {NUMERIC_TIME}"
            f" UNION ALL SELECT MAX(time) FROM bluezone3_sightings WHERE {NUMERIC_TIME}"
            " UNION ALL SELECT MAX(created_at) FROM daily_keys WHERE created_at < 1e300)"
        ).fetchone()
        return None if row[0] is None else float(row[0])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """``parts`` as one array, without a copy of a single part (a million RPIs are 16 MB)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def heard_arrays(blobs: HeardBlobs, repeated: int, path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """``heard_rpis``'s arrays (every distinct RPI, those heard ``repeated`` times or more) of what
    ``heardread.read_heard`` handed over; SQLite's grouping counted from ``blobs.at_least`` (at most
    ``repeated``: then its repeated RPIs may be a superset)."""
    every: list[np.ndarray] = []
    again: list[np.ndarray] = []
    for blob, repeated_blob in blobs.parts:
        if repeated_blob is not None:
            every.append(_rpi_array(blob, path))
            again.append(_rpi_array(repeated_blob, path))
        else:
            distinct, counts = _distinct_sorted(_rpi_array(blob, path))
            every.append(distinct)
            again.append(distinct[counts >= repeated])
    return _joined(every), _joined(again)


def _distinct_sorted(rpis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct RPIs in byte order, how often each occurs) of uint8 (n, 16) ``rpis``, read in the
    index's order, so equal RPIs are adjacent (sorted here first if they ever were not)."""
    words = rpis.view(">u8")  # two big-endian words per RPI compare as the bytes do
    if len(words) > 1:
        ahead = (words[1:, 0] > words[:-1, 0]) | ((words[1:, 0] == words[:-1, 0]) & (words[1:, 1] >= words[:-1, 1]))
        if not ahead.all():  # SQLite hands an index over in order; without that promise, sort
            order = np.lexsort((words[:, 1], words[:, 0]))
            rpis, words = rpis[order], words[order]
    new = np.ones(len(words), bool)
    new[1:] = (words[1:, 0] != words[:-1, 0]) | (words[1:, 1] != words[:-1, 1])
    starts = np.flatnonzero(new)
    return rpis[starts], np.diff(starts, append=len(words))


def _rpi_array(blob: bytes, path: Path | None) -> np.ndarray:
    if len(blob) % 16:  # cannot happen with 16-byte RPIs: a damaged index; never match on a misread
        raise StoreError(
            f"{path or ':memory:'} is not a usable sighting database: the RPIs read from its index do not come in"
            " 16-byte units (it is damaged: move it away, and `bluezone run` starts a new one, or restore a copy)"
        )
    return np.frombuffer(blob, np.uint8).reshape(-1, 16)


def _batch(
    rows: np.ndarray, dtype: np.dtype, addresses: Sequence[str | None] | None, rule: str
) -> tuple[np.ndarray, Sequence[str | None], list[int | None]]:
    """A batch to insert, checked: (rows, one address per row, TX powers with "none" as NULL)."""
    rows = np.asarray(rows)
    if rows.dtype != dtype:
        raise StoreError(f"{rule}, got {rows.dtype}")
    addr: Sequence[str | None] = [None] * len(rows) if addresses is None else addresses
    if len(addr) != len(rows):
        raise StoreError(f"{len(rows)} sightings but {len(addr)} addresses")
    tx = rows["tx_power"].astype(object)
    tx[rows["tx_power"] == NO_TX_POWER] = None
    return rows, addr, tx.tolist()
