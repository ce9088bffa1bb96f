"""Which part of a heard advert is bluezone's business: 0xFD6F service data or a Bluezone v3 ID.

Real backends hear every device around (headphones, watches, phones).  Only adverts that
mention 0xFD6F (GAEN) or 0x4E56 (Bluezone v3) go on to the daemon, which validates and counts malformed ones; the rest are
counted by the backend as ignored.  The rule is shared so every backend counts alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bluezone.crypto.bluezone3 import COMPANY_ID as BLUEZONE3_COMPANY
from bluezone.crypto.bluezone3 import SERVICE_UUID as BLUEZONE3_UUID
from bluezone.crypto.payload import SERVICE_UUID

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
#: Venue beacons (bluezone.venues.beacon): 0x4256 service data, handed to the daemon's listener.
VENUE_BEACON_UUID = "00004256" + BASE_UUID_TAIL


def uuid16_to_str(value: int) -> str:
    """The full 128-bit string form of a 16-bit UUID, lower case like BlueZ and bleak."""
    return f"0000{value:04x}{BASE_UUID_TAIL}"


def fd6f_payload(service_uuids: Iterable[str], service_data: Mapping[str, bytes]) -> bytes | None:
    """The 0xFD6F service data; ``b""`` if the advert lists 0xFD6F without data; None if unrelated."""
    for uuid, data in service_data.items():
        if uuid.lower() == SERVICE_UUID:
            return bytes(data)
    if any(u.lower() == SERVICE_UUID for u in service_uuids):
        return b""
    return None



def bluezone3_payload(service_uuids: Iterable[str], manufacturer_data: Mapping[int, bytes]) -> bytes | None:
    """A Bluezone v3 advert's ID: the manufacturer data of company 0x22B5 when 0x4E56 is listed.

    As the app's scanner: the 16-bit UUID 0x4E56 in the service UUID list marks the advert, the
    ID is the manufacturer data after the company ID (``b""`` if absent; the ingest counts it as
    malformed); None if the advert is not Bluezone v3.
    """
    if not any(u.lower() == BLUEZONE3_UUID for u in service_uuids):
        return None
    return bytes(manufacturer_data.get(BLUEZONE3_COMPANY, b""))


def heard_payloads(
    service_uuids: Iterable[str], service_data: Mapping[str, bytes], manufacturer_data: Mapping[int, bytes]
) -> dict[str, bytes]:
    """{service UUID: payload} of each GAEN, Bluezone v3 and venue-beacon payload present, in that order.

    One packet carries one; BlueZ's record of a device (what bleak reports) can hold several at once.
    """
    uuids = list(service_uuids)
    found: dict[str, bytes] = {}
    gaen = fd6f_payload(uuids, service_data)
    if gaen is not None:
        found[SERVICE_UUID] = gaen
    bz3 = bluezone3_payload(uuids, manufacturer_data)
    if bz3 is not None:
        found[BLUEZONE3_UUID] = bz3
    for uuid, data in service_data.items():
        if uuid.lower() == VENUE_BEACON_UUID:
            found[VENUE_BEACON_UUID] = bytes(data)
    return found


def heard_payload(
    service_uuids: Iterable[str], service_data: Mapping[str, bytes], manufacturer_data: Mapping[int, bytes]
) -> tuple[str, bytes] | None:
    """(service UUID, payload) of a GAEN, Bluezone v3 or venue-beacon advert (in that order), None if none."""
    return next(iter(heard_payloads(service_uuids, service_data, manufacturer_data).items()), None)
