"""``POST /v1/publish``: parsing and validating an upload, as the GAEN reference server does.

The request is the exposure-notifications-server publish shape::

    {"temporaryExposureKeys": [{"key": b64, "rollingStartNumber": n, "rollingPeriod": p,
      "transmissionRisk": r}], "verificationPayload": "12345678",
     "symptomOnsetInterval": n, "revisionToken": "...", "padding": "..."}

(``code`` is accepted for ``verificationPayload``.)  Every refusal is a ``PublishError``
with an HTTP status and a machine-readable code; the storage transaction is rolled back
so nothing partial is kept and the verification code is not burned by a bad request.

Revision: the answer carries a fresh ``revisionToken``.  A later upload of the same keys under
another report type (a "likely" report confirmed, or revoked by a negative test) must show it;
without it anybody holding a negative code could revoke other people's published keys.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from bluezone.clock import LATEST_UTC_OFFSET
from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.crypto.keys import KEY_LENGTH
from bluezone.errors import PublishError, RevisionRefused
from bluezone.keyformat.keys import (
    MAX_DAYS_SINCE_ONSET,
    MAX_REVISION_TOKEN_CHARS,
    MAX_TRANSMISSION_RISK,
    NO_DAYS_SINCE_ONSET,
    REPORT_TYPE_REVOKED,
    empty_keys,
)
from bluezone.server.codes import CodeKey, code_mistake, legacy_hash_code, normal_code
from bluezone.server.storage import RECURSIVE, SHARED_BUDGET, CodeRecord, Storage
from bluezone.server.venue_reports import VenueReportLimits, check_days, parse_venue_reports, with_fakes

log = logging.getLogger(__name__)
T = TypeVar("T")
#: How far ahead of the server's a device's clock may be: just past its midnight, before the
#: server's, its today's key and today's check-ins are not refused as "in the future".
MAX_CLOCK_AHEAD_SECONDS = 600


@dataclass(frozen=True)
class PublishConfig:
    """Limits of the publish endpoint (defaults follow the reference server and the GAEN spec)."""

    max_keys_per_day: int = 14
    max_keys: int = 30  # the reference server's maxKeysOnPublish
    max_age_days: int = 14
    max_body_bytes: int = 64 * 1024
    failure_window: float = 3600.0
    #: Failed code tries per client (an IPv4 address, an IPv6 /64) per window.  There is no global
    #: limit: anybody could trip it and lock out every valid code.  Guessing is pointless instead:
    #: long codes have 16 digits, short ones 10 and a check digit and live at most an hour (docs/server.md).
    max_failures_per_client: int = 10
    #: ... and per IPv6 /48, one site's prefix (a tunnel broker gives anybody one free): its 65,536 /64s
    #: made ~655,000 tries an hour, now 100.
    max_failures_per_site: int = 100
    #: Failed tries from everybody in a window past which the server is being guessed at: then each client
    #: gets ``max_failures_under_attack`` (a typo or two still goes through; nobody is locked out who has
    #: not failed that often), a botnet's tries fall by that factor, and ``server status`` says so.
    guessing_alarm: int = 1000
    max_failures_under_attack: int = 3
    #: check-ins (venue reports) beside the keys: caps, age, fakes (bluezone/server/venue_reports.py)
    venue_reports: VenueReportLimits = VenueReportLimits()
    #: A recursive upload (a close contact, F1) sends its keys from its exposure day to today: 15 at most.
    max_recursive_keys: int = 15
    #: Recursive uploads accepted per hour from everyone: each warns an F1's contacts (F2), so a burst
    #: of them (a leaked batch of codes, a panic) is slowed down rather than published at once.
    max_recursive_per_hour: int = 100


@dataclass(frozen=True)
class PublishRequest:
    """A parsed ``/v1/publish`` body, before the code is checked."""

    keys: np.ndarray  # KEY_DTYPE, report type and onset not yet set
    code: str
    symptom_onset_interval: int | None
    revision_token: str | None = None
    venue_reports: tuple[tuple[int, bytes], ...] = ()  # (UTC day, CheckInProtectedReport bytes)


@dataclass(frozen=True)
class PublishResult:
    """What a publish stored, and the revision token to give back."""

    inserted: int  # new keys stored
    revised: int  # keys stored before whose report type changed
    revision_token: str  # to show with a later revision of these keys
    checkins: int = 0  # check-ins (venue reports) accepted, fakes not counted

    def as_dict(self) -> dict[str, Any]:
        """The answer's JSON, in the GAEN reference server's field names (plus bluezone's check-ins)."""
        return {
            "insertedExposures": self.inserted,
            "revisedExposures": self.revised,
            "revisionToken": self.revision_token,
            "insertedCheckIns": self.checkins,
        }


#: Refusals of a revision: machine-readable code -> message.
REVISION_MESSAGES = {
    "missing_revision_token": "these keys were published before under another report type;"
    " changing it needs the revisionToken of that upload",
    "invalid_revision_token": "this revisionToken was not given with these keys",
    "key_already_revised": "a key was revised to confirmed or revoked before and cannot be revised again",
    "invalid_report_type_transition": "a report can only become more certain (recursive -> likely -> confirmed)"
    " or be revoked by a negative test while not yet confirmed",
}


def token_hash(token: str) -> str:
    """What the server keeps of a revision token (the token itself only travels to the uploader)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _bad(message: str, code: str = "bad_request") -> PublishError:
    return PublishError(400, code, message)


def _int(entry: dict[str, Any], name: str, where: str, default: int | None = None) -> int:
    value = entry.get(name)
    if value is None:  # absent, or null (GAEN's reference server, in Go, takes a null as absent)
        if default is None:
            raise _bad(f"{where}: missing {name!r}")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{where}: {name!r} must be an integer")
    return value


def too_large(config: PublishConfig) -> PublishError:
    """413 for a body over the limit, refused unread (counting its entries would mean reading it),
    saying what does fit, so a client with too many check-ins knows what to leave out."""
    limits = config.venue_reports
    return PublishError(
        413,
        "request_too_large",
        f"request larger than {config.max_body_bytes} bytes: a publish holds at most {config.max_keys} keys and "
        f"{limits.max_reports} check-ins, {limits.max_per_day} a day",
    )


def _object_and_code(body: bytes, config: PublishConfig) -> tuple[dict[str, Any], str]:
    """The request's JSON object and its verification code as issued (shape checks only)."""
    if len(body) > config.max_body_bytes:
        raise too_large(config)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise _bad("request body is not valid JSON", "unparsable_request") from None
    if not isinstance(doc, dict):
        raise _bad("request body must be a JSON object", "unparsable_request")
    code = doc.get("verificationPayload", doc.get("code"))
    if not isinstance(code, str) or not code:
        raise _bad("missing verification code ('verificationPayload')", "missing_verification_code")
    if not code.isascii():  # codes are digits; JSON also allows lone surrogates, which cannot even be hashed
        raise _bad("the verification code must be ASCII", "bad_request")
    return doc, normal_code(code)  # as read out: "123 4567 8901"


def parse_request(body: bytes, config: PublishConfig) -> PublishRequest:
    """Shape checks that need no database: JSON, fields, key sizes, ranges, duplicates."""
    doc, code = _object_and_code(body, config)
    padding = doc.get("padding")
    if padding is not None and not isinstance(padding, str):  # null: none (as for every optional field)
        raise _bad("'padding' must be a string")
    revision_token = doc.get("revisionToken")
    if revision_token == "":
        revision_token = None  # GAEN apps send an empty token on a first upload
    if revision_token is not None and (
        not isinstance(revision_token, str) or len(revision_token) > MAX_REVISION_TOKEN_CHARS or not revision_token.isascii()
    ):
        raise _bad(
            f"'revisionToken' must be an ASCII string of at most {MAX_REVISION_TOKEN_CHARS} characters",
            "invalid_revision_token",
        )
    onset = doc.get("symptomOnsetInterval")
    if onset is not None and (isinstance(onset, bool) or not isinstance(onset, int) or not 0 <= onset < 2**31):
        # an interval number (10-minute steps since 1970), 32 bits in GAEN; a bigger one overflowed numpy later
        raise _bad("'symptomOnsetInterval' must be an interval number, 0 to 2^31 - 1")
    try:
        venue_reports = tuple(parse_venue_reports(doc, config.venue_reports))
    except ValueError as exc:
        raise _bad(str(exc), "checkin_invalid") from None
    entries = doc.get("temporaryExposureKeys")
    if entries is None and venue_reports:  # check-ins alone
        entries = []
    if not isinstance(entries, list) or not (entries or venue_reports):
        raise _bad("'temporaryExposureKeys' must be a non-empty list", "missing_keys")
    if len(entries) > config.max_keys:
        raise _bad(f"too many keys: {len(entries)}, at most {config.max_keys}", "too_many_keys")
    keys = empty_keys(len(entries))
    for i, entry in enumerate(entries):
        where = f"temporaryExposureKeys[{i}]"
        if not isinstance(entry, dict):
            raise _bad(f"{where}: must be an object", "key_invalid")
        raw = entry.get("key")
        try:
            key = base64.b64decode(raw.encode("ascii"), validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, UnicodeEncodeError):
            key = b""
        if len(key) != KEY_LENGTH:
            raise _bad(f"{where}: 'key' must be {KEY_LENGTH} bytes in base64", "key_invalid")
        try:
            start = _int(entry, "rollingStartNumber", where)
            period = _int(entry, "rollingPeriod", where, ROLLING_PERIOD)
            risk = _int(entry, "transmissionRisk", where, 0)
        except PublishError as exc:
            raise _bad(str(exc), "key_invalid") from None
        if not 1 <= period <= ROLLING_PERIOD:
            raise _bad(f"{where}: 'rollingPeriod' must be 1-{ROLLING_PERIOD}", "key_invalid")
        if not 0 <= start < 2**31 - ROLLING_PERIOD:
            raise _bad(f"{where}: 'rollingStartNumber' out of range", "key_invalid")
        if not 0 <= risk <= MAX_TRANSMISSION_RISK:
            raise _bad(f"{where}: 'transmissionRisk' must be 0-{MAX_TRANSMISSION_RISK}", "key_invalid")
        keys[i] = (key, start, period, risk, 0, NO_DAYS_SINCE_ONSET)
    if len(np.unique(keys["key"])) != len(keys):
        raise _bad("the same key appears twice", "key_duplicate")
    return PublishRequest(keys, code, onset, revision_token, venue_reports)


def validate_keys(
    request: PublishRequest, code: CodeRecord, now: float, config: PublishConfig, *, recursive_busy: bool = False
) -> np.ndarray:
    """Timing checks against ``now`` and the code; the keys to store with report type and onset.

    A recursive code (a close contact, F1) also limits the upload: at most ``max_recursive_keys``
    keys, none ending before the F1's exposure date began anywhere (the code carries it in ``test_day``), and
    none while ``recursive_busy`` (the hourly limit on recursive uploads is reached).
    """
    keys = request.keys.copy()
    if not len(keys) and request.venue_reports and code.report_type in (RECURSIVE, REPORT_TYPE_REVOKED):
        # check-ins alone (a venue owner's warning, a device that only checked in) under a code that stores
        # none: taken, it used the code up, stored nothing and answered 200 "0 check-ins" (walk12)
        raise _bad(
            "a negative test's or a close contact's (recursive) code publishes no check-ins, and this upload holds"
            " nothing else; ask the health authority for a confirmed or likely code (this one is not used up)",
            "checkin_code_type_invalid",
        )
    if code.report_type == RECURSIVE:
        _recursive_limits(keys, code, config, recursive_busy)
    starts = keys["rolling_start"].astype(np.int64)
    ends = starts + keys["rolling_period"]
    current = interval_number(now + MAX_CLOCK_AHEAD_SECONDS)  # a device a little ahead: its today's key
    oldest = rolling_start(now) - config.max_age_days * ROLLING_PERIOD
    if (starts > current).any():
        raise _bad("a key starts in the future", "key_timing_invalid")
    # a device still on the day before (an upload across UTC midnight, a clock a little slow) sends
    # the day just before the server's 14 as its oldest: past publishing, that key is dropped
    if (starts < oldest - ROLLING_PERIOD).any() or (len(keys) and (starts < oldest).all()):
        raise _bad(f"a key is older than {config.max_age_days} days", "key_timing_invalid")
    keys, starts, ends = keys[starts >= oldest], starts[starts >= oldest], ends[starts >= oldest]
    days = Counter((starts // ROLLING_PERIOD).tolist())
    if days and max(days.values()) > config.max_keys_per_day:
        raise _bad(f"more than {config.max_keys_per_day} keys for one day", "too_many_keys_per_day")
    order = np.argsort(starts, kind="stable")
    if (starts[order][1:] < ends[order][:-1]).any():
        raise _bad("keys have overlapping validity periods", "key_overlap")
    keys["report_type"] = code.report_type
    onset_day = code.onset_day if code.onset_day is not None else None
    if onset_day is None and request.symptom_onset_interval is not None:
        onset_day = request.symptom_onset_interval // ROLLING_PERIOD
    if onset_day is None and code.report_type != RECURSIVE:  # a recursive code's day is an exposure, no test
        onset_day = code.test_day
    if onset_day is not None:
        dsos = starts // ROLLING_PERIOD - onset_day
        keys["days_since_onset"] = np.where(np.abs(dsos) <= MAX_DAYS_SINCE_ONSET, dsos, NO_DAYS_SINCE_ONSET)
    return keys


def _recursive_limits(keys: np.ndarray, code: CodeRecord, config: PublishConfig, busy: bool) -> None:
    if busy:
        raise PublishError(
            429, "rate_limited", f"more than {config.max_recursive_per_hour} close-contact (recursive) uploads this hour; try later"
        )
    if len(keys) > config.max_recursive_keys:
        raise _bad(
            f"a close contact's (recursive) upload holds at most {config.max_recursive_keys} keys, got {len(keys)}",
            "too_many_keys",
        )
    if code.test_day is not None:
        # the exposure date is a calendar date where the F1 lives, which begins up to 14 h before its UTC
        # midnight (UTC+14): a key ending after that may hold the date's first hours (upload sends those
        # overlapping the date in the device's zone); one ending before it lies before the date everywhere
        ends = keys["rolling_start"].astype(np.int64) + keys["rolling_period"]
        if (ends <= code.test_day * ROLLING_PERIOD - LATEST_UTC_OFFSET // INTERVAL_SECONDS).any():
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(code.test_day))
            raise _bad(
                f"this code is for a close contact exposed on {day}: send only the keys from {day} on"
                f" (bluezone upload --exposure-date {day})",
                "key_before_exposure",
            )


def client_key(host: str) -> str:
    """Whom the per-client limit counts: an IPv4 address, or an IPv6 /64 (one host is given a whole
    /64, and would otherwise get as many tries as it has addresses)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


#: The row of ``code_tries`` that counts everybody's failed tries (``guessing_alarm``).
EVERYBODY = SHARED_BUDGET + "*"


def site_key(host: str) -> str | None:
    """The shared budget of an IPv6 address's /48 (one site: a home, an office, a tunnel); None for IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not isinstance(address, ipaddress.IPv6Address) or address.ipv4_mapped is not None:
        return None
    return SHARED_BUDGET + str(ipaddress.IPv6Network((address, 48), strict=False))


def claim_try(storage: Storage, host: str, now: float, config: PublishConfig) -> str | None:
    """Count a code try of ``host`` as failed until it proves good (so concurrent tries cannot all pass
    the limits), against its client's and its /48's budget, in one transaction; past ``guessing_alarm``
    failures from everybody (counted once a try failed: it is a level, not a limit) the client's limit
    is ``max_failures_under_attack``.  None (and a log line) if over."""
    client, site = client_key(host), site_key(host)
    shared = [] if site is None else [(site, config.max_failures_per_site)]
    token = storage.claim_code_try(
        client, now, now - config.failure_window, config.max_failures_per_client, shared,
        busy=(EVERYBODY, config.guessing_alarm, config.max_failures_under_attack),
    )
    if token is None:  # no address: the code may be good, a positive person's behind a guesser's NAT or /48
        log.warning("publish refused: a client (or its /48) over the failed-code limit (see `server status`)")
    return token


def publish(
    storage: Storage, body: bytes, client: str, now: float, config: PublishConfig, *, code_key: CodeKey
) -> PublishResult:
    """The whole endpoint: parse, rate-limit the client, redeem the code and store (or revise) atomically."""
    request = parse_request(body, config)
    return _spending_a_try(storage, request.code, client, now, config, lambda: _redeem(storage, request, now, config, code_key))


def verify(storage: Storage, body: bytes, client: str, now: float, config: PublishConfig, *, code_key: CodeKey) -> str:
    """``POST /v1/verify``: the test type of a code an upload could use now (confirmed, likely, negative,
    recursive), the code left unused, so that a node sends check-ins only with a positive test's (the upload
    cannot know its code's type, and a check-in report shows the server a venue's hash).  GAEN's verification
    server answers its apps' /api/verify with the test type the same way.  A wrong code costs the same failed
    try an upload's would (the same budgets): no cheaper oracle for guessing codes than publishing."""
    _, code = _object_and_code(body, config)
    return _spending_a_try(
        storage, code, client, now, config,
        lambda: storage.usable_code_type(code_key.hash(code), now, legacy_code_hash=legacy_hash_code(code)),
    )


def _spending_a_try(storage: Storage, code: str, client: str, now: float, config: PublishConfig, use: Callable[[], T]) -> T:
    """``use()`` the code as one try of ``client``'s budget; its LookupError is the 403 of that code."""
    mistake = code_mistake(code)
    if mistake:  # no code this server issued: a typo, refused before any budget is touched (and no address logged)
        log.info("publish refused: a mistyped verification code")
        raise PublishError(400, "verification_code_mistyped", mistake)
    try_token = claim_try(storage, client, now, config)
    client = client_key(client)
    if try_token is None:
        raise PublishError(
            429, "rate_limited", "too many failed verification codes from this client or its network; try later"
        )
    failure: str | None = None
    try:
        return use()
    except LookupError as exc:
        failure = str(exc.args[0])
        if failure == "invalid":  # a guess, or a code of another server: the operator may block who keeps at it
            log.warning("failed verification code from %s: %s", client, failure)
        else:  # a code this server issued is its holder's (an upload sent again when its answer was lost, a
            # code used too late): an address beside it says who got a code from the health authority
            log.warning("failed verification code: %s", failure)
        messages = {
            "invalid": "verification code is not valid",
            "used": "verification code was already used",
            "expired": "verification code has expired",
            "revoked": "verification code was withdrawn by the health authority: ask them for a new one",
        }
        raise PublishError(403, f"verification_code_{failure}", messages[failure]) from None
    finally:
        # only a guess counts against the address and the guessing alarm: a code this server issued, refused
        # as used, expired or revoked, is its holder's (an upload retried ten times was rate limited, and the
        # address of somebody who tested positive logged and kept in code_tries)
        guess = failure if failure == "invalid" else None
        storage.settle_code_try(client, try_token, guess)
        if guess is not None:
            storage.record_failure(EVERYBODY, now, config.failure_window)


def _redeem(storage: Storage, request: PublishRequest, now: float, config: PublishConfig, code_key: CodeKey) -> PublishResult:
    """Check the check-ins' days, redeem the code and store (or revise); LookupError for an unusable code."""
    try:
        check_days(request.venue_reports, now, config.venue_reports, ahead=MAX_CLOCK_AHEAD_SECONDS)
    except ValueError as exc:
        raise _bad(str(exc), "checkin_timing_invalid") from None
    reports = with_fakes(request.venue_reports, config.venue_reports)
    new_token = secrets.token_urlsafe(32)
    try:
        outcome = storage.publish(
            code_key.hash(request.code),
            now,
            # the hour's recursive uploads, this one included, counted as its code is redeemed
            lambda code, used: validate_keys(request, code, now, config, recursive_busy=used > config.max_recursive_per_hour),
            legacy_code_hash=legacy_hash_code(request.code),
            token_hash=token_hash(request.revision_token) if request.revision_token else None,
            new_token_hash=token_hash(new_token),
            venue_reports=reports,
            recursive_since=now - 3600,
        )
    except RevisionRefused as exc:
        reason = str(exc.args[0])
        raise _bad(REVISION_MESSAGES[reason], reason) from None
    # No client address here: an address beside a successful publish says who tested positive.
    log.info(
        "published %d new keys, revised %d (%d sent), %d check-in reports with fakes",
        outcome.inserted, outcome.revised, len(request.keys), outcome.venue_reports,
    )
    checkins = len(request.venue_reports) if outcome.venue_reports else 0
    return PublishResult(outcome.inserted, outcome.revised, new_token, checkins)
