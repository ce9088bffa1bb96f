"""F1 and F2 on the node: what a close contact (F1) uploads, and what its contacts were told.

A close contact of a case (F1) gets a recursive code and publishes its own daily keys from the
day it was exposed on (before that day it could not pass anything on); a close contact with those
keys makes an F2.  When the F1's test comes back, its keys are revised on the server: revoked (the
F2 warning is withdrawn) or confirmed (the F2 becomes an F1).  To tell the second case as an
*upgrade* of the earlier warning, not as a new one, the node remembers the level it reported for
each key and day (``WarningMemory``: key hashes only, deleted after the retention).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bluezone.clock import EARLIEST_UTC_OFFSET, LATEST_UTC_OFFSET
from bluezone.crypto.intervals import DAY_SECONDS, interval_number
from bluezone.keyformat.keys import REPORT_TYPE_RECURSIVE
from bluezone.matching.check import Exposure
from bluezone.proximity.store import SightingStore


def exposure_date_start(exposure_date: dt.date, store: SightingStore | None = None) -> int:
    """The 10-minute interval in which ``exposure_date`` begins in this machine's time zone, or, earlier, in
    which the first close contact that ``store``'s checks told and that lies on that date somewhere began.

    People and health authorities give the exposure as a date of their own calendar, while daily keys
    are UTC days: east of UTC the date begins on the UTC day before (Vietnam: 17:00 UTC), so its key
    must go too, and the key server takes keys from the date's start in any zone (UTC+14) on.  The date
    may be another zone's than this machine's now (check ran before the zone was set, or elsewhere; the
    health authority's calendar): west of it the date begins later here, and the exposure's own key was
    left out (a contact at 02:41 in Vietnam, uploaded in UTC: the F1's contacts after it never warned)."""
    midnight = dt.datetime.combine(exposure_date, dt.time()).astimezone()  # local midnight, as an instant
    start = interval_number(midnight.timestamp())
    if store is None:
        return start
    utc_midnight = dt.datetime.combine(exposure_date, dt.time(), dt.UTC).timestamp()
    somewhere = (utc_midnight - LATEST_UTC_OFFSET, utc_midnight + DAY_SECONDS - EARLIEST_UTC_OFFSET)
    return min([start, *(interval_number(t) for t in store.close_exposure_starts(*somewhere))])


def keys_since_exposure(keys: np.ndarray, exposure_date: dt.date | None, store: SightingStore | None = None) -> np.ndarray:
    """The KEY_DTYPE rows still valid on or after ``exposure_date`` (``exposure_date_start``; all of them when
    None)."""
    if exposure_date is None:
        return keys
    ends = keys["rolling_start"].astype(np.int64) + keys["rolling_period"]
    return keys[ends > exposure_date_start(exposure_date, store)]


def _key_hash(key: Any) -> bytes:
    return hashlib.sha256(bytes(key)).digest()


class WarningMemory:
    """The level each close contact was reported at, per diagnosis key and day, in the node's store."""

    def __init__(self, store: SightingStore) -> None:
        self.store = store

    def remember(self, keys: np.ndarray, exposures: Sequence[Exposure], now: float) -> None:
        """Note the level of every close contact in ``exposures`` (``key_index`` rows of ``keys``)."""
        rows = [(_key_hash(keys["key"][e.key_index]), e.date, e.level) for e in exposures if e.level]
        self.store.save_warning_levels(rows, now)

    def with_earlier_levels(self, keys: np.ndarray, exposures: Sequence[Exposure]) -> list[Exposure]:
        """``exposures`` with ``earlier_level`` set to what was reported before for the same key and day."""
        out = []
        for e in exposures:
            level = self.store.warning_level(_key_hash(keys["key"][e.key_index]), e.date)
            out.append(replace(e, earlier_level=level) if level else e)
        return out


def same_meetings(exposures: Sequence[Exposure]) -> dict[int, int]:
    """The F2 exposures of one check that overlap in time an F1 exposure of it, each to the F1 it overlaps most
    (place in ``exposures``: F2's -> F1's).  Sitting with a case and with the case's close contact (who uploaded
    with a recursive code) makes both, over the same minutes: one meeting, whose level is the F1's, not two
    contacts (user31 read "2 close contact(s) (F1 1, F2 1)" as two risks).  Both stay listed."""
    spans = _spans(exposures)
    return _most_overlapped(spans, spans)


def same_meetings_told(exposures: Sequence[Exposure], told: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """The F2 exposures of a check that overlap in time an F1 exposure an earlier check told (``told``: as
    ``as_dict()``, still in force: within the 14 days, not withdrawn), each to the F1 it overlaps most (place in
    ``exposures``: place in ``told``).  Chi, told F1 for An's keys, read the same café sitting as "new since the last
    check" when Binh, who sat there too, uploaded with a recursive code: that is the meeting she was told of."""
    return _most_overlapped(_spans(exposures), _told_spans(told))


def same_meetings_among_told(told: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """``same_meetings`` of the exposures earlier checks told (as ``as_dict()``): the F2 a later check told of an F1's
    meeting is listed with it among them from then on, and is not another close contact there either."""
    spans = _told_spans(told)
    return _most_overlapped(spans, spans)


Span = tuple[int, str | None, float, float]  # (place in its list, level, start, end)


def _spans(exposures: Sequence[Exposure]) -> list[Span]:
    return [(i, e.level, e.start, e.end) for i, e in enumerate(exposures)]


def _told_spans(told: Sequence[Mapping[str, Any]]) -> list[Span]:
    """The spans of exposures as kept (ISO times); a row kept without times, or damaged, has none: never paired."""
    out = []
    for i, d in enumerate(told):
        try:
            out.append((i, d.get("level"), dt.datetime.fromisoformat(d["start"]).timestamp(),
                        dt.datetime.fromisoformat(d["end"]).timestamp()))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _most_overlapped(f2: Sequence[Span], f1: Sequence[Span]) -> dict[int, int]:
    """Each F2 of ``f2`` to the F1 of ``f1`` it overlaps most in time (bounds included; ties: the first listed)."""
    out = {}
    for j, level, start, end in f2:
        if level != "F2":
            continue
        overlaps = [(min(end, e) - max(start, s), -i) for i, lv, s, e in f1 if lv == "F1" and s <= end and start <= e]
        if overlaps:
            out[j] = -max(overlaps)[1]
    return out


def at_levels_told(exposures: Sequence[Exposure]) -> list[Exposure]:
    """Withdrawn exposures at the level they were told: a revoked key is matched as a plain one
    (its earlier type is not in the revision), so a withdrawn F2 warning would read as F1 of an F0."""
    return [replace(e, report_type=REPORT_TYPE_RECURSIVE) if e.earlier_level == "F2" else e for e in exposures]
