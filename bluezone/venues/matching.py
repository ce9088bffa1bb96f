"""Venue warnings against this device's check-ins: which visits overlapped a case's, how long.

Only reports whose location-id hash is one of the visitor's venues are opened (with that
venue's id, which only someone who had the QR code or beacon knows); the overlap rule is CWA's
(``CheckInWarningMatcher.kt``): visits split at UTC midnight, overlap = max(starts)..min(ends),
none if not positive; the parts of one stay together that the case's reports split (at UTC midnight,
or where a second upload took up a visit under way at the first) are joined again (so 23:50-00:10 is 20
minutes, not twice 10).  The venue's name
and address come from the local check-in, never from the server.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.errors import VenueError
from bluezone.venues.location import location_id_hash
from bluezone.keyformat.venue_reports import ProtectedReport, VenueWarning
from bluezone.venues.visits import Visit, iso, overlap, report_times, split_at_midnight

log = logging.getLogger(__name__)

#: "Shared a room with a case for 15 minutes or more": the threshold the report highlights.
LONG_OVERLAP_MINUTES = 15.0


#: What the memory of a venue exposure keeps (``VenueExposure.as_dict``: to join a stay told in parts, to know a
#: replay) and a check never shows: the case's own times at the venue, and the overlap's ends, which are the case's
#: arrival or departure wherever it came or went within my visit.  In a small shop they can name the case; CWA
#: shows a warned visitor the check-in, its date and the risk (``TraceLocationCheckInRisk``), no case's times.
NOT_SHOWN = ("case_visit", "overlap_start", "overlap_end")


def shown(exposure: Mapping[str, Any]) -> dict[str, Any]:
    """A venue exposure (``VenueExposure.as_dict``, or one an earlier check remembered) as a check shows it: the
    date, my own visit and the minutes a case was there too, never when the case came or went (``NOT_SHOWN``)."""
    return {k: v for k, v in exposure.items() if k not in NOT_SHOWN}


@dataclass(frozen=True)
class VenueExposure:
    """One of my visits overlapped a case's stay at the same venue."""

    visit: Visit
    warning: VenueWarning
    overlap_start: float
    overlap_end: float
    #: how many reports (cases) share exactly these minutes of my visit; the highest risk's is ``warning``
    cases: int = 1

    @property
    def minutes(self) -> float:
        return (self.overlap_end - self.overlap_start) / 60

    @property
    def date(self) -> str:
        return dt.datetime.fromtimestamp(self.overlap_start, dt.UTC).date().isoformat()

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "venue": self.visit.description,
            "address": self.visit.address,
            "your_visit": {"start": iso(self.visit.start), "end": iso(self.visit.end)},
            "case_visit": {"start": iso(self.warning.start), "end": iso(self.warning.end)},
            "overlap_start": iso(self.overlap_start),
            "overlap_end": iso(self.overlap_end),
            "overlap_minutes": round(self.minutes, 1),
            "fifteen_minutes_or_more": self.minutes >= LONG_OVERLAP_MINUTES,
            "transmission_risk": self.warning.transmission_risk,
            "cases": self.cases,
            "checkin_id": self.visit.id,
        }


@dataclass(frozen=True)
class OwnCheckIn:
    """One of my visits that a venue-warning file names because this device uploaded it: it warns the
    others who were there, not me (not an exposure).  ``recorded`` False: uploaded by a version that kept
    no record of its reports (schema 7), known by its times alone (``set_aside_own``)."""

    visit: Visit
    uploaded_at: float
    recorded: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": dt.datetime.fromtimestamp(self.visit.start, dt.UTC).date().isoformat(),
            "venue": self.visit.description,
            "address": self.visit.address,
            "your_visit": {"start": iso(self.visit.start), "end": iso(self.visit.end)},
            "uploaded_at": iso(self.uploaded_at),
            "recorded": self.recorded,
            "checkin_id": self.visit.id,
        }


def set_aside_own(
    reports: Iterable[ProtectedReport], visits: Sequence[Visit], uploaded: Mapping[bytes, tuple[int, float]],
    unrecorded: Mapping[int, float] | None = None,
) -> tuple[list[ProtectedReport], list[OwnCheckIn]]:
    """The reports to match (every one but this device's own), and my visits that those set aside came from.

    ``uploaded`` maps the MAC of each report this device sealed and sent to (its check-in's id, when sent).
    A MAC covers the report's random IV, so a report is known as mine only if I sealed it: another
    case's warning for the same venue and the same minutes is still matched.  (CWA marks a check-in
    ``checkinSubmitted`` once sent; bluezone keeps the reports, which tells its own from an identical one.)
    ``unrecorded`` maps a check-in an upload may have sent without recording its reports (a store upgraded
    from schema 7) to that upload's time: a report of its venue with exactly the times that upload would
    have sent is taken for mine (an identical report of another case too: a cost borne only by an F0,
    for at most 14 days after the upgrade)."""
    unrecorded = unrecorded or {}
    expected: dict[bytes, list[tuple[Visit, float, list[tuple[int, int]]]]] = {}
    for visit in visits:
        if visit.id in unrecorded:
            at = unrecorded[visit.id]
            expected.setdefault(location_id_hash(visit.location_id), []).append(
                (visit, at, report_times(visit, visit.start, at))
            )
    others: list[ProtectedReport] = []
    first_sent: dict[int, tuple[float, bool]] = {}
    for report in reports:
        by_mac = uploaded.get(report.mac)
        sent = (*by_mac, True) if by_mac else _sent_unrecorded(report, expected.get(report.location_id_hash, ()))
        if sent is None:
            others.append(report)
        else:
            visit_id, at, recorded = sent
            earlier = first_sent.get(visit_id)
            first_sent[visit_id] = (at, recorded) if earlier is None or at < earlier[0] else earlier
    own = [OwnCheckIn(v, *first_sent[v.id]) for v in visits if v.id in first_sent]
    return others, sorted(own, key=lambda o: (o.visit.start, o.visit.id))


