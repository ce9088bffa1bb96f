"""Checking in by being there: a daemon listener for venue beacons (``beacon.py``).

Rules (all times from the daemon's clock):

* a venue is *heard* while frames of a set that decoded to it keep arriving at or above
  ``min_rssi``; its stay starts at the first decode;
* after ``dwell`` seconds heard (default 5 min, so walking past the door is no visit), the
  device checks in with the stay's start as the check-in time (source ``beacon``);
* when no frame has been heard for ``leave_after`` seconds (default 3 min), it checks out at the
  last frame heard; a stay that never reached ``dwell`` is forgotten;
* a beacon never ends a check-in at another venue: while the visitor is checked in elsewhere (a
  QR code, or another beacon still heard), a neighbour's beacon heard through the wall checks
  nothing in.  That check-in ends only by its own venue's beacon falling silent, the visitor's
  ``checkout`` or its automatic check-out; if this beacon is still heard then, it checks in from
  the first decode, or from the end of that visit if later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bluezone.errors import VenueError
from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.checkins import check_in, check_out, open_visit
from bluezone.venues.location import Venue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NearbyPolicy:
    """When a beacon heard nearby checks a visitor in and out (dwell, leave time, RSSI floor)."""

    dwell: float = 300.0
    leave_after: float = 180.0
    min_rssi: int = -90


@dataclass
class _Stay:
    venue: Venue
    first: float
    last: float
    checked_in: bool = False
    waiting: bool = False  # heard long enough, but the visitor is checked in elsewhere


class BeaconCheckIns:
    """An ``AdvertListener`` for the daemon: venue beacons heard -> check-ins in the store."""

    service_uuid = beacon.SERVICE_UUID

    def __init__(self, store: SightingStore, policy: NearbyPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or NearbyPolicy()
        self.assembler = beacon.FrameAssembler(min_rssi=self.policy.min_rssi)
        self._stays: dict[bytes, _Stay] = {}  # by location id
        self.checkins = 0
        self.checkouts = 0

    def on_advert(self, advert: Advert) -> None:
        result = self.assembler.add(advert.service_data, advert.rssi, advert.time)
        if result is None or result[1] is None:
            return
        venue = result[1]
        stay = self._stays.get(venue.location_id)
        if stay is None:
            self._stays[venue.location_id] = _Stay(venue, advert.time, advert.time)
        else:
            stay.last = max(stay.last, advert.time)
        self.tick(advert.time)

    def tick(self, now: float) -> None:
        for location_id, stay in list(self._stays.items()):
            if now - stay.last >= self.policy.leave_after:
                if stay.checked_in:
                    self._check_out(stay, now)
                del self._stays[location_id]
            elif not stay.checked_in and stay.last - stay.first >= self.policy.dwell:
                self._check_in(stay, now)
        self.assembler.forget_before(now)

    def _check_in(self, stay: _Stay, now: float) -> None:
        current = open_visit(self.store, now)
        if current is not None and current.location_id != stay.venue.location_id:
            if not stay.waiting:
                log.info("venue beacon heard while checked in elsewhere: no check-in while that visit lasts")
                stay.waiting = True
            return  # tried again at the next tick: that visit may have ended by then
        try:
            check_in(self.store, stay.venue, now, source="beacon", start=stay.first)
        except VenueError as exc:  # already checked in there by QR code: that check-in stands
            log.info("venue beacon heard, no new check-in: %s", exc)
        stay.checked_in = True
        self.checkins += 1
        log.info("checked in by venue beacon")

    def _check_out(self, stay: _Stay, now: float) -> None:
        current = open_visit(self.store, now)
        if current is not None and current.location_id == stay.venue.location_id:
            check_out(self.store, now, end=stay.last)
            self.checkouts += 1
            log.info("checked out: venue beacon no longer heard")
