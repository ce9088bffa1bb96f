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
from bluezone.venues.location import MAX_STAY_MINUTES, Venue, visible_text
from bluezone.venues.visits import Visit, iso, local_time

log = logging.getLogger(__name__)

SOURCES = ("url", "image", "beacon", "manual")


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
        # the Venue's text is shown so already; a store written by an older version may hold raw text
        description=visible_text(str(row[2])),
        address=visible_text(str(row[3])),
        start=float(row[4]),
        end=float(row[5]),
        checked_out=bool(row[6]),
        source=str(row[7]),
    )


def visits(store: SightingStore, since: float | None = None) -> list[Visit]:
    """Every stored check-in (ending after ``since``), oldest first."""
    return [_visit(r) for r in store.checkin_rows(since=since)]


def open_visit(store: SightingStore, now: float) -> Visit | None:
    """The check-in the visitor is in now (not checked out, automatic check-out still ahead)."""
    rows = store.checkin_rows(open_at=now)
    return _visit(rows[0]) if rows else None


def _get(store: SightingStore, visit_id: int) -> Visit:
    return _visit(store.checkin_rows(checkin_id=visit_id)[0])


def check_in(
    store: SightingStore, venue: Venue, now: float, source: str = "url", start: float | None = None
) -> CheckInResult:
    """Check in at ``venue`` (since ``start``, default now), out automatically after its default
    stay; ends an open check-in.  Checking in again where one already is changes nothing and says so.
    """
    result = _check_in(store, venue, now, source, start, end_other=True)
    assert result is not None  # (only a beacon's keeps another venue's check-in)
    return result


def check_in_by_beacon(store: SightingStore, venue: Venue, now: float, start: float) -> CheckInResult | None:
    """``check_in`` for the beacon listener, from the stay's first frame: None, nothing written, while
    the visitor is checked in at another venue (a beacon never ends one: a neighbour's is heard through
    the wall).  Decided in the transaction that writes, so a check-in typed at that moment stands."""
    return _check_in(store, venue, now, "beacon", start, end_other=False)


def _check_in(
    store: SightingStore, venue: Venue, now: float, source: str, start: float | None, *, end_other: bool
) -> CheckInResult | None:
    if source not in SOURCES:
        raise ValueError(f"unknown check-in source {source!r}")
    start = now if start is None else min(start, now)
    with store.checkins_held():  # read and written as one: another process checking in now waits
        current = open_visit(store, now)
        if current is not None and current.location_id == venue.location_id:
            raise VenueError(f"already checked in at {current.description} since {local_time(current.start)} (`bluezone checkout` ends it)")
        if current is not None and not end_other:
            return None
        if current is not None:
            start = max(start, current.start)
        # a beacon dates its check-in back to the first frame heard: not into a visit that ended since
        earlier = [_visit(r) for r in store.checkin_rows(overlapping=(start, now))]
        start = max([start, *(v.end for v in earlier if current is None or v.id != current.id)])
        new_id = store.add_checkin(
            venue.location_id, venue.payload, venue.description, venue.address, start, start + venue.stay_minutes * 60,
            False, source, now, end_open_id=None if current is None else current.id, end_open_at=start,
        )
        ended = None if current is None else _get(store, current.id)
        result = CheckInResult(_get(store, new_id), ended)
    log.info("checked in at a venue until %s", iso(start + venue.stay_minutes * 60))
    return result


def record_visit(store: SightingStore, venue: Venue, start: float, end: float, now: float) -> Visit:
    """Record a past visit (``checkin URL --start --end``): within 14 days, not in the future, no overlap."""
    if not start < end:
        raise VenueError(f"the visit must end after it starts ({local_time(start)} .. {local_time(end)})")
    if end > now:
        raise VenueError(f"the visit ends in the future ({local_time(end)}); record it afterwards, or check in now")
    if start < now - RETENTION_DAYS * DAY_SECONDS:
        raise VenueError(f"the visit starts more than {RETENTION_DAYS} days ago: it would be deleted at once")
    if end - start > MAX_STAY_MINUTES * 60:
        raise VenueError(f"a visit lasts at most {MAX_STAY_MINUTES // 60} h {MAX_STAY_MINUTES % 60} min")
    with store.checkins_held():
        clashes = store.checkin_rows(overlapping=(start, end))
        if clashes:
            other = _visit(clashes[0])
            raise VenueError(
                f"the visit overlaps the check-in at {other.description} ({local_time(other.start)} .. {local_time(other.end)})"
            )
        new_id = store.add_checkin(
            venue.location_id, venue.payload, venue.description, venue.address, start, end, True, "manual", now
        )
        return _get(store, new_id)


def check_out(store: SightingStore, now: float, end: float | None = None, *, at: bytes | None = None) -> Visit:
    """Check out of the open check-in, at ``end`` (default now; a beacon listener gives the last
    time it heard the venue, and ``at``, its location id: a check-in typed elsewhere meanwhile is
    not ended, VenueError instead)."""
    with store.checkins_held():
        current = open_visit(store, now)
        if current is None or (at is not None and current.location_id != at):
            raise VenueError("not checked in anywhere (check-ins end by themselves after the venue's default stay)"
                             if current is None else f"checked in at {current.description}, not there")
        end = now if end is None else min(max(end, current.start), now)
        store.end_checkin(current.id, end)
        return _get(store, current.id)