def _sent_unrecorded(
    report: ProtectedReport, candidates: Iterable[tuple[Visit, float, list[tuple[int, int]]]]
) -> tuple[int, float, bool] | None:
    """(check-in id, upload time, False) if ``report`` has exactly the times an unrecorded upload would have
    sent of one of ``candidates`` (my visits of its venue), else None."""
    for visit, at, times in candidates:
        try:
            warning = report.open(visit.location_id)
        except VenueError:
            return None
        if (warning.start_interval, warning.period) in times:
            return visit.id, at, False
    return None


def match_venue_reports(visits: Sequence[Visit], reports: Iterable[ProtectedReport]) -> list[VenueExposure]:
    """Every overlap of a visit with a report of the same venue, by date and start."""
    by_hash: dict[bytes, list[Visit]] = {}
    for visit in visits:
        by_hash.setdefault(location_id_hash(visit.location_id), []).append(visit)
    found: list[VenueExposure] = []
    undecryptable = 0
    for report in reports:
        mine = by_hash.get(report.location_id_hash)
        if not mine:
            continue
        try:
            warning = report.open(mine[0].location_id)
        except VenueError:
            undecryptable += 1  # a fake report whose random hash hit one of mine, or a damaged one
            continue
        for visit in mine:
            for start, end in split_at_midnight(visit.start, visit.end):
                if overlap(start, end, warning.start, warning.end) > 0:
                    found.append(VenueExposure(visit, warning, max(start, warning.start), min(end, warning.end)))
    if undecryptable:
        log.info("%d venue report(s) named one of my venues but did not open", undecryptable)
    return _join_adjacent(sorted(_one_per_overlap(found), key=lambda e: (e.visit.id, e.overlap_start)))


def continued(found: Sequence[VenueExposure], told: Iterable[Mapping[str, Any]]) -> list[VenueExposure]:
    """``found``, each exposure that takes up one an earlier check told (``VenueExposure.as_dict``) joined
    to it: the same visit of mine, the case's report beginning where the told one's ended and the overlap
    going on from the told one's end.  A case's second upload sends the rest of a visit under way at its
    first (``report_times``' ``sent_until``), and a check between the two read only the first part: as
    ``_join_adjacent`` joins the parts read in one check, the stay is told whole, not as two short ones."""
    ends: dict[tuple[int, str, str], tuple[float, float, int, int]] = {}
    for e in told:
        try:
            key = (int(e["checkin_id"]), str(e["case_visit"]["end"]), str(e["overlap_end"]))
            ends[key] = (
                dt.datetime.fromisoformat(str(e["case_visit"]["start"])).timestamp(),
                dt.datetime.fromisoformat(str(e["overlap_start"])).timestamp(),
                int(e["transmission_risk"]),
                int(e.get("cases", 1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):  # a damaged or older row: advisory only
            continue
    out = []
    for v in found:
        part = ends.get((v.visit.id, iso(v.warning.start), iso(v.overlap_start)))
        if part is None:
            out.append(v)
            continue
        case_start, overlap_start, risk, cases = part
        w = v.warning
        start = int(case_start) // INTERVAL_SECONDS
        case = VenueWarning(w.location_id_hash, start, w.start_interval + w.period - start, max(w.transmission_risk, risk))
        out.append(VenueExposure(v.visit, case, overlap_start, v.overlap_end, max(v.cases, cases)))
    return out


def _one_per_overlap(found: list[VenueExposure]) -> list[VenueExposure]:
    """One exposure per visit and overlap (the highest transmission risk's report), counting the reports
    that share it: each is a case who was there (an upload sends a visit once, ``upload.reports_to_upload``;
    the server cannot read reports to refuse a copy), and two cases in the room matter to the visitor
    more than one.  One line, not one per case: the minutes are the same."""
    best: dict[tuple[int, float, float], VenueExposure] = {}
    count: dict[tuple[int, float, float], int] = {}
    for e in found:
        key = (e.visit.id, e.overlap_start, e.overlap_end)
        count[key] = count.get(key, 0) + 1
        if key not in best or e.warning.transmission_risk > best[key].warning.transmission_risk:
            best[key] = e
    return [replace(e, cases=count[key]) for key, e in best.items()]


def _join_adjacent(found: list[VenueExposure]) -> list[VenueExposure]:
    """One exposure for a stay together that the case's reports split: at UTC midnight (07:00 in Vietnam),
    or where an upload took up a visit an earlier one sent while it was under way (``report_times``'
    ``sent_until``): its parts must not each fall short of 15 minutes.  Parts of one of my visits whose
    reports meet exactly are joined; two cases one after the other, meeting exactly, count together too,
    as CWA sums a visit's overlaps of a day (``PresenceTracingRiskCalculator``)."""
    joined: list[VenueExposure] = []
    for e in found:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.visit.id == e.visit.id
            and last.warning.end == e.warning.start == last.overlap_end == e.overlap_start
        ):
            w = last.warning
            case = VenueWarning(
                w.location_id_hash, w.start_interval, w.period + e.warning.period,
                max(w.transmission_risk, e.warning.transmission_risk),
            )
            joined[-1] = VenueExposure(e.visit, case, last.overlap_start, e.overlap_end, max(last.cases, e.cases))
        else:
            joined.append(e)
    return sorted(joined, key=lambda e: (e.overlap_start, e.visit.id))
