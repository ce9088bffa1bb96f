"""The visitor's check-ins, kept in the sighting store (table ``checkins``) for 14 days.

A check-in is written with its automatic check-out time as its end, so a visitor who forgets
to check out is out after the venue's default length with nothing running; a check-out moves
the end earlier.  Who ends what:

* a check-in typed or scanned (a QR code: ``url``, ``image``) is ended by the visitor
  (``checkout``), by one typed elsewhere, or by its own length; never by a beacon;
* a beacon's check-in is ended by its beacon falling silent (the listener ends the very row it
  wrote, by id, or one a beacon wrote before the daemon restarted: the new listener takes it over), by ``checkout``, or by its own length;
* a beacon of another venue heard during a typed check-in checks in beside it: the two overlap,
  and a warning for either room reaches the visitor (both rooms were shared, as far as the device
  can tell).  A beacon heard where the visitor is checked in already checks nothing in; beacons
  take turns (a second one heard waits until the first's check-in ends);
* a visit recorded afterwards (``--start --end``) overlaps nothing.
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
#: What a person checks in with (a QR code's URL or photo), as opposed to a beacon heard or a past visit.
TYPED = ("url", "image")


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


def open_visits(store: SightingStore, now: float) -> list[Visit]:
    """The check-ins the visitor is in now (not checked out, automatic check-out still ahead), newest first."""
    return [_visit(r) for r in store.checkin_rows(open_at=now)]


def _get(store: SightingStore, visit_id: int) -> Visit:
    return _visit(store.checkin_rows(checkin_id=visit_id)[0])


def _refuse_twice(venue: Venue, opened: list[Visit]) -> None:
    """VenueError if one of the open check-ins is at ``venue`` already."""
    for current in opened:
        if current.location_id == venue.location_id:
            raise VenueError(f"already checked in at {current.description} since {local_time(current.start)} (`bluezone checkout` ends it)")


def _add(store: SightingStore, venue: Venue, start: float, source: str, now: float) -> Visit:
    new_id = store.add_checkin(
        venue.location_id, venue.payload, venue.description, venue.address, start, start + venue.stay_minutes * 60,
        False, source, now,
    )
    log.info("checked in at a venue until %s", iso(start + venue.stay_minutes * 60))
    return _get(store, new_id)


def check_in(store: SightingStore, venue: Venue, now: float, source: str = "url") -> CheckInResult:
    """Check in at ``venue`` with its QR code now, out automatically after its default stay; ends the
    typed check-in open elsewhere (not a beacon's: that ends when its beacon falls silent).  Checking in
    again where one already is changes nothing and says so."""
    if source not in TYPED:
        raise ValueError(f"a check-in by {source!r} is not typed: check_in_by_beacon or record_visit")
    with store.checkins_held():  # read and written as one: another process checking in now waits
        opened = open_visits(store, now)
        _refuse_twice(venue, opened)
        current = next((v for v in opened if v.source in TYPED), None)
        if current is not None:
            store.end_checkin(current.id, now)
        visit = _add(store, venue, now, source, now)
        return CheckInResult(visit, None if current is None else _get(store, current.id))


def check_in_by_beacon(store: SightingStore, venue: Venue, now: float, start: float) -> CheckInResult | None:
    """The beacon listener's check-in, from the stay's first frame; beside a typed check-in elsewhere, never
    ending one.  None, nothing written, while another beacon's check-in is open (they take turns);
    VenueError if checked in at ``venue`` already.  Decided in the transaction that writes, so a check-in
    typed at that moment is seen."""
    with store.checkins_held():
        opened = open_visits(store, now)
        _refuse_twice(venue, opened)
        if any(v.source == "beacon" for v in opened):
            return None
        # dated back to the first frame heard, but not into a beacon's visit, nor one here, that ended since
        start = min(start, now)
        earlier = [_visit(r) for r in store.checkin_rows(overlapping=(start, now))]
        start = max([start, *(v.end for v in earlier if v.source == "beacon" or v.location_id == venue.location_id)])
        return CheckInResult(_add(store, venue, start, "beacon", now), None)


def open_beacon_checkins(store: SightingStore, now: float) -> list[Visit]:
    """The check-ins a beacon wrote that are open ``now``: a listener starting (the daemon restarted mid-visit)
    takes them as its own, so they end when their beacon falls silent, not after their whole automatic length."""
    return [v for v in open_visits(store, now) if v.source == "beacon"]


def end_beacon_checkin(store: SightingStore, checkin_id: int, now: float, end: float) -> Visit | None:
    """End the beacon's own check-in ``checkin_id`` at ``end`` (its last frame heard), if it is still open;
    None if the visitor (``checkout``) or its own length ended it first.  No other check-in is touched."""
    with store.checkins_held():
        rows = store.checkin_rows(checkin_id=checkin_id)
        visit = _visit(rows[0]) if rows else None
        if visit is None or visit.checked_out or visit.end <= now:
            return None
        store.end_checkin(visit.id, min(max(end, visit.start), now))
        return _get(store, visit.id)


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


def check_out(store: SightingStore, now: float) -> list[Visit]:
    """Check out of every open check-in now (the visitor left: a beacon's too), the newest first."""
    with store.checkins_held():
        opened = open_visits(store, now)
        if not opened:
            raise VenueError("not checked in anywhere (check-ins end by themselves after the venue's default stay)")
        for current in opened:
            store.end_checkin(current.id, max(now, current.start))
        return [_get(store, v.id) for v in opened]
