"""This device's daily keys (GAEN TEKs): what the daemon advertises from and an upload sends."""

from __future__ import annotations

from bluezone.crypto.intervals import INTERVAL_SECONDS, interval_number
from bluezone.crypto.keys import DailyKey
from bluezone.errors import StoreError
from bluezone.proximity.store.base import StoreBase


class DailyKeys(StoreBase):
    """This device's daily keys."""

    def save_daily_key(self, key: DailyKey, created_at: float | None = None) -> None:
        """Store (or update the period of) one of this device's daily keys."""
        when = float(created_at) if created_at is not None else float(key.rolling_start * INTERVAL_SECONDS)
        conn = self._conn
        with conn:
            conn.execute(
                "INSERT INTO daily_keys (key, rolling_start, rolling_period, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET rolling_period = excluded.rolling_period",
                (key.key, key.rolling_start, key.rolling_period, when),
            )

    def _kept_since(self, since_interval: int | None) -> int | None:
        """``since_interval``, or the retention's cutoff where later: a key the purge would delete is read by
        nobody, whatever the purge did (a read-only store's stay in the file: ``retained_since``)."""
        if self.retained_since is None:
            return since_interval
        cutoff = interval_number(self.retained_since)
        return cutoff if since_interval is None else max(int(since_interval), cutoff)

    def daily_keys(self, since_interval: int | None = None) -> list[DailyKey]:
        """This device's daily keys, oldest first; only those valid at or after ``since_interval`` (and the
        retention's cutoff)."""
        sql = "SELECT key, rolling_start, rolling_period FROM daily_keys"
        params: list[int] = []
        since_interval = self._kept_since(since_interval)
        if since_interval is not None:
            sql += " WHERE rolling_start + rolling_period > ?"
            params.append(int(since_interval))
        rows = self._conn.execute(sql + " ORDER BY rolling_start, rowid", params).fetchall()
        try:
            return [DailyKey(bytes(k), int(s), int(p)) for k, s, p in rows]
        except Exception as exc:  # noqa: BLE001 - a hand-edited table
            raise StoreError(f"the daily_keys table holds an invalid key: {exc}") from None

    def key_for_day(self, rolling_start: int) -> DailyKey | None:
        """The newest stored key starting at ``rolling_start`` (a UTC day), if any."""
        row = self._conn.execute(
            "SELECT key, rolling_start, rolling_period FROM daily_keys WHERE rolling_start = ?"
            " ORDER BY rowid DESC LIMIT 1",
            (int(rolling_start),),
        ).fetchone()
        return None if row is None else DailyKey(bytes(row[0]), int(row[1]), int(row[2]))

    def key_covering(self, interval: int) -> DailyKey | None:
        """The newest stored key valid at ``interval`` (what the daemon should be advertising)."""
        row = self._conn.execute(
            "SELECT key, rolling_start, rolling_period FROM daily_keys"
            " WHERE rolling_start <= ? AND ? < rolling_start + rolling_period ORDER BY rowid DESC LIMIT 1",
            (int(interval), int(interval)),
        ).fetchone()
        return None if row is None else DailyKey(bytes(row[0]), int(row[1]), int(row[2]))

    def count_daily_keys(self) -> int:
        """How many daily keys are stored within the retention (``daily_keys``' rule)."""
        since = self._kept_since(None)
        return int(self._conn.execute(
            "SELECT COUNT(*) FROM daily_keys WHERE rolling_start + rolling_period > ?", (-1 if since is None else since,)
        ).fetchone()[0])
