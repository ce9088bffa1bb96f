"""Verification codes: what a health authority hands a person who tested positive.

Two kinds, as in GAEN's verification server: a *long* code (16 random digits, valid up to a day:
sent to the person by SMS or link for self-service) and a *short* code (10 random digits and a check
digit, valid up to an hour: read out over the phone).  Both are single use.  The check digit (Damm's)
catches every misheard digit and every swap of two neighbours before the code is looked up, so a typo
costs nobody a try of their failed-code budget; short codes issued before it (8 digits, no check) work
until they expire.  Guessing is made pointless by the size of the code
space against the per-client limit on failed tries, not by a global limit (which anybody could trip
to lock out every valid code).  Only an HMAC of each code is stored, keyed with a secret kept
outside the database (``code_hmac.key`` beside the signing key), so a leaked database does not give
the short codes away by brute force.  The code carries the test type and dates, from which the
server derives each uploaded key's report type and days since symptom onset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from stdnum import damm

from bluezone.clock import MAX_DATE_AGE_DAYS, earliest_date, latest_date
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import CodeLimitError, ConfigError, InputError, ServerStorageError
from bluezone.keyformat.codetext import code_digits
from bluezone.server.storage import CodeRecord, Storage, Withheld

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeKind:
    """How long a code is and may live (GAEN: long codes up to 24 h, short codes up to 1 h)."""

    name: str
    digits: int  # as read out, the check digit included
    default_lifetime: float
    max_lifetime: float
    checked: bool = False  # the last digit is a Damm check digit of the others

    def draw(self) -> str:
        """A fresh random code of this kind."""
        random = "".join(secrets.choice("0123456789") for _ in range(self.digits - 1 if self.checked else self.digits))
        return random + damm.calc_check_digit(random) if self.checked else random


#: 10^16 codes: even 10,000 live codes and a million failed tries leave a 1e-6 chance of one hit.
LONG = CodeKind("long", 16, float(DAY_SECONDS), float(DAY_SECONDS))
#: 10^10 codes and a check digit, 11 digits to read out over the phone, short-lived: a botnet's
#: ~300,000 tries an hour hit 1,000 live codes 0.03 times an hour (8 digits: 3); docs/server.md, "Codes".
SHORT = CodeKind("short", 11, 900.0, 3600.0, checked=True)
CODE_KINDS = {k.name: k for k in (LONG, SHORT)}
#: Short codes issued before the check digit: 8 random digits, accepted (and counted as tries) until they expire.
UNCHECKED_SHORT_DIGITS = 8
CODE_LENGTHS = (UNCHECKED_SHORT_DIGITS, SHORT.digits, LONG.digits)
MAX_DRAWS = 20  # fresh codes tried before giving up (a short code collides about 1 in 10^7 with 1,000 on record)
CODE_KEY_FILE = "code_hmac.key"
CODE_KEY_BYTES = 32
#: Test type -> GAEN report type (TemporaryExposureKey.ReportType), as the GAEN
#: verification server maps them; "negative" revokes earlier "likely" keys.
REPORT_TYPES = {"confirmed": 1, "likely": 2, "recursive": 4, "negative": 5}


@dataclass(frozen=True)
class IssuedCode:
    """A verification code as handed to the person who tested positive (the code itself is not stored)."""

    code: str
    test_type: str
    report_type: int
    issued_at: float
    expires_at: float
    test_date: dt.date | None
    symptom_onset: dt.date | None

    def as_dict(self) -> dict[str, object]:
        day = self.test_date.isoformat() if self.test_date else None
        recursive = self.test_type == "recursive"
        return {
            "code": self.code,
            "expires_at": dt.datetime.fromtimestamp(self.expires_at, dt.UTC).isoformat(timespec="seconds"),
            "test_type": self.test_type,
            "report_type": self.report_type,
            "test_date": None if recursive else day,
            **({"exposure_date": day} if recursive else {}),
            "symptom_onset": self.symptom_onset.isoformat() if self.symptom_onset else None,
        }


@dataclass(frozen=True, repr=False)
class CodeKey:
    """The secret the code hashes are keyed with; kept in a 0600 file outside the database."""

    secret: bytes

    def hash(self, code: str) -> str:
        """What the database keeps of a code: HMAC-SHA256, useless without the key file."""
        return hmac.new(self.secret, code.encode("utf-8"), hashlib.sha256).hexdigest()

    @classmethod
    def generate(cls) -> CodeKey:
        return cls(secrets.token_bytes(CODE_KEY_BYTES))

    def save(self, directory: str | Path) -> Path:
        """Write ``code_hmac.key`` (hex, mode 0600 whatever the umask) whole; refuses to replace one (or
        a link there).  A write that failed half-way left a short file that refused every later try."""
        from bluezone.writefile import write_new_file

        path = Path(directory) / CODE_KEY_FILE
        try:
            write_new_file(path, (self.secret.hex() + "\n").encode("ascii"), 0o600)
        except FileExistsError:
            raise InputError(f"{path} exists: replacing it would invalidate every code issued") from None
        return path

    @classmethod
    def load(cls, directory: str | Path) -> CodeKey:
        """The key ``bluezone server keygen`` wrote into ``directory``."""
        from bluezone.readfile import read_regular_file

        path = Path(directory) / CODE_KEY_FILE
        if not path.exists() and not path.is_symlink():
            raise ConfigError(
                f"no code key {path}: run `bluezone server keygen --out {directory}` once"
                " (it adds the code key and keeps an existing signing key)"
            )
        # a FIFO or a link to /dev/zero there hung the server or ran it out of memory
        raw = read_regular_file(path, 4096, "code key", ConfigError)
        try:
            text = raw.decode("ascii").strip()
            mode = stat.S_IMODE(path.stat().st_mode)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read code key {path}: {exc}") from None
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) != CODE_KEY_BYTES:
            raise ConfigError(f"{path} is not a code key ({2 * CODE_KEY_BYTES} hex digits)")
        if mode & 0o077:
            log.warning("code key %s is readable by others; chmod 600 it", path)
        return cls(secret)

    def __repr__(self) -> str:  # never the secret in a log or traceback
        return "CodeKey(<secret>)"


def normal_code(code: str) -> str:
    """``code`` as issued: the spaces and dashes a person types between groups of digits left out, digits
    of any script as ASCII, as ``upload`` reads it (``keyformat.codetext``)."""
    return code_digits(code)


def grouped(code: str) -> str:
    """A code as staff read it out or a person copies it: a short one like a phone number (``123 4567 8901``),
    a long one in fours (``1234 5678 9012 3456``: sixteen digits unbroken are easily lost count of).
    ``normal_code`` (and ``upload --code``) takes the groups back out."""
    if len(code) == SHORT.digits:
        return f"{code[:3]} {code[3:7]} {code[7:]}"
    if len(code) == LONG.digits:
        return " ".join(code[i:i + 4] for i in range(0, len(code), 4))
    return code


def code_mistake(code: str) -> str | None:
    """Why ``code`` (normalised) cannot be one this server issued, told without looking it up; None if it can be.

    A short code's check digit catches every single wrong digit and every swap of two neighbours (Damm),
    so a person who mistyped is told so, and the try costs their failed-code budget nothing."""
    if not code.isascii() or not code.isdigit():
        return "a verification code is digits only"
    if len(code) not in CODE_LENGTHS:
        return f"a verification code has {SHORT.digits} or {LONG.digits} digits, this one {len(code)}: a digit left out or added?"
    if len(code) == SHORT.digits and not damm.is_valid(code):
        return "this verification code has a typo (its check digit does not match): read it again, digit by digit"
    return None


def legacy_hash_code(code: str) -> str:
    """The plain SHA-256 codes were stored as before the code key (schema < 3): checked until they expire."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def day_number(date: dt.date) -> int:
    """Days since the Unix epoch (the UTC day a rolling start falls in is rolling_start // 144)."""
    return (date - dt.date(1970, 1, 1)).days


