"""Visit arithmetic shared by the visitor, the uploader and the matcher (CWA's rules, no I/O).

* A visit is uploaded on the 10-minute grid: its length rounded to whole intervals and placed
  on the boundary nearer its start or its end (cwa-app-android ``TimeIntervalDeriver.kt``,
  without aerosol decay); a visit that rounds to zero intervals is not uploaded.
* Visits are split at UTC midnight, one report per day (``CheckInSplitter.kt``).
* A warning matches a check-in of the same location id; the overlap is
  max(starts) .. min(ends), and none if that is not positive (``CheckInWarningMatcher.kt``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS


@dataclass(frozen=True)
class Visit:
    """One check-in as the visitor's device keeps it (name and address stay on the device)."""

    id: int
    location_id: bytes
    description: str
    address: str
    start: float  # Unix seconds
    end: float  # check-out, planned (auto) or actual
    checked_out: bool  # False while the visitor is still there (``end`` is the auto check-out)
    source: str  # "url", "image", "beacon", "manual"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "address": self.address,
            "start": iso(self.start),
            "end": iso(self.end),
            "minutes": round((self.end - self.start) / 60, 1),
            "checked_out": self.checked_out,
            "source": self.source,
            "location_id": self.location_id.hex(),
        }


def iso(t: float) -> str:
    """UTC ISO-8601 time of Unix seconds ``t``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def local_time(t: float) -> str:
    """Unix seconds ``t`` as the person reads and types them: this machine's zone (``--start`` without a
    zone is read in it), ``2026-12-05 19:15 +07``, as ``bluezone checkins`` lists visits."""
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def snap_to_intervals(start: float, end: float) -> tuple[int, int] | None:
    """(first interval, interval count) a visit is reported with, or None if it rounds to nothing."""
    start_s, end_s = int(start), int(end)
    duration = max(0, end_s - start_s)
    periods = int(duration / INTERVAL_SECONDS + 0.5)  # half up, as Kotlin's roundToLong
    if periods == 0:
        return None
    start_grid = start_s - start_s % INTERVAL_SECONDS
    end_grid = end_s - end_s % INTERVAL_SECONDS
    into_first = start_grid + INTERVAL_SECONDS - start_s
    into_last = end_s - end_grid
    if into_last > into_first:
        first = (end_grid + INTERVAL_SECONDS) // INTERVAL_SECONDS - periods
    else:
        first = start_grid // INTERVAL_SECONDS
    return first, periods


def report_times(visit: Visit, since: float, now: float, sent_until: float | None = None) -> list[tuple[int, int]]:
    """(first interval, intervals) of each report an upload at ``now`` sends of ``visit`` (its part
    after ``since``, on the grid, one per UTC day), leaving out what ends by ``sent_until``."""
    start, end = max(visit.start, since), min(visit.end, now)
    snapped = snap_to_intervals(start, end) if end > start else None
    if snapped is None:
        return []
    first, periods = snapped
    grid_start, grid_end = float(first * INTERVAL_SECONDS), float((first + periods) * INTERVAL_SECONDS)
    if sent_until is not None:  # a part sent ends on the grid; a visit still under way then may have grown since
        grid_start = max(grid_start, sent_until)
    out = []
    for part_start, part_end in split_at_midnight(grid_start, grid_end):
        s = int(part_start) // INTERVAL_SECONDS
        p = int(part_end) // INTERVAL_SECONDS - s
        if p > 0:
            out.append((s, p))
    return out


def split_at_midnight(start: float, end: float) -> list[tuple[float, float]]:
    """The visit's parts, one per UTC day it touches (an inverted visit has none)."""
    if end < start:
        return []
    parts = []
    t = start
    while True:
        midnight = (t // DAY_SECONDS + 1) * DAY_SECONDS
        if end <= midnight:
            parts.append((t, end))
            return parts
        parts.append((t, midnight))
        t = midnight


def overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Seconds two stays share (0 if none)."""
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))
