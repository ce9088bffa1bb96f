"""An F0's check-ins as encrypted reports, for ``bluezone upload`` (shown, asked, optional).

Each visit of the infectious window is put on the 10-minute grid and split at UTC midnight
(``visits.py``); each part becomes one ``CheckInProtectedReport`` sealed with the venue's id.
Only the report and its UTC day travel: the day lets the server cap check-ins per day and
refuse old or future ones, which it cannot read from the encrypted record.  Visits still under
way are cut at ``now``; visits that round to no interval (under 5 minutes) are not sent.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.errors import VenueError
from bluezone.proximity.store import SightingStore
from bluezone.venues.location import Venue
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.venues.visits import Visit, iso, local_time, report_times

#: Transmission risk level sent with every check-in (CWA's levels are 1-8; bluezone's keys carry
#: no per-day risk either, so one middle level; the matcher reports it and does not weigh it).
DEFAULT_TRANSMISSION_RISK = 6


@dataclass(frozen=True)
class OutgoingReport:
    """One part (one UTC day) of one visit, sealed; ``visit`` stays on the device."""

    visit: Visit
    start_interval: int
    period: int
    report: ProtectedReport

    @property
    def day(self) -> int:
        return self.start_interval * INTERVAL_SECONDS // DAY_SECONDS

    def entry(self) -> dict[str, Any]:
        """What is sent: the UTC day number and the sealed report (base64 protobuf)."""
        return {"day": self.day, "report": base64.b64encode(bytes(self.report)).decode("ascii")}

    def as_dict(self) -> dict[str, Any]:
        """What the uploader is shown (the name never leaves the device)."""
        return {
            "venue": self.visit.description,
            "start": iso(self.start_interval * INTERVAL_SECONDS),
            "end": iso((self.start_interval + self.period) * INTERVAL_SECONDS),
            "minutes": self.period * INTERVAL_SECONDS // 60,
        }


def reports_to_upload(
    visits: Iterable[Visit], since: float, now: float, transmission_risk: int = DEFAULT_TRANSMISSION_RISK,
    sent_until: Mapping[int, float] | None = None,
) -> list[OutgoingReport]:
    """Sealed reports for the visits that overlap ``since`` .. ``now``, oldest first; of a visit in
    ``sent_until`` (check-in id -> end of what an earlier upload to the same server sent) only the
    minutes after that: a visit sent again would read to everyone who was there as a second case."""
    sent_until = sent_until or {}
    return [
        OutgoingReport(visit, s, p, ProtectedReport.seal(visit.location_id, s, p, transmission_risk))
        for visit in sorted(visits, key=lambda v: v.start)
        for s, p in report_times(visit, since, now, sent_until.get(visit.id))
    ]


def owner_warning_reports(
    venue: Venue, start: float, end: float, now: float, transmission_risk: int = DEFAULT_TRANSMISSION_RISK
) -> list[OutgoingReport]:
    """A venue owner's warning: reports for everyone present ``start`` .. ``end`` (at most 14 days
    back, not in the future), as if a case had been there all that time."""
    if not start < end:
        raise VenueError(f"the warning must end after it starts ({local_time(start)} .. {local_time(end)})")
    if end > now:
        raise VenueError(f"the warning ends in the future ({local_time(end)})")
    if start < now - RETENTION_DAYS * DAY_SECONDS:
        raise VenueError(f"the warning starts more than {RETENTION_DAYS} days ago")
    window = Visit(0, venue.location_id, venue.description, venue.address, start, end, True, "manual")
    out = reports_to_upload([window], since=start, now=now, transmission_risk=transmission_risk)
    if not out:
        raise VenueError("the warning window is shorter than 5 minutes")
    return out


def remember_uploaded(store: SightingStore, reports: Iterable[OutgoingReport], server: str, now: float) -> None:
    """Remember that ``reports`` went to ``server`` (each by its MAC, which no other sealing shares), so
    that a check does not warn this device of its own visits when the server publishes them."""
    store.save_checkin_uploads(
        [(r.report.mac, r.visit.id, (r.start_interval + r.period) * INTERVAL_SECONDS) for r in reports], server, now
    )
