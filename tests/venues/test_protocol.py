"""The CWA presence-tracing wire format against CWA's published vectors, plus properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.errors import InputError, VenueError
from bluezone.keyformat import presence_pb2 as pb
from bluezone.venues.location import LOCATION_TYPES, URL_PREFIX, Venue, location_id, location_id_hash, stay_minutes
from bluezone.keyformat.venue_reports import ProtectedReport, encryption_key, mac_key, report_mac
from tests.venues.venue_helpers import event_payload
from bluezone.venues.visits import local_time, overlap, snap_to_intervals, split_at_midnight

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "venues" / "cwa_vectors.json").read_text())


def b64(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


# --- CWA's vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["location_ids"], ids=lambda v: v["name"])
def test_location_id_vectors(vector: dict) -> None:
    payload = b64(vector["payload_base64"])
    expected = bytes.fromhex(vector["location_id_hex"]) if "location_id_hex" in vector else b64(vector["location_id_base64"])
    assert location_id(payload) == expected


@pytest.mark.parametrize("vector", [v for v in VECTORS["location_ids"] if v["valid_venue"]], ids=lambda v: v["name"])
def test_cwa_payloads_decode_and_rebuild(vector: dict) -> None:
    venue = Venue.from_payload(b64(vector["payload_base64"]))
    assert (venue.description, venue.address, venue.type) == (vector["description"], vector["address"], vector["type"])
    assert venue.default_minutes == vector["default_minutes"]
    assert (venue.start, venue.end) == (vector["start"], vector["end"])
    assert venue.location_id.hex() == vector["location_id_hex"]
    # the URL a poster would carry reads back to the same venue and id
    assert Venue.from_url(venue.url).location_id == venue.location_id
    # building the payload from its fields gives CWA's bytes (CWA's test does the same)
    rebuilt = pb.QRCodePayload()
    rebuilt.ParseFromString(venue.payload)
    assert rebuilt.SerializeToString() == venue.payload


def test_four_byte_seed_vectors_are_not_venues() -> None:
    for vector in VECTORS["location_ids"]:
        if not vector["valid_venue"]:
            with pytest.raises(VenueError, match="seed"):
                Venue.from_payload(b64(vector["payload_base64"]))


@pytest.mark.parametrize("vector", VECTORS["location_id_hashes"])
def test_location_id_hash_vectors(vector: dict) -> None:
    assert location_id_hash(bytes.fromhex(vector["location_id_hex"])).hex() == vector["hash_hex"]


def test_report_key_and_mac_vectors() -> None:
    keys = VECTORS["report_keys"][0]
    lid = b64(keys["location_id_base64"])
    assert encryption_key(lid) == b64(keys["encryption_key_base64"])
    assert mac_key(lid) == b64(keys["mac_key_base64"])
    m = VECTORS["report_mac"]
    assert report_mac(b64(m["mac_key_base64"]), b64(m["iv_base64"]), b64(m["ciphertext_base64"])) == b64(m["mac_base64"])


@pytest.mark.parametrize("vector", VECTORS["encrypt"], ids=lambda v: v["name"])
def test_encrypt_vectors(vector: dict) -> None:
    start, end = vector["start_unix"] // 600, vector["end_unix"] // 600
    report = ProtectedReport.seal(
        b64(vector["location_id_base64"]), start, end - start, vector["transmission_risk"], iv=b64(vector["iv_base64"])
    )
    assert report.ciphertext == b64(vector["ciphertext_base64"])
    assert report.mac == b64(vector["mac_base64"])
    assert report.location_id_hash == hashlib.sha256(b64(vector["location_id_base64"])).digest()


@pytest.mark.parametrize("vector", VECTORS["decrypt"], ids=lambda v: v["name"])
def test_decrypt_vectors(vector: dict) -> None:
    lid = b64(vector["location_id_base64"])
    report = ProtectedReport(location_id_hash(lid), b64(vector["iv_base64"]), b64(vector["ciphertext_base64"]), b64(vector["mac_base64"]))
    warning = report.open(lid)
    assert (warning.start_interval, warning.period, warning.transmission_risk) == (
        vector["start_interval"],
        vector["period"],
        vector["transmission_risk"],
    )
    # the wire form round-trips
    assert ProtectedReport.from_bytes(bytes(report)) == report


def test_tampered_report_is_refused() -> None:
    vector = VECTORS["decrypt"][1]
    lid = b64(vector["location_id_base64"])
    good = ProtectedReport(location_id_hash(lid), b64(vector["iv_base64"]), b64(vector["ciphertext_base64"]), b64(vector["mac_base64"]))
    flipped = bytearray(good.ciphertext)
    flipped[0] ^= 1
    with pytest.raises(VenueError, match="MAC"):
        ProtectedReport(good.location_id_hash, good.iv, bytes(flipped), good.mac).open(lid)
    other = bytearray(lid)
    other[-1] ^= 1
    with pytest.raises(VenueError, match="another venue"):
        good.open(bytes(other))


# --- creating venues, URLs, bad input ---------------------------------------------------------


def test_created_venue_round_trips_through_its_url() -> None:
    venue = Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45)
    assert venue.url.startswith(URL_PREFIX)
    again = Venue.from_url(venue.url)
    assert again == venue
    assert again.stay_minutes == 45
    assert len(venue.seed) == 16
    assert Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45).location_id != venue.location_id


def test_vendor_url_form_is_read() -> None:
    venue = Venue.create("Shop", "Main Street 1")
    code = venue.url.split("#", 1)[1]
    assert Venue.from_url(f"https://check-in.example.org/386d0384#42/CWA1/{code}") == venue


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hello",
        "https://e.coronawarn.app?v=1#",
        "https://e.coronawarn.app?v=1#!!!",
        "https://e.coronawarn.app?v=1#QUJD",  # base64 of "ABC": not a payload
        "http://e.coronawarn.app?v=1#CAES",
        "https://example.org/#abc",
        "https://e.coronawarn.app?v=1#" + "A" * 5000,
    ],
)
def test_bad_urls_are_one_clear_error(url: str) -> None:
    with pytest.raises(VenueError) as info:
        Venue.from_url(url)
    assert isinstance(info.value, InputError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"description": "x" * 101, "address": "a"}, "at most 100"),
        ({"description": "", "address": "a"}, "empty"),
        ({"description": "two\nlines", "address": "a"}, "one line"),
        ({"description": "a", "address": "a", "type": "spaceship"}, "unknown venue type"),
        ({"description": "a", "address": "a", "default_minutes": 5}, "outside"),
        ({"description": "a", "address": "a", "type": "private-event"}, "temporary"),
        ({"description": "a", "address": "a", "start": 100, "end": 50}, "before its end"),
    ],
)
def test_bad_venues_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(VenueError, match=match):
        Venue.create(**kwargs)


def test_stay_minutes_follow_cwa() -> None:
    assert stay_minutes(10) == 15
    assert stay_minutes(169) == 165
    assert stay_minutes(2000) == 23 * 60 + 45
    assert stay_minutes(None, 0, 3 * 3600) == 180
    assert stay_minutes(None) == 15


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_venue_or_one_venue_error(data: bytes) -> None:
    try:
        venue = Venue.from_payload(data)
    except VenueError as exc:
        assert "\n" not in str(exc)
    else:
        assert venue.payload == data and len(venue.location_id) == 32


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_venue_url_or_one_venue_error(text: str) -> None:
    try:
        Venue.from_url(text)
    except VenueError:
        pass


text_field = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn"), blacklist_characters="\u115f\u1160\u3164\uffa0"),
    min_size=1,
    max_size=100,
).filter(lambda s: s.strip() == s and s.strip())


@settings(max_examples=100, deadline=None)
@given(
    text_field,
    text_field,
    st.sampled_from([k for k, v in LOCATION_TYPES.items() if v in (0, 1, 3, 4, 5, 6, 7, 8)]),
    st.none() | st.integers(15, 1425),
    st.binary(min_size=16, max_size=16),
)
def test_created_venues_round_trip(description: str, address: str, kind: str, minutes: int | None, seed: bytes) -> None:
    venue = Venue.create(description, address, kind, minutes, seed=seed)
    assert Venue.from_url(venue.url) == venue
    assert Venue.from_payload(bytes(venue)) == venue


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_any_report_bytes_parse_or_one_venue_error(data: bytes) -> None:
    try:
        ProtectedReport.from_bytes(data)
    except VenueError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 2**31 // 2), st.integers(1, 144), st.integers(1, 8))
def test_reports_round_trip(lid: bytes, start: int, period: int, risk: int) -> None:
    report = ProtectedReport.seal(lid, start, period, risk)
    opened = ProtectedReport.from_bytes(bytes(report)).open(lid)
    assert (opened.start_interval, opened.period, opened.transmission_risk) == (start, period, risk)


# --- visit arithmetic -------------------------------------------------------------------------


def test_snap_to_intervals_like_cwa() -> None:
    assert snap_to_intervals(0, 240) is None  # four minutes round to nothing
    assert snap_to_intervals(0, 600) == (0, 1)
    assert snap_to_intervals(590, 1790) == (1, 2)  # almost all of it in intervals 1 and 2
    assert snap_to_intervals(300, 1500) == (0, 2)
    assert snap_to_intervals(420, 1620) == (1, 2)  # more of the end interval is used


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 5 * 86400))
def test_split_at_midnight_covers_the_visit(start: int, length: int) -> None:
    parts = split_at_midnight(start, start + length)
    assert parts[0][0] == start and parts[-1][1] == start + length
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert all(p[1] <= (p[0] // 86400 + 1) * 86400 for p in parts)  # no part crosses a midnight


def test_overlap() -> None:
    assert overlap(0, 10, 5, 20) == 5
    assert overlap(0, 10, 10, 20) == 0


#: What a poster's text must never show raw: direction controls (U+202E turns the rest of the line
#: around), zero-width and other format characters, private-use and unassigned code points, blank letters.
HIDDEN = st.sampled_from(
    ["\u202e", "\u202d", "\u202a", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c",
     "\u200b", "\u2060", "\ufeff", "\u00ad", "\U000e0041", "\ue000", "\U000f0000", "\u3164", "\U000e0080"]
) | st.characters(whitelist_categories=("Cf", "Co"), blacklist_characters="\u200c\u200d")


def _payload(description: str, address: str) -> bytes:
    """A QR payload another app could have made, with these texts as they are."""
    message = pb.QRCodePayload(
        version=1,
        location_data=pb.TraceLocation(version=1, description=description, address=address),
        crowd_notifier_data=pb.CrowdNotifierData(version=1, cryptographic_seed=bytes(16)),
        vendor_data=pb.CWALocationData(version=1, type=4).SerializeToString(),
    )
    return message.SerializeToString()


def _shows_nothing_hidden(text: str) -> bool:
    import unicodedata

    return not any(
        (unicodedata.category(c) in ("Cf", "Co", "Cn") and c not in "\u200c\u200d") or c in "\u115f\u1160\u3164\uffa0"
        for c in text
    )


@settings(max_examples=200, deadline=None)
@given(text_field, HIDDEN, st.integers(0, 100), st.booleans())
def test_create_refuses_hidden_and_direction_characters(text: str, hidden: str, at: int, in_name: bool) -> None:
    spoiled = text[:at] + hidden + text[at:]
    name, address = (spoiled, "Main St 1") if in_name else ("Shop", spoiled)
    with pytest.raises(VenueError, match=f"invisible or text-direction character.*U\\+{ord(hidden):04X}"):
        Venue.create(name[:100], address[:100], "retail")


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=60).filter(str.strip),
    st.lists(st.tuples(st.integers(0, 60), HIDDEN), max_size=4),
)
def test_a_scanned_venue_shows_hidden_characters_as_code_points(text: str, inserts: list) -> None:
    """A code made elsewhere is read (its id is its exact bytes, as CWA's apps compute it), and its
    texts are shown with every hidden character as <U+XXXX>; plain texts are shown unchanged."""
    from bluezone.venues.location import visible_text

    spoiled = text
    for at, hidden in inserts:
        spoiled = spoiled[:at] + hidden + spoiled[at:]
    payload = _payload(spoiled, "12 Trần Phú")
    venue = Venue.from_payload(payload)
    assert venue.payload == payload and venue.location_id == location_id(payload)
    assert _shows_nothing_hidden(venue.description) and venue.address == "12 Trần Phú"
    assert visible_text(venue.description) == venue.description  # nothing left to change
    for _, hidden in inserts:
        assert f"<U+{ord(hidden):04X}>" in venue.description
    if _shows_nothing_hidden(spoiled):
        assert venue.description == spoiled


def test_joiners_that_scripts_and_emoji_need_are_kept() -> None:
    for text in ("می\u200cخواهم", "क्\u200dष", "\U0001f469\u200d\U0001f4bb Café"):
        assert Venue.create(text, "x").description == text


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1) | st.integers(0, 2**38), st.integers(0, 2**64 - 1) | st.integers(0, 2**38))
def test_an_event_a_code_holds_can_be_shown_or_is_one_venue_error(start: int, end: int) -> None:
    """A code's event times are 64-bit: one made elsewhere with a start in year 36812 was taken, and
    `venue show` then ended in 'ValueError: year 36812 is out of range' (exit 1)."""
    try:
        venue = Venue.from_payload(event_payload(start, end))
    except VenueError as exc:
        assert "\n" not in str(exc)
        return
    for t in (venue.start, venue.end):
        if t is not None:
            local_time(t)  # in this machine's zone, as `venue show` and `checkins` print it
