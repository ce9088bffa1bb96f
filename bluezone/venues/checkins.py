"""The visitor's check-ins, kept in the sighting store (table ``checkins``) for 14 days.

A check-in is written with its automatic check-out time as its end, so a visitor who forgets
to check out is out after the venue's default length with nothing running; ``check_out``
moves the end earlier.  Check-ins never overlap: a person is in one place at a time, so a new
live check-in ends an open one, and a visit recorded afterwards must not overlap another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import VenueError
from bluezone.proximity.store import SightingStore
from bluezone.venues.location import MAX_STAY_MINUTES, Venue
from bluezone.venues.visits import Visit, iso

log = logging.getLogger(__name__)

SOURCES = ("url", "image", "beacon", "manual")
_COLUMNS = "id, location_id, description, address, start_time, end_time, checked_out, source"


@dataclass(frozen=True)
class CheckInResult:
    """What ``check_in`` did: the new visit, and the open one it ended (if any)."""

    visit: Visit
    ended: Visit | None

    def as_dict(self) -> dict[str, object]:
        return {"checkin": self.visit.as_dict(), "ended": None if self.ended is None else self.ended.as_dict()}


def _visit(row: tuple) -> Visit:
    return Visit(
        id=int(row[0]),
        location_id=bytes(row[1]),
        description=str(row[2]),
        address=str(row[3]),
        start=float(row[4]),
        end=float(row[5]),
        checked_out=bool(row[6]),
        source=str(row[7]),
    )


def visits(store: SightingStore, since: float | None = None) -> list[Visit]:
    """Every stored check-in (ending after ``since``), oldest first."""
    sql = f"SELECT {_COLUMNS} FROM checkins WHERE end_time < 1e300"
    params: list[float] = []
    if since is not None:
        sql += " AND end_time > ?"
        params.append(float(since))
    return [_visit(r) for r in store.db.conn.execute(sql + " ORDER BY start_time, id", params)]


def venue_payloads(store: SightingStore) -> dict[bytes, bytes]:
    """Location id -> QR payload of every venue checked in at (the venue's own bytes)."""
    return {bytes(r[0]): bytes(r[1]) for r in store.db.conn.execute("SELECT location_id, payload FROM checkins")}


def open_visit(store: SightingStore, now: float) -> Visit | None:
    """The check-in the visitor is in now (not checked out, automatic check-out still ahead)."""
    row = store.db.conn.execute(
        f"SELECT {_COLUMNS} FROM checkins WHERE checked_out = 0 AND start_time <= ? AND end_time > ?"
        " ORDER BY start_time DESC LIMIT 1",
        (now, now),
    ).fetchone()
    return None if row is None else _visit(row)


def _insert(store: SightingStore, venue: Venue, start: float, end: float, checked_out: bool, source: str, now: float) -> int:
    cursor = store.db.conn.execute(
        "INSERT INTO checkins (location_id, payload, description, address, start_time, end_time, checked_out,"
        " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (venue.location_id, venue.payload, venue.description, venue.address, start, end, int(checked_out), source, now),
    )
    return int(cursor.lastrowid or 0)


def _get(store: SightingStore, visit_id: int) -> Visit:
    return _visit(store.db.conn.execute(f"SELECT {_COLUMNS} FROM checkins WHERE id = ?", (visit_id,)).fetchone())


def check_in(store: SightingStore, venue: Venue, now: float, source: str = "url") -> CheckInResult:
    """Check in at ``venue`` now, out automatically after its default stay; ends an open check-in.

    Checking in again where one already is changes nothing and says so.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown check-in source {source!r}")
    current = open_visit(store, now)
    if current is not None and current.location_id == venue.location_id:
        raise VenueError(f"already checked in at {current.description} since {iso(current.start)}")
    with store.db.conn:
        if current is not None:
            store.db.conn.execute(
                "UPDATE checkins SET end_time = ?, checked_out = 1 WHERE id = ?", (max(now, current.start), current.id)
            )
        new_id = _insert(store, venue, now, now + venue.stay_minutes * 60, False, source, now)
    ended = None if current is None else _get(store, current.id)
    log.info("checked in at a venue until %s", iso(now + venue.stay_minutes * 60))
    return CheckInResult(_get(store, new_id), ended)


def record_visit(store: SightingStore, venue: Venue, start: float, end: float, now: float) -> Visit:
    """Record a past visit (``checkin URL --start --end``): within 14 days, not in the future, no overlap."""
    if not start < end:
        raise VenueError(f"the visit must end after it starts ({iso(start)} .. {iso(end)})")
    if end > now:
        raise VenueError(f"the visit ends in the future ({iso(end)}); record it afterwards, or check in now")
    if start < now - RETENTION_DAYS * DAY_SECONDS:
        raise VenueError(f"the visit starts more than {RETENTION_DAYS} days ago: it would be deleted at once")
    if end - start > MAX_STAY_MINUTES * 60:
        raise VenueError(f"a visit lasts at most {MAX_STAY_MINUTES // 60} h {MAX_STAY_MINUTES % 60} min")
    clash = store.db.conn.execute(
        f"SELECT {_COLUMNS} FROM checkins WHERE start_time < ? AND end_time > ? LIMIT 1", (end, start)
    ).fetchone()
    if clash is not None:
        other = _visit(clash)
        raise VenueError(
            f"the visit overlaps the check-in at {other.description} ({iso(other.start)} .. {iso(other.end)})"
        )
    with store.db.conn:
        new_id = _insert(store, venue, start, end, True, "manual", now)
    return _get(store, new_id)


def check_out(store: SightingStore, now: float) -> Visit:
    """Check out of the open check-in now."""
    current = open_visit(store, now)
    if current is None:
        raise VenueError("not checked in anywhere (check-ins end by themselves after the venue's default stay)")
    with store.db.conn:
        store.db.conn.execute("UPDATE checkins SET end_time = ?, checked_out = 1 WHERE id = ?", (now, current.id))
    return _get(store, current.id)
