"""Bluezone v3: the adverts heard (12-byte IDs), and where this device's own v3 key chain starts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ContextManager

import numpy as np

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.bluezone3 import daily_key
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import StoreError
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER
from bluezone.proximity.store.adapters import Adapters, RssiCorrection
from bluezone.proximity.store.schema import NUMERIC_TIME, READABLE_ROW
from bluezone.proximity.store.sightings import _batch


class Bluezone3Sightings(Adapters):
    """Bluezone v3 sightings and this device's v3 key chain."""

    def add_bluezone3_sightings(
        self, rows: np.ndarray, addresses: Sequence[str | None] | None = None, adapter: str | None = None
    ) -> int:
        """Store a BLUEZONE3_SIGHTING_DTYPE batch (and optional sender addresses) in one transaction, heard by
        ``adapter`` (as ``add_sightings``)."""
        rows, addr, tx = _batch(
            rows, BLUEZONE3_SIGHTING_DTYPE, addresses, "Bluezone v3 sightings must have BLUEZONE3_SIGHTING_DTYPE"
        )
        n = len(rows)
        if n == 0:
            return 0
        data = zip(rows["time"].tolist(), rows["bzid"].tolist(), rows["rssi"].tolist(), tx, addr)
        with self._heard_by(adapter, rows["time"]) as (column, value):
            self._conn.executemany(
                f"INSERT INTO bluezone3_sightings (time, bzid, rssi, tx_power, address{column}) VALUES (?, ?, ?, ?, ?{value})",
                data,
            )
        return n

    def bluezone3_sightings(
        self, since: float | None = None, until: float | None = None, correction: RssiCorrection | None = None
    ) -> np.ndarray:
        """Bluezone v3 sightings with ``since <= time < until``, ordered by time (unreadable rows skipped);
        ``correction`` added as ``sightings`` adds it."""
        where, params = self._time_filter(since, until, "bluezone3_sightings")
        query = (
            f"SELECT time, bzid, {self._corrected_rssi(correction)}, COALESCE(tx_power, ?) FROM bluezone3_sightings"
            f" WHERE length(bzid) = 12 AND {READABLE_ROW}{where} ORDER BY time"
        )
        try:
            return np.fromiter(self._conn.execute(query, [NO_TX_POWER, *params]), BLUEZONE3_SIGHTING_DTYPE)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"the bluezone3_sightings table holds a row bluezone cannot read: {exc}") from None

    def bluezone3_sightings_held(self) -> int:
        """How many Bluezone v3 sightings the store holds within the retention (as ``status`` counts them): what a
        check without a v3 F0 list leaves unchecked, and says so.  One walk of the index by time, over v3 rows only."""
        since = -math.inf if self.retained_since is None else self.retained_since
        query = f"SELECT COUNT(*) FROM bluezone3_sightings WHERE {NUMERIC_TIME} AND time >= ?"
        return int(self._conn.execute(query, (since,)).fetchone()[0])

    def bluezone3_key(self) -> tuple[int, bytes] | None:
        """Where this device's Bluezone v3 key chain starts within the retention: (UTC day number, its
        daily key), if it ever sent v3 IDs.  Later days' keys are this one hashed forward.  Read as the purge at
        ``retained_since`` leaves it (``chain_within``), whether or not it could run (a read-only store)."""
        row = self._conn.execute("SELECT day, key, used_at FROM bluezone3_key ORDER BY day DESC LIMIT 1").fetchone()
        if row is None or not isinstance(row[1], bytes) or len(row[1]) != 32:
            return None
        day, key = int(row[0]), bytes(row[1])
        return (day, key) if self.retained_since is None else chain_within(day, key, row[2], self.retained_since)

    def bluezone3_key_held(self) -> ContextManager[None]:
        """One transaction, taken for writing before the first read, for the chain read, what of it is handed over (an
        F0 list written) and the new chain that replaces it: committed only if the block ends without an error, so the
        list and the new chain are both made or neither, with no second write to put the old chain back (which a lock
        held elsewhere or a full disk refused: the old chain lost, no list made).  Errors as ``_write_held`` says."""
        return self._write_held()

    def save_bluezone3_key(self, day: int, key: bytes, created_at: float) -> None:
        """Start the chain at ``key``, the daily key of UTC day ``day`` (replacing any earlier chain; inside
        ``bluezone3_key_held``, when that commits)."""
        with self._write():
            self._conn.execute("DELETE FROM bluezone3_key")
            self._conn.execute(
                "INSERT INTO bluezone3_key (day, key, created_at, used_at) VALUES (?, ?, ?, ?)",
                (int(day), bytes(key), created_at, created_at),
            )

    def mark_bluezone3_key_used(self, now: float) -> None:
        """Note that the daemon sends from the chain (at least daily): an unused chain is purged."""
        with self._conn:
            self._conn.execute("UPDATE bluezone3_key SET used_at = ?", (float(now),))


def chain_within(day: int, key: bytes, used_at: object, cutoff: float) -> tuple[int, bytes] | None:
    """A v3 chain stored as starting on UTC day ``day`` with ``key`` (last sent from at ``used_at``) as the retention at
    ``cutoff`` keeps it: from the first day within it, its key hashed forward (a key of an older day would give away
    the IDs sent on days past the retention); None when no ID was sent from it since the cutoff (an unused chain goes),
    or it starts too far back to hash forward.  The purge stores what this gives; a read of a store the purge could not
    write gives it too."""
    first = int(cutoff // DAY_SECONDS)
    if day >= first:
        return day, key
    used = isinstance(used_at, (int, float)) and used_at >= cutoff
    if not used or first - day > 2 * RETENTION_DAYS:
        return None
    return first, daily_key(key, first - day)