#: Recursive codes issued in any 24 hours, at most: each one can warn every close contact of an F1.
MAX_RECURSIVE_CODES_PER_DAY = 500
#: How far back an F1's exposure may lie: keys older than 14 days are gone anyway.
MAX_EXPOSURE_AGE_DAYS = 14


def _recursive_checks(now: float, exposure_date: dt.date | None, test_date: dt.date | None) -> dt.date:
    """The exposure date of a recursive code, checked; raises on a missing or out-of-range date."""
    if exposure_date is None:
        raise InputError("a recursive code (for a close contact, F1) needs --exposure-date: the day the F1 was exposed")
    if test_date is not None:
        raise InputError("a recursive code takes --exposure-date, not --test-date (the close contact was not tested)")
    # a date on the calendar of anyone asking: 14 days back from today there, UTC-12's too (as test dates)
    if not earliest_date(now, MAX_EXPOSURE_AGE_DAYS) <= exposure_date <= latest_date(now):
        raise InputError(f"the exposure date {exposure_date} must lie within the last {MAX_EXPOSURE_AGE_DAYS} days")
    return exposure_date


def _recursive_limit(limit: int) -> Callable[[int], None]:
    """The daily limit on recursive codes, as Storage.add_code checks it while storing one."""

    def within(issued: int) -> None:
        if issued >= limit:
            raise CodeLimitError(
                f"{issued} recursive codes were issued in the last 24 hours, the limit is {limit}"
                " (bluezone server issue-code --max-recursive-per-day N changes it)"
            )

    return within


