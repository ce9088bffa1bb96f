"""Check-ins in a publish request: ``"checkInProtectedReports": [{"day": d, "report": b64}]``.

Each report is CWA's ``CheckInProtectedReport`` (protobuf, base64) and ``day`` its UTC day
number (Unix seconds // 86400).  The server cannot read a report (it is encrypted under the
venue's id), so it checks what it can: the shape of every field, the day (not in the future,
not older than the retention), at most ``max_per_day`` per day and ``max_reports`` in all.
It then adds ``fakes_per_report`` fake reports of the same shape per real one, on the same day,
so that later nobody, the server included, can tell them apart (CWA's padding of check-ins).
"""

from __future__ import annotations

import base64
import binascii
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import VenueError
from bluezone.keyformat.venue_reports import MAX_CHECKINS_PER_DAY, ProtectedReport

FIELD = "checkInProtectedReports"
MAX_REPORT_BYTES = 200  # a real one is ~110 bytes of protobuf


@dataclass(frozen=True)
class VenueReportLimits:
    """How many check-in reports one upload may carry, how old, and how many fakes pad each."""

    max_per_day: int = MAX_CHECKINS_PER_DAY
    max_age_days: int = 14
    #: every day ``check_days`` takes, at its cap: the 14 days before today, the day before them (a device
    #: still before UTC midnight; never exported), today, and tomorrow (a device's clock minutes ahead, just
    #: past its midnight).  It was 14 x 12, so an upload within every day's cap could be refused as "too many"
    max_reports: int = MAX_CHECKINS_PER_DAY * (14 + 3)
    fakes_per_report: int = 3


def parse_venue_reports(doc: dict[str, Any], limits: VenueReportLimits) -> list[tuple[int, bytes]]:
    """(day, report bytes) of a request's check-ins; ValueError with a clear message if malformed."""
    entries = doc.get(FIELD, [])
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ValueError(f"'{FIELD}' must be a list")
    if len(entries) > limits.max_reports:
        raise ValueError(f"too many check-ins: {len(entries)}, at most {limits.max_reports}")
    out = []
    for i, entry in enumerate(entries):
        where = f"{FIELD}[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object with 'day' and 'report'")
        day, raw = entry.get("day"), entry.get("report")
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day < 2**31:
            raise ValueError(f"{where}: 'day' must be a UTC day number")
        if not isinstance(raw, str) or len(raw) > MAX_REPORT_BYTES * 2:
            raise ValueError(f"{where}: 'report' must be a base64 CheckInProtectedReport")
        try:
            data = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError(f"{where}: 'report' is not base64") from None
        try:
            report = ProtectedReport.from_bytes(data)
        except VenueError as exc:  # says itself what it is not
            raise ValueError(f"{where}: {exc}") from None
        out.append((day, bytes(report)))
    return out


def check_days(reports: Sequence[tuple[int, bytes]], now: float, limits: VenueReportLimits, ahead: float = 0.0) -> None:
    """ValueError unless every day is within the retention and no day has too many check-ins;
    ``ahead``: how far ahead of ``now`` a device's clock may be (its today may be tomorrow)."""
    today = int(now // DAY_SECONDS)
    for day, _ in reports:
        if day > (now + ahead) // DAY_SECONDS:
            raise ValueError("a check-in is in the future")
        if day < today - limits.max_age_days - 1:  # the day before: a device still before midnight (never exported)
            raise ValueError(f"a check-in is older than {limits.max_age_days} days")
    per_day = Counter(day for day, _ in reports)
    if per_day and max(per_day.values()) > limits.max_per_day:
        raise ValueError(f"more than {limits.max_per_day} check-ins on one day")


def with_fakes(
    reports: Sequence[tuple[int, bytes]], limits: VenueReportLimits, rng: random.Random | None = None
) -> list[tuple[int, bytes]]:
    """The real reports and ``fakes_per_report`` fakes per real one, on the same days, shuffled:
    they are stored in this order, and real-then-fake rows would show which are real."""
    fakes = [(day, bytes(ProtectedReport.fake())) for day, _ in reports for _ in range(limits.fakes_per_report)]
    mixed = list(reports) + fakes
    (rng or random.SystemRandom()).shuffle(mixed)
    return mixed
