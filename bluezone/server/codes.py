"""Verification codes: what a health authority hands a person who tested positive.

A code is 8 random digits, single use, expiring (1 h by default, a day at most).  Only its SHA-256 is
stored.  The code carries the test type and dates, from which the server derives each
uploaded key's report type and days since symptom onset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from bluezone.errors import InputError
from bluezone.server.storage import CodeRecord, ServerStorageError, Storage

CODE_DIGITS = 8
MAX_DRAWS = 20  # fresh codes tried before giving up (a collision is about 1 in 10^5 with 1,000 codes on record)
DEFAULT_CODE_LIFETIME = 3600.0
#: 8 digits are guessable in the long run: with the global limit of 1,000 failed codes an hour
#: each live code is hit with probability 1e-5 an hour, so codes must not live long (GAEN's
#: 8-digit "short codes" live 15-60 minutes).
MAX_CODE_LIFETIME = 86400.0
#: Test type -> GAEN report type (TemporaryExposureKey.ReportType), as the GAEN
#: verification server maps them; "negative" revokes earlier "likely" keys.
REPORT_TYPES = {"confirmed": 1, "likely": 2, "recursive": 4, "negative": 5}


@dataclass(frozen=True)
class IssuedCode:
    code: str
    test_type: str
    report_type: int
    issued_at: float
    expires_at: float
    test_date: dt.date | None
    symptom_onset: dt.date | None

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "expires_at": dt.datetime.fromtimestamp(self.expires_at, dt.UTC).isoformat(timespec="seconds"),
            "test_type": self.test_type,
            "report_type": self.report_type,
            "test_date": self.test_date.isoformat() if self.test_date else None,
            "symptom_onset": self.symptom_onset.isoformat() if self.symptom_onset else None,
        }


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def day_number(date: dt.date) -> int:
    """Days since the Unix epoch (the UTC day a rolling start falls in is rolling_start // 144)."""
    return (date - dt.date(1970, 1, 1)).days


def issue_code(
    storage: Storage,
    now: float,
    *,
    test_type: str = "confirmed",
    test_date: dt.date | None = None,
    symptom_onset: dt.date | None = None,
    lifetime: float = DEFAULT_CODE_LIFETIME,
) -> IssuedCode:
    """Create and store a fresh single-use code."""
    if test_type not in REPORT_TYPES:
        raise InputError(f"unknown test type {test_type!r}: use one of {', '.join(REPORT_TYPES)}")
    if not 0 < lifetime <= MAX_CODE_LIFETIME:
        raise InputError(f"a code's lifetime must be positive and at most {MAX_CODE_LIFETIME:.0f} s (one day)")
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    for name, date in (("test date", test_date), ("symptom onset", symptom_onset)):
        if date is not None and date > today:
            raise InputError(f"the {name} {date} is in the future")
    if test_date and symptom_onset and symptom_onset > test_date:
        raise InputError("symptom onset cannot be after the test date")
    for _ in range(MAX_DRAWS):  # 8 digits collide with a code still on record now and then: draw again
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        record = CodeRecord(
            code_hash=hash_code(code),
            report_type=REPORT_TYPES[test_type],
            test_type=test_type,
            test_day=day_number(test_date) if test_date else None,
            onset_day=day_number(symptom_onset) if symptom_onset else None,
            issued_at=now,
            expires_at=now + lifetime,
            used_at=None,
        )
        if storage.add_code(record):
            return IssuedCode(code, test_type, record.report_type, now, record.expires_at, test_date, symptom_onset)
    raise ServerStorageError(f"no free verification code in {MAX_DRAWS} draws: is the codes table ever purged?")