def issue_code(
    storage: Storage,
    now: float,
    *,
    key: CodeKey,
    kind: CodeKind = LONG,
    test_type: str = "confirmed",
    test_date: dt.date | None = None,
    symptom_onset: dt.date | None = None,
    lifetime: float | None = None,
    exposure_date: dt.date | None = None,
    max_recursive_per_day: int = MAX_RECURSIVE_CODES_PER_DAY,
) -> IssuedCode:
    """Create and store a fresh single-use code (only its keyed hash is stored).

    A ``recursive`` code is for a close contact (F1) of a case: it needs the day the F1 was exposed
    (``exposure_date``, kept where other codes keep the test date), only keys from that day on may
    be uploaded with it, and at most ``max_recursive_per_day`` are issued in any 24 hours.
    """
    if test_type not in REPORT_TYPES:
        raise InputError(f"unknown test type {test_type!r}: use one of {', '.join(REPORT_TYPES)}")
    within_limit = None
    if test_type == "recursive":
        test_date = _recursive_checks(now, exposure_date, test_date)
        within_limit = _recursive_limit(max_recursive_per_day)  # counted as the code is stored
    elif exposure_date is not None:
        raise InputError("an exposure date goes only with a recursive code (--type recursive, for a close contact)")
    lifetime = kind.default_lifetime if lifetime is None else lifetime
    if not 0 < lifetime <= kind.max_lifetime:
        raise InputError(
            f"a {kind.name} code's lifetime must be positive and at most {kind.max_lifetime:.0f} s"
            + (" (short codes are guessable in the long run)" if kind is SHORT else "")
        )
    for name, date in (("test date", test_date), ("symptom onset", symptom_onset)):
        if date is not None and date > latest_date(now):  # today in Vietnam is tomorrow in UTC until 07:00
            raise InputError(f"the {name} {date} is in the future")
        if date is not None and date < earliest_date(now, MAX_DATE_AGE_DAYS):  # GAEN's verification server's limit
            raise InputError(
                f"the {name} {date} is more than {MAX_DATE_AGE_DAYS} days ago:"
                " no key still kept would have a known days since onset"
            )
    if test_date and symptom_onset and symptom_onset > test_date:
        raise InputError("symptom onset cannot be after the test date")
    for _ in range(MAX_DRAWS):  # a short code collides with one still on record now and then: draw again
        code = kind.draw()
        record = CodeRecord(
            code_hash=key.hash(code),
            report_type=REPORT_TYPES[test_type],
            test_type=test_type,
            test_day=day_number(test_date) if test_date else None,
            onset_day=day_number(symptom_onset) if symptom_onset else None,
            issued_at=now,
            expires_at=now + lifetime,
            used_at=None,
        )
        if storage.add_code(record, within_limit=within_limit, issued_since=now - DAY_SECONDS):
            return IssuedCode(code, test_type, record.report_type, now, record.expires_at, test_date, symptom_onset)
    raise ServerStorageError(f"no free verification code in {MAX_DRAWS} draws: is the codes table ever purged?")


