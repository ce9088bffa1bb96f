"""Diagnosis keys in memory: one numpy structured array (``KEY_DTYPE``) and the GAEN limits.

Every key format (publish-API JSON, ``export.bin``) reads into and writes from this array,
so the matcher can slice columns without touching Python objects.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD
from bluezone.crypto.keys import KEY_LENGTH, DailyKey

#: One diagnosis key per row.  ``days_since_onset`` is NO_DAYS_SINCE_ONSET when unknown.
KEY_DTYPE = np.dtype(
    [
        ("key", "V16"),
        ("rolling_start", "i4"),
        ("rolling_period", "i4"),
        ("transmission_risk", "i4"),
        ("report_type", "i1"),
        ("days_since_onset", "i4"),
    ]
)
NO_DAYS_SINCE_ONSET = np.iinfo(np.int32).min
#: Refuse files above this size before reading them: a national key set is far smaller.
MAX_KEY_FILE_BYTES = 256 * 1024 * 1024
MAX_TRANSMISSION_RISK = 8  # GAEN transmission risk levels are 0-8
MAX_REPORT_TYPE = 5  # 0 unknown ... 5 revoked (GAEN export proto)
MAX_DAYS_SINCE_ONSET = 14  # GAEN accepts -14..14
#: GAEN report types of a positive test and of a clinical diagnosis without one ("likely").
REPORT_TYPE_CONFIRMED, REPORT_TYPE_LIKELY = 1, 2
#: GAEN report type of a key whose earlier positive report was withdrawn.
REPORT_TYPE_REVOKED = 5
#: GAEN report type of a close contact's (F1's) keys: a close contact with them makes an F2.
REPORT_TYPE_RECURSIVE = 4
#: How certain a report type is (0: none of these): a key may be revised up recursive -> likely -> confirmed, or
#: revoked (final); of a key's revisions the most certain stands, and a less certain one is an old one replayed.
REPORT_TYPE_CERTAINTY = {REPORT_TYPE_RECURSIVE: 1, REPORT_TYPE_LIKELY: 2, REPORT_TYPE_CONFIRMED: 3, REPORT_TYPE_REVOKED: 4}
#: Most values a JSON key file may hold (``json_values``): ``json`` makes a Python object of each,
#: ~70 bytes from as little as 2 bytes of file, so a hostile 256 MB file would take ~10 GB.  The
#: largest real day (358,105 keys) counts ~4.6M; bigger key sets come as export zips (streamed).
MAX_JSON_VALUES = 6_000_000
#: Longest revision token a server hands out or a client keeps (publish API).
MAX_REVISION_TOKEN_CHARS = 256


def empty_keys(n: int = 0) -> np.ndarray:
    """``n`` zeroed keys with GAEN's defaults (a whole day, onset unknown)."""
    keys = np.zeros(n, KEY_DTYPE)
    keys["rolling_period"] = ROLLING_PERIOD
    keys["days_since_onset"] = NO_DAYS_SINCE_ONSET
    return keys


def keys_from_daily(daily: Iterable[DailyKey], transmission_risk: int = 0) -> np.ndarray:
    """The structured array for some ``DailyKey`` objects (a device's own keys)."""
    daily = list(daily)
    keys = empty_keys(len(daily))
    if daily:
        keys["key"] = np.frombuffer(b"".join(k.key for k in daily), "V16")
        keys["rolling_start"] = [k.rolling_start for k in daily]
        keys["rolling_period"] = [k.rolling_period for k in daily]
        keys["transmission_risk"] = transmission_risk
    return keys


def key_bytes(keys: np.ndarray) -> np.ndarray:
    """The 16-byte keys as uint8 (n, 16), ready for ``rpis_for_keys``."""
    return np.ascontiguousarray(keys["key"]).view(np.uint8).reshape(-1, KEY_LENGTH)


def json_values(data: bytes | str) -> int:
    """At least as many as the values ``json.loads(data)`` would make, counted without parsing:
    each but the first follows a comma or a colon, or opens a container (a member's name is one
    more, after the comma).  Characters inside strings count too, so it may say more, never less."""
    text = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return sum(text.count(c) for c in (b",", b":", b"{", b"[")) + 1
