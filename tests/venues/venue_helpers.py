"""What the venue tests share."""

from __future__ import annotations

from bluezone.keyformat import presence_pb2 as pb


def event_payload(start: int, end: int) -> bytes:
    """A check-in code's payload of an event ("Fest", cultural-event) with these 64-bit start and end times."""
    return pb.QRCodePayload(
        version=1,
        location_data=pb.TraceLocation(version=1, description="Fest", address="a", start_timestamp=start, end_timestamp=end),
        crowd_notifier_data=pb.CrowdNotifierData(version=1, cryptographic_seed=bytes(16)),
        vendor_data=pb.CWALocationData(version=1, type=9).SerializeToString(),
    ).SerializeToString()
