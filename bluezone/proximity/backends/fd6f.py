"""Which part of a heard advert is bluezone's business: the 0xFD6F service data, if any.

Real backends hear every device around (headphones, watches, phones).  Only adverts that
mention 0xFD6F go on to the daemon, which validates and counts malformed ones; the rest are
counted by the backend as ignored.  The rule is shared so every backend counts alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bluezone.crypto.payload import SERVICE_UUID

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


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

