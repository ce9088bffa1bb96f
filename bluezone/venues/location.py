"""A venue as its QR code carries it: Corona-Warn-App's ``QRCodePayload`` and the check-in URL.

The venue's identity is its *location id*, SHA-256 over ``b"CWA-GUID"`` and the exact payload
bytes (cwa-documentation ``event_registration.md``), so a :class:`Venue` keeps the bytes it was
read from: re-serialising a payload from another app could change them, and with them the id.
Published warnings name a venue only by SHA-256 of the location id (its *hash*).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

import bluezone.keyformat.presence_pb2 as pb
from bluezone.errors import VenueError
from bluezone.keyformat.venue_reports import location_id_hash

LOCATION_ID_PREFIX = b"CWA-GUID"
#: The URL form CWA's own posters use; CWA's apps read the same posters.
URL_PREFIX = "https://e.coronawarn.app?v=1#"
SEED_BYTES = 16
#: What ``venue create`` allows (CWA's app creates with 100); CWA's app accepts 255 when scanning.
CREATE_TEXT_MAX = 100
SCAN_TEXT_MAX = 255
#: Auto check-out bounds and step, as CWA's app applies them (``DefaultAutoCheckoutLength.kt``).
MIN_STAY_MINUTES = 15
MAX_STAY_MINUTES = 23 * 60 + 45
STAY_STEP_MINUTES = 15
#: Longer texts than a QR code can hold are not venues (CWA payloads are ~100-600 bytes).
MAX_PAYLOAD_BYTES = 2048
MAX_URL_CHARS = 4096
#: The latest event time a code may hold (its fields are 64 bits): a day before year 9999 ends, so any
#: time zone can show it.  A code made elsewhere with an event in year 36812 ended `venue show` in
#: 'ValueError: year 36812 is out of range' (exit 1).
LAST_EVENT_TIME = datetime.datetime(9999, 12, 30, tzinfo=datetime.UTC).timestamp()

#: CWA's 13 TraceLocationType values, by the short name the CLI takes.
LOCATION_TYPES: dict[str, int] = {
    "unspecified": 0,
    "permanent-other": 1,
    "temporary-other": 2,
    "retail": 3,
    "food-service": 4,
    "craft": 5,
    "workplace": 6,
    "educational-institution": 7,
    "public-building": 8,
    "cultural-event": 9,
    "club-activity": 10,
    "private-event": 11,
    "worship-service": 12,
}
TYPE_NAMES = {v: k for k, v in LOCATION_TYPES.items()}
TEMPORARY_TYPES = frozenset({2, 9, 10, 11, 12})

_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# CWA's own form, and the form it asks other German apps to use: <URL>/<vendor>#[extra]/CWA1/<payload>
_CWA_URL = re.compile(r"https://e\.coronawarn\.app/?\?v=1#(?P<payload>[^#]+)", re.IGNORECASE)
_VENDOR_URL = re.compile(r"https://[^\s#]+#[^\s#]*/CWA1/(?P<payload>[^/#]+)", re.IGNORECASE)


def location_id(payload: bytes) -> bytes:
    """SHA-256(``CWA-GUID`` || payload): the venue's id, as CWA's apps and server compute it."""
    return hashlib.sha256(LOCATION_ID_PREFIX + bytes(payload)).digest()


def stay_minutes(default_minutes: int | None, start: int | None = None, end: int | None = None) -> int:
    """How long after check-in a visitor is checked out automatically (CWA's rule).

    The venue's default length, else a temporary event's length, kept within 15 min .. 23:45 h
    and rounded to the nearest quarter hour.
    """
    minutes = default_minutes or 0
    if not minutes:
        if start is None or end is None or start > end:
            return MIN_STAY_MINUTES
        minutes = (end - start) // 60
    minutes = min(max(minutes, MIN_STAY_MINUTES), MAX_STAY_MINUTES)
    return int(round(minutes / STAY_STEP_MINUTES)) * STAY_STEP_MINUTES


#: Joiners some scripts (Persian, the Indic scripts) and emoji need: shown as they are.
_JOINERS = frozenset("\u200c\u200d")
#: Letters Unicode draws as nothing (Hangul fillers): a name made of them looks empty.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _hidden(c: str) -> bool:
    """A character a reader cannot see or that reorders the text around it: direction controls
    (U+202E turns "Café gpj.exe" around), zero-width and other format characters, private-use
    and unassigned code points, blank letters."""
    return (unicodedata.category(c) in ("Cf", "Co", "Cn") and c not in _JOINERS) or c in _BLANK_LETTERS


def visible_text(text: str) -> str:
    """``text`` as bluezone shows it: each hidden character (see :func:`_hidden`) written as
    ``<U+XXXX>``, so a poster made by another app cannot make one venue's name look like another's,
    or turn the rest of a line around."""
    if not any(_hidden(c) for c in text):
        return text
    return "".join(f"<U+{ord(c):04X}>" if _hidden(c) else c for c in text)


def _check_text(name: str, value: str, limit: int, create: bool = False) -> None:
    if not value.strip():
        raise VenueError(f"the venue's {name} is empty")
    if len(value) > limit:
        raise VenueError(f"the venue's {name} has {len(value)} characters; at most {limit} are allowed")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in value):
        raise VenueError(f"the venue's {name} must be one line of printable text")
    hidden = [c for c in value if _hidden(c)]
    if create and hidden:
        raise VenueError(
            f"the venue's {name} holds {len(hidden)} invisible or text-direction character(s) "
            f"(first U+{ord(hidden[0]):04X}): type it again as plain text"
        )


def parse_type(value: str | int) -> int:
    """A location type by CLI name (``food-service``) or CWA number (``4``)."""
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if number in TYPE_NAMES:
            return number
    elif str(value).lower() in LOCATION_TYPES:
        return LOCATION_TYPES[str(value).lower()]
    raise VenueError(f"unknown venue type {value!r}; one of: {', '.join(LOCATION_TYPES)} (or 0-12)")


@dataclass(frozen=True)
class Venue:
    """One venue: the decoded QR payload plus the exact bytes its id is computed over.

    ``description`` and ``address`` are the payload's texts as shown (:func:`visible_text`): a code
    made elsewhere may hold direction controls or invisible characters, which ``create`` refuses;
    its id stays the exact bytes'.
    """

    payload: bytes
    description: str
    address: str
    type: int
    default_minutes: int | None
    start: int | None  # Unix seconds, temporary events only
    end: int | None
    seed: bytes

    # --- making one ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        description: str,
        address: str,
        type: str | int = "permanent-other",
        default_minutes: int | None = None,
        start: int | None = None,
        end: int | None = None,
        seed: bytes | None = None,
        now: float | None = None,
    ) -> Venue:
        """A new venue with a fresh random seed (pass ``seed`` only for test vectors); given ``now``,
        an event that is already over is refused (its poster would check nobody in)."""
        description, address = description.strip(), address.strip()
        _check_text("name", description, CREATE_TEXT_MAX, create=True)
        _check_text("address", address, CREATE_TEXT_MAX, create=True)
        kind = parse_type(type)
        if default_minutes is not None and not MIN_STAY_MINUTES <= default_minutes <= MAX_STAY_MINUTES:
            raise VenueError(
                f"default stay of {default_minutes} minutes is outside {MIN_STAY_MINUTES}..{MAX_STAY_MINUTES}"
            )
        if (start is None) != (end is None):
            raise VenueError("a temporary event needs both a start and an end time")
        _check_event_times(start, end)
        if start is not None and end is not None:
            if now is not None and end < now:
                raise VenueError(
                    f"the event ended at {_utc(end)}, before now ({_utc(now)}): its poster would check nobody in; "
                    "give the times of an event to come"
                )
            if start <= 0:  # 0 is what a code holds for "no start" (a permanent venue)
                raise VenueError(f"the event's start must be after {_utc(0)}")
            if start > end:
                raise VenueError(f"the event's start ({_utc(start)}) must come before its end ({_utc(end)})")
        if start is None and kind in TEMPORARY_TYPES:
            raise VenueError(f"a {TYPE_NAMES[kind]} venue is temporary: give its start and end times")
        seed = os.urandom(SEED_BYTES) if seed is None else bytes(seed)
        message = pb.QRCodePayload(
            version=1,
            location_data=pb.TraceLocation(
                version=1, description=description, address=address, start_timestamp=start or 0, end_timestamp=end or 0
            ),
            crowd_notifier_data=pb.CrowdNotifierData(version=1, cryptographic_seed=seed),
            vendor_data=pb.CWALocationData(
                version=1, type=kind, default_check_in_length_in_minutes=default_minutes or 0  # type: ignore[arg-type]
            ).SerializeToString(),
        )
        return cls.from_payload(message.SerializeToString(), text_max=CREATE_TEXT_MAX)

    # --- reading one --------------------------------------------------------------------------

    @classmethod
    def from_payload(cls, data: bytes, text_max: int = SCAN_TEXT_MAX) -> Venue:
        """Decode and check a ``QRCodePayload``; raises :class:`VenueError` if it is no venue."""
        data = bytes(data)
        if not data:
            raise VenueError("the venue payload is empty")
        if len(data) > MAX_PAYLOAD_BYTES:
            raise VenueError(f"the venue payload has {len(data)} bytes; at most {MAX_PAYLOAD_BYTES} are allowed")
        message = pb.QRCodePayload()
        try:
            message.ParseFromString(data)
            vendor = pb.CWALocationData()
            vendor.ParseFromString(message.vendor_data)
        except (DecodeError, ValueError, RuntimeError):  # protobuf's own words ("Wire format was corrupt") say nothing to a visitor
            raise VenueError(
                "the code is not a CWA venue payload (cut short or damaged: copy the whole URL, or scan the poster again)"
            ) from None
        if message.version != 1 or not message.HasField("location_data"):
            raise VenueError(f"the code is not a CWA venue payload (version {message.version}, no location)")
        loc = message.location_data
        _check_text("name", loc.description, text_max)
        _check_text("address", loc.address, text_max)
        start, end = loc.start_timestamp or None, loc.end_timestamp or None
        _check_event_times(start, end)
        if start is not None and end is not None and start > end:
            raise VenueError("the venue's event ends before it starts")
        seed = message.crowd_notifier_data.cryptographic_seed
        if len(seed) != SEED_BYTES:
            raise VenueError(f"the venue's seed has {len(seed)} bytes, not {SEED_BYTES}")
        kind = int(vendor.type)
        if kind not in TYPE_NAMES:
            raise VenueError(f"the venue's type {kind} is not one of CWA's 0-12")
        return cls(
            payload=data,
            description=visible_text(loc.description),
            address=visible_text(loc.address),
            type=kind,
            default_minutes=int(vendor.default_check_in_length_in_minutes) or None,
            start=start,
            end=end,
            seed=bytes(seed),
        )

    @classmethod
    def from_url(cls, text: str) -> Venue:
        """The venue behind a check-in URL (the text a phone camera reads off the poster)."""
        text = text.strip()
        if len(text) > MAX_URL_CHARS:
            raise VenueError(f"the check-in URL has {len(text)} characters; a venue's has far fewer")
        match = _CWA_URL.fullmatch(text) or _VENDOR_URL.fullmatch(text)
        if match is None:
            raise VenueError(f"not a venue check-in URL (expected {URL_PREFIX}<code>): {text[:80]!r}")
        return cls.from_payload(decode_base64url(match["payload"]))

    # --- what it gives ------------------------------------------------------------------------

    def __bytes__(self) -> bytes:
        return self.payload

    @property
    def location_id(self) -> bytes:
        return location_id(self.payload)

    @property
    def location_id_hash(self) -> bytes:
        return location_id_hash(self.location_id)

    @property
    def url(self) -> str:
        return URL_PREFIX + base64.urlsafe_b64encode(self.payload).decode("ascii").rstrip("=")

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.type]

    @property
    def stay_minutes(self) -> int:
        """Minutes after which a visitor who forgot to check out is checked out."""
        return stay_minutes(self.default_minutes, self.start, self.end)

    def as_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "address": self.address,
            "type": self.type_name,
            "type_number": self.type,
            "default_minutes": self.default_minutes,
            "stay_minutes": self.stay_minutes,
            "start": self.start,
            "end": self.end,
            "location_id": self.location_id.hex(),
            "location_id_hash": self.location_id_hash.hex(),
            "url": self.url,
        }


def _check_event_times(start: int | None, end: int | None) -> None:
    """VenueError for an event time past ``LAST_EVENT_TIME``: no date can show it."""
    latest = max(start or 0, end or 0)
    if latest > LAST_EVENT_TIME:
        raise VenueError(f"the venue's event time ({latest}) lies past {_utc(LAST_EVENT_TIME)}: not a real event")


def _utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def decode_base64url(text: str) -> bytes:
    """Strict base64url (padding optional): anything else is a :class:`VenueError`."""
    if not _B64URL.fullmatch(text):
        raise VenueError("the check-in URL's code is not base64url text")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise VenueError("the check-in URL's code is not valid base64url") from None
