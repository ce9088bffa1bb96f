"""What the venue tests share."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bluezone.keyformat import presence_pb2 as pb
from bluezone.venues import beacon
from bluezone.venues.location import Venue


def event_payload(start: int, end: int) -> bytes:
    """A check-in code's payload of an event ("Fest", cultural-event) with these 64-bit start and end times."""
    return pb.QRCodePayload(
        version=1,
        location_data=pb.TraceLocation(version=1, description="Fest", address="a", start_timestamp=start, end_timestamp=end),
        crowd_notifier_data=pb.CrowdNotifierData(version=1, cryptographic_seed=bytes(16)),
        vendor_data=pb.CWALocationData(version=1, type=9).SerializeToString(),
    ).SerializeToString()


def sealed_under(set_id: bytes, venue: Venue) -> list[bytes]:
    """``venue``'s frames sealed under someone else's ``set_id``: anyone can (the key travels in the blob)."""
    key = bytes([9]) * 16
    sealed = AESGCM(key).encrypt(bytes(12), venue.payload, set_id)
    blob = sealed + bytes(a ^ b for a, b in zip(key, hashlib.sha256(sealed).digest()[:16], strict=True))
    chunks = [blob[i : i + beacon.CHUNK_BYTES] for i in range(0, len(blob), beacon.CHUNK_BYTES)]
    return [bytes([beacon.VERSION]) + set_id + bytes([i, len(chunks)]) + c.ljust(beacon.CHUNK_BYTES, b"\0") for i, c in enumerate(chunks)]


CLINIC = Venue.create("Phòng khám Ngọc", "55 Yên Ninh, Hà Nội", "food-service", 45, seed=bytes([3]) * 16)