@dataclass(frozen=True)
class Revocation:
    """What ``revoke_code`` did to a code: ``state`` is revoked, already_revoked, used or expired, ``at`` since
    when; for a used code, ``withheld``: what its upload stored that was withheld or already published (None:
    used before schema 15, which kept no link from a code to its keys)."""

    state: str
    at: float
    withheld: Withheld | None = None

    @property
    def refuses_uploads(self) -> bool:
        """Whether the code opens nothing now (revoked or expired; a used code's upload is done)."""
        return self.state != "used"

    @property
    def all_withheld(self) -> bool:
        """Whether nothing the code opened is out: `server revoke-code` exits 1 otherwise (published keys
        cannot be recalled; the health authority has to know)."""
        w = self.withheld
        return self.state != "used" or (
            w is not None and not w.published_keys and not w.published_checkins and not w.published_revisions
        )

    def sentence(self) -> str:
        when = dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(timespec="seconds")
        if self.state == "used":
            return f"code already used at {when}, now revoked: " + _withheld_sentence(self.withheld)
        return {
            "revoked": f"code revoked at {when}: an upload with it is refused (verification_code_revoked)",
            "already_revoked": f"code already revoked at {when}: an upload with it is refused",
            "expired": f"code expired at {when}: an upload with it is refused already",
        }[self.state]

    def as_dict(self) -> dict[str, object]:
        when = dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(timespec="seconds")
        used = {} if self.state != "used" else {"withheld": None if self.withheld is None else asdict(self.withheld)}
        return {"state": self.state, "at": when, "refuses_uploads": self.refuses_uploads, **used}


def _withheld_sentence(w: Withheld | None) -> str:
    if w is None:
        return (
            "it was used before this version kept which keys a code uploaded, so none could be withheld; those"
            " keys are published or will be"
        )
    decoys = " (decoys among them)" if w.checkins else ""  # mixed in at upload: the server cannot tell them apart
    said = f"{_counts(w.keys, w.revisions, w)} and {w.checkins} check-in report(s){decoys} not yet published withheld"
    if w.vouched:  # the same revision by two codes: revoking one changes nothing the files say
        said += (f"; {w.vouched} revision(s) of keys another code's upload says the same of: those keys stand as they"
                 " did (nothing changes in the files)")
    if w.published_keys or w.published_checkins or w.published_revisions:
        # "4 check-in report(s)" of a case who sent one visit read as three the server made up: say so here too
        published_decoys = " (decoys among them)" if w.published_checkins else ""
        return said + (
            f"; {_counts(w.published_keys, w.published_revisions, w)} and {w.published_checkins} check-in report(s)"
            f"{published_decoys} already published cannot be recalled"
        )
    return said + "; none was published"


def _counts(keys: int, revisions: int, w: Withheld) -> str:
    """"N key(s)", and its revisions' count beside it when the code revised keys an earlier code uploaded."""
    revised = w.revisions or w.published_revisions
    return f"{keys} key(s)" + (f", {revisions} revision(s) of earlier codes' keys" if revised else "")


def revoke_code(storage: Storage, code: str, now: float, *, key: CodeKey) -> Revocation:
    """Withdraw a code issued by mistake (wrong person, wrong test type or date) before it is used: an
    upload with it is then refused with ``verification_code_revoked``.  InputError for a code the
    database does not know (a typo, or deleted two days after it expired)."""
    code = normal_code(code)
    mistake = code_mistake(code)
    if mistake:
        raise InputError(mistake)
    outcome = storage.revoke_code(key.hash(code), now, legacy_code_hash=legacy_hash_code(code))
    if outcome.at is None:
        raise InputError(
            "no such code in this database: a typo, a code issued with another --server-db or code key,"
            " or one that expired more than two days ago (and opens nothing)"
        )
    return Revocation(outcome.state, outcome.at, outcome.withheld)
