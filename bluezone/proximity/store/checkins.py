"""Venue check-ins' rows, and which of them went to a key server or were told of (the rules live in
bluezone.venues.checkins)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ContextManager

from bluezone.proximity.store.base import StoreBase


class CheckIns(StoreBase):
    """Rows for bluezone.venues: check-ins, their uploads, the venue reports told."""

    CHECKIN_COLUMNS = "id, location_id, description, address, start_time, end_time, checked_out, source"

    def checkins_held(self) -> ContextManager[None]:
        """One transaction for a check-in's reads and the writes they decide, taken for writing before
        the first read (``BEGIN IMMEDIATE``): another process checking in at the same moment (the
        daemon's beacon listener, a typed ``bluezone checkin``) waits for it (its busy timeout)
        and then reads what it wrote.  Read apart, both saw nobody checked in and both wrote: two
        open check-ins, or a beacon ending the visit just typed elsewhere.  A failure undoes it all (``_write_held``)."""
        return self._write_held()

    def add_checkin(
        self,
        location_id: bytes,
        payload: bytes,
        description: str,
        address: str,
        start: float,
        end: float,
        checked_out: bool,
        source: str,
        now: float,
    ) -> int:
        """Insert a check-in (inside ``checkins_held`` when it was decided by reading the others)."""
        with self._write():
            cursor = self._conn.execute(
                "INSERT INTO checkins (location_id, payload, description, address, start_time, end_time, checked_out,"
                " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (location_id, payload, description, address, start, end, int(checked_out), source, now),
            )
        return int(cursor.lastrowid or 0)

    def end_checkin(self, checkin_id: int, end: float) -> None:
        with self._write():
            self._conn.execute("UPDATE checkins SET end_time = ?, checked_out = 1 WHERE id = ?", (end, checkin_id))

    def checkin_rows(
        self, *, since: float | None = None, checkin_id: int | None = None, open_at: float | None = None,
        overlapping: tuple[float, float] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Check-in rows (``CHECKIN_COLUMNS``), oldest first: all, ending after ``since``, one by id,
        the one open at ``open_at`` (newest), or those overlapping ``(start, end)``."""
        sql = f"SELECT {self.CHECKIN_COLUMNS} FROM checkins WHERE end_time < 1e300"
        params: list[Any] = []
        since = self._since(since, "checkins", "end_time")  # (none the purge would have deleted: ``retained_since``)
        if since is not None:
            sql += " AND end_time > ?"
            params.append(float(since))
        if checkin_id is not None:
            sql += " AND id = ?"
            params.append(int(checkin_id))
        if open_at is not None:
            sql += " AND checked_out = 0 AND start_time <= ? AND end_time > ?"
            params += [float(open_at), float(open_at)]
        if overlapping is not None:
            sql += " AND start_time < ? AND end_time > ?"
            params += [float(overlapping[1]), float(overlapping[0])]
        order = " ORDER BY start_time DESC, id DESC" if open_at is not None else " ORDER BY start_time, id"
        return self._conn.execute(sql + order, params).fetchall()

    def save_checkin_uploads(self, rows: Sequence[tuple[bytes, int, float]], server: str, now: float) -> None:
        """Remember check-in reports sent to ``server``: (the sealed report's MAC, the check-in's id, the
        end of the part sent), each row purged with its check-in."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO checkin_uploads (mac, checkin_id, server, end_time, uploaded_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(bytes(mac), int(checkin_id), server, float(end), float(now)) for mac, checkin_id, end in rows],
            )

    def checkin_sent_until(self, server: str) -> dict[int, float]:
        """Check-in id -> the end of the latest part of it sent to ``server`` (an upload sends only what follows)."""
        rows = self._conn.execute(
            "SELECT checkin_id, MAX(end_time) FROM checkin_uploads WHERE server = ? GROUP BY checkin_id", (server,)
        ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    def checkin_uploads_unrecorded(self, server: str) -> dict[int, float]:
        """Check-in id -> when an upload to ``server`` that kept no record of its reports may have sent it
        (a store upgraded from schema 7: ``_v9``)."""
        rows = self._conn.execute(
            "SELECT checkin_id, uploaded_at FROM checkin_uploads_unrecorded WHERE server = ?", (server,)
        ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    def venue_reports_told(self, macs: Sequence[bytes]) -> set[bytes]:
        """Which of ``macs`` (venue reports) a check has told of before."""
        told: set[bytes] = set()
        for i in range(0, len(macs), 500):
            chunk = [bytes(m) for m in macs[i : i + 500]]
            rows = self._conn.execute(
                f"SELECT mac FROM venue_reports_told WHERE mac IN ({', '.join('?' * len(chunk))})", chunk
            ).fetchall()
            told.update(bytes(r[0]) for r in rows)
        return told

    def save_venue_reports_told(self, macs: Sequence[bytes], now: float) -> None:
        """Remember venue reports a check told of (purged after 14 days, as the files that carry them)."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO venue_reports_told (mac, told_at) VALUES (?, ?)", [(bytes(m), now) for m in macs]
            )

    def checkin_uploads(self) -> dict[bytes, tuple[int, float]]:
        """The MAC of every check-in report this device uploaded -> (the check-in's id, when uploaded)."""
        rows = self._conn.execute("SELECT mac, checkin_id, uploaded_at FROM checkin_uploads").fetchall()
        return {bytes(r[0]): (int(r[1]), float(r[2])) for r in rows}
