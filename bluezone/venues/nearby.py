"""Checking in by being there: a daemon listener for venue beacons (``beacon.py``).

Rules (all times from the daemon's clock):

* a venue is *heard* at a frame when, over the ``window`` seconds up to it (default 60), at least
  ``min_frames`` (3) of its frames arrived at or above ``min_rssi`` (-90 dBm) and they are at least
  half of its frames heard then: one frame never starts or extends a stay, however strong.  A
  frame's RSSI scatters by 5-8 dB around its link's mean (shared/RADIO.md), so a beacon heard on
  average at -97 dBm through a wall or from the street sends a frame above -90 dBm every few
  seconds; counted one by one they kept a visitor who had left checked in (and checked in one who
  sat next door), while the window's majority stays below.  Or, whatever the weak frames, when
  ``near_frames`` (20) of them arrived at ``near_rssi`` (-78 dBm) or stronger: copies of the frames
  replayed from afar (anyone can) outvoted a visitor next to the beacon, who was never checked in,
  and next door does not send such frames.  Its stay starts at the first strong frame of the
  first window heard;
* after ``dwell`` seconds heard (default 5 min, so walking past the door is no visit), the
  device checks in with the stay's start as the check-in time (source ``beacon``);
* when no frame has been heard for ``leave_after`` seconds (default 3 min), it checks out at the
  last frame heard; a stay that never reached ``dwell`` is forgotten;
* when the daemon's clock steps back (an NTP correction; a frame or tick more than ``window``
  seconds before the latest time seen), what was heard before is on the old clock: a stay checked
  in is checked out at its last frame (as that clock read it) and the listener starts afresh, so a
  visitor who stays is checked in again after ``dwell`` on the new clock.  Before, the stay's last
  frame lay ahead of the new clock, and a visitor who left stayed checked in until the clock caught up
  (an hour's step: an hour) or the visit's automatic check-out;
* a beacon ends only the check-in it wrote (by its id): when the visitor is checked in there
  already (a QR code), it checks nothing in and ends nothing, and that check-in ends as a typed
  one does (``checkout``, a QR check-in elsewhere, its own length).  A beacon of another venue
  heard during a typed check-in checks in beside it (both rooms were shared, as far as the device
  can tell; ``checkins.py``); two beacons take turns: while one's check-in is open, another heard
  waits (asking the store every ``RETRY_SECONDS``), and checks in from the first decode, or from the end of that
  visit if later.  Before, a
  QR check-in at the café ended 3 minutes after the café's beacon, heard for 5 minutes, fell silent;
* a check-in or check-out the store refuses for now (a full disk, a lock another process holds) waits and is
  tried again at most every ``RETRY_SECONDS``, as the daemon's sightings wait in its backlog: a check-in with its
  stay's first frame, a check-out at the beacon's last one.  Before, the failed write ended the daemon (and every
  sighting with it) on a full disk;
* a beacon check-in still open when the listener starts (the daemon restarted mid-visit) is its own from its
  first moment, as if its beacon was last heard then: it ends at that moment unless the beacon is heard again;
* every dBm rule reads the RSSI with this receiver's RSSI correction added (``bluezone calibrate`` writes it to
  the daemon's config, which ``bluezone run`` passes on), as ``check`` reads sightings; an uncalibrated
  adapter's correction is 0 (its RSSI as it comes): one reading 8 dB low never checked a visitor in.  A
  correction beyond +-``TRUSTED_CORRECTION_DB`` is not believed, by ``check`` either (the RSSI is read as it comes,
  and ``run``, ``status`` and ``doctor`` say so): calibrate accepts +-40 dB, and a +30 from a reference behind a
  wall checked a visitor in next door and from the street.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from bluezone.config import TRUSTED_CORRECTION_DB, trusted_correction
from bluezone.errors import StoreWriteError, VenueError
from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.checkins import check_in_by_beacon, end_beacon_checkin, open_beacon_checkins
from bluezone.venues.location import Venue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NearbyPolicy:
    """When a beacon heard nearby checks a visitor in and out (dwell, leave time, RSSI floor)."""

    dwell: float = 300.0
    leave_after: float = 180.0
    min_rssi: int = -90
    window: float = 60.0
    min_frames: int = 3
    near_rssi: int = -78
    near_frames: int = 20


def correction_warning(rssi_correction: object) -> str | None:
    """The one line ``run``, ``status`` and ``doctor`` say of a correction the venue rules do not believe, else None."""
    if not isinstance(rssi_correction, int) or trusted_correction(rssi_correction) == rssi_correction:
        return None
    return (
        f"rssi_correction {rssi_correction:+d} dB is beyond the +-{TRUSTED_CORRECTION_DB} dB bluezone believes, so venue"
        " check-ins and check read this adapter's RSSI as it comes; calibrate again (docs/calibration.md)"
    )


#: A frame sweeps every stay (check-ins, check-outs, venues no longer heard) at most this often.  A flood of
#: made-up venues, each heard a moment (anyone can make a venue), kept thousands of stays for their 3 minutes,
#: and sweeping them all at every frame took ~0.5 ms a frame after 30 s at 300 frames a second, growing.
SWEEP_SECONDS = 1.0


#: After the store refused a check-in or check-out (a full disk, a lock), the listener's writes wait this long before
#: they are tried again: each try on a lock another process holds waits on the daemon's loop (``LOOP_BUSY_SECONDS``).
RETRY_SECONDS = 10.0


@dataclass
class _Stay:
    venue: Venue | None  # None: a check-in taken over from before a restart (checked in already: never checks in)
    first: float
    last: float
    checked_in: bool = False  # the dwell is over: checked in, by this beacon (``visit_id``) or already there
    visit_id: int | None = None  # the check-in this stay wrote: the only one it may end
    waiting: bool = False  # heard long enough, but another beacon's check-in is open
    ask_at: float = 0.0  # while waiting: when the store is asked again whether that check-in is over


class BeaconCheckIns:
    """An ``AdvertListener`` for the daemon: venue beacons heard -> check-ins in the store."""

    service_uuid = beacon.SERVICE_UUID

    def __init__(self, store: SightingStore, policy: NearbyPolicy | None = None, rssi_correction: int = 0) -> None:
        self.store = store
        self.policy = policy or NearbyPolicy()
        #: this receiver's RSSI correction (``bluezone calibrate``, the daemon's config): every dBm rule reads the
        #: corrected RSSI, as ``check`` does; an adapter that reads 8 dB low never checked a visitor in.  One beyond
        #: TRUSTED_CORRECTION_DB is not believed (0)
        self.rssi_correction = trusted_correction(rssi_correction)
        warning = correction_warning(rssi_correction)
        if warning:
            log.warning("%s", warning)
        self.assembler = beacon.FrameAssembler(min_rssi=self.policy.min_rssi)
        self._stays: dict[bytes, _Stay] = {}  # by location id
        #: by location id: the times of its frames in the window, of its strong ones and of its near ones (kept
        #: apart: a flood of 1,000 frames a second listed the window's strong frames at each, 3.5 ms a frame)
        self._recent: dict[bytes, tuple[deque[float], deque[float], deque[float]]] = {}
        self.checkins = 0
        self.checkouts = 0
        self._latest: float | None = None  # the latest time of a frame or tick: a clock step back is told by it
        self._swept: float | None = None  # when ``tick`` last swept the stays
        #: check-outs the store refused for now: (the check-in's id, its end), tried again before anything else
        self._owed_checkouts: list[tuple[int, float]] = []
        self._refused: str | None = None  # why the store refused the last write, while writes wait
        self._retry_at = 0.0  # when writes are tried again after a refusal

    def on_advert(self, advert: Advert) -> None:
        self._follow_clock(advert.time)
        rssi = advert.rssi + self.rssi_correction
        result = self.assembler.add(advert.service_data, rssi, advert.time)
        if result is None or result[1] is None:
            return
        venue = result[1]
        first = self._heard(venue.location_id, advert.time, rssi)
        if first is not None:
            stay = self._stays.get(venue.location_id)
            if stay is None:
                self._stays[venue.location_id] = _Stay(venue, first, advert.time)
            else:
                stay.last = max(stay.last, advert.time)
        if self._swept is None or not self._swept <= advert.time < self._swept + SWEEP_SECONDS:
            self.tick(advert.time)

    def _heard(self, location_id: bytes, t: float, rssi: int) -> float | None:
        """The first strong frame of the window up to ``t`` if the venue is heard now (enough strong frames, and
        no fewer than weak ones; or ``near_frames`` near ones, whatever the weak ones), else None."""
        recent, strong, near = self._recent.setdefault(location_id, (deque(), deque(), deque()))
        recent.append(t)
        if rssi >= self.policy.min_rssi:
            strong.append(t)
        if rssi >= self.policy.near_rssi:
            near.append(t)
        for times in (recent, strong, near):
            while times and times[0] < t - self.policy.window:
                times.popleft()
        majority = len(strong) >= self.policy.min_frames and 2 * len(strong) >= len(recent)
        # near frames: copies replayed from afar, however many, cannot outvote them
        return strong[0] if majority or len(near) >= self.policy.near_frames else None

    def _follow_clock(self, t: float) -> None:
        """Note ``t``; if it is more than a window before the latest time seen, the clock stepped back:
        check out the stays checked in (at their last frame, on the old clock) and start afresh."""
        latest = self._latest
        self._latest = t if latest is None else max(latest, t)
        if latest is None:
            self._take_over(t)
            return
        if t >= latest - self.policy.window:
            return
        log.warning("clock stepped back %.0f s: venue stays heard before it end at their last frame", latest - t)
        for stay in self._stays.values():
            if stay.checked_in:
                self._check_out(stay, latest)
        self._stays.clear()
        self._recent.clear()
        self.assembler = beacon.FrameAssembler(min_rssi=self.policy.min_rssi)
        self._latest = t

    def _take_over(self, now: float) -> None:
        """Make the beacon check-ins still open at the listener's first moment ``now`` its own (the daemon restarted
        mid-visit: an upgrade, a crash), as if their beacons were last heard then.  Heard again, they go on and end
        when their beacon falls silent; not heard for ``leave_after``, they end at ``now``.  Before, a visitor who
        left before the beacon was heard for the whole dwell again, or moved on to another beacon's venue (which
        waited its turn), kept the old check-in for its whole automatic length."""
        for visit in open_beacon_checkins(self.store, now):
            self._stays[visit.location_id] = _Stay(None, visit.start, now, checked_in=True, visit_id=visit.id)

    def tick(self, now: float) -> None:
        """Check in the stays heard long enough, check out those gone quiet, forget what is no longer heard."""
        self._follow_clock(now)
        self._swept = now
        self._check_out_owed(now)
        for location_id, stay in list(self._stays.items()):
            if now - stay.last >= self.policy.leave_after:
                if stay.checked_in:
                    self._check_out(stay, now)
                del self._stays[location_id]
            elif not stay.checked_in and stay.last - stay.first >= self.policy.dwell:
                self._check_in(stay, now)
        for location_id, (recent, _, _) in list(self._recent.items()):  # venues no longer heard at all
            if not recent or recent[-1] < now - self.policy.window:
                del self._recent[location_id]
        self.assembler.forget_before(now)

    def _writes_wait(self, now: float) -> bool:
        """Whether the store refused a write less than ``RETRY_SECONDS`` ago: what this sweep would write waits.  A try
        due further off than that is due now: the clock stepped back since (it waited until the clock caught up)."""
        return self._refused is not None and now < self._retry_at <= now + RETRY_SECONDS

    def _store_refused(self, exc: StoreWriteError, now: float) -> None:
        if self._refused is None:
            log.warning("venue check-ins wait: %s; tried again every %.0f s", exc, RETRY_SECONDS)
        self._refused, self._retry_at = str(exc), now + RETRY_SECONDS

    def _store_took(self) -> None:
        if self._refused is not None:
            log.warning("the store takes venue check-ins again")
        self._refused = None

    def _check_out_owed(self, now: float) -> None:
        """The check-outs the store refused, in the order they were due, while it takes them."""
        while self._owed_checkouts and not self._writes_wait(now):
            visit_id, end = self._owed_checkouts[0]
            try:
                ended = end_beacon_checkin(self.store, visit_id, now, end)
            except StoreWriteError as exc:
                self._store_refused(exc, now)
                return
            self._store_took()
            self._owed_checkouts.pop(0)
            if ended is not None:
                self.checkouts += 1
                log.info("checked out: venue beacon no longer heard")

    def _check_in(self, stay: _Stay, now: float) -> None:
        assert stay.venue is not None  # only a stay taken over lacks one, and it is checked in already
        if self._writes_wait(now) or self._owed_checkouts:  # (a check-out due before it goes first)
            return  # tried again at a later sweep: the stay and its first frame are kept
        if stay.waiting and now < stay.ask_at <= now + RETRY_SECONDS:
            return  # each waiting venue asked at every sweep, a write transaction a second each: made-up ones kept heard
        try:
            result = check_in_by_beacon(self.store, stay.venue, now, start=stay.first)
        except StoreWriteError as exc:
            self._store_refused(exc, now)
            return
        except VenueError:  # already checked in there by QR code: that check-in stands, none counted
            # not the error's words: they name the venue and the time, which stay in the store (0600), out of the journal
            log.info("venue beacon heard where the visitor is checked in already: no new check-in")
            stay.checked_in = True
            return
        if result is None:  # another beacon's check-in is open
            if not stay.waiting:
                log.info("venue beacon heard while checked in by another: no check-in while that visit lasts")
                stay.waiting = True
            stay.ask_at = now + RETRY_SECONDS
            return  # tried again RETRY_SECONDS on: that visit may have ended by then (the check-in starts at its end)
        self._store_took()
        stay.checked_in, stay.visit_id = True, result.visit.id
        self.checkins += 1
        log.info("checked in by venue beacon")

    def _check_out(self, stay: _Stay, now: float) -> None:
        if stay.visit_id is None:
            return  # it wrote none
        self._owed_checkouts.append((stay.visit_id, stay.last))  # (written now unless the store refuses it)
        self._check_out_owed(now)
