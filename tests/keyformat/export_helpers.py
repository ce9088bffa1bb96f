"""What the export.bin tests share: protocol-buffer wire bytes written by hand, so tests can build
files protobuf itself would not write (fields out of order, unknown or repeated fields, lengths
that lie), a reader's outcome in a form two readers can be compared by, and any key message
protobuf might meet (a hypothesis strategy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bluezone.errors import KeyFileError
from bluezone.keyformat import gaen_export_pb2 as pb

INT32 = st.integers(-(2**31), 2**31 - 1)


def varint(value: int) -> bytes:
    """``value`` (>= 0) as a base-128 varint, low group first."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    """Field ``number``'s tag for wire type ``wire``, then ``payload`` as given."""
    return varint(number << 3 | wire) + payload


def delimited(number: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2): a message, bytes or a string."""
    return field(number, 2, varint(len(data)) + data)


def outcome(read: Callable[[bytes], Any], data: bytes) -> tuple:
    """What ``read`` (an export.bin reader) makes of ``data``: ("error", its message) or ``fields_of``."""
    try:
        export = read(data)
    except KeyFileError as exc:
        return ("error", str(exc))
    return fields_of(export)


def fields_of(export: Any, keys: np.ndarray | None = None) -> tuple:
    """("ok", then every field of an ExportFile), its keys replaced by ``keys`` when given."""
    return (
        "ok", (export.keys if keys is None else keys).tobytes(), export.revised_keys.tobytes(), export.region,
        export.batch_num, export.batch_size, export.start_timestamp, export.end_timestamp, export.signature_infos,
    )


@st.composite
def key_messages(draw: st.DrawFn) -> bytes:
    """A TemporaryExposureKey as protobuf writes it, any subset of fields, maybe odd values,
    maybe with unknown fields or a field repeated after it."""
    k = pb.TemporaryExposureKey()
    if draw(st.booleans()):
        k.key_data = draw(st.binary(min_size=0, max_size=20))
    for name in ("transmission_risk_level", "rolling_start_interval_number", "rolling_period"):
        if draw(st.booleans()):
            setattr(k, name, draw(INT32))
    if draw(st.booleans()):
        k.report_type = draw(st.integers(0, 5))
    if draw(st.booleans()):
        k.days_since_onset_of_symptoms = draw(INT32)
    data = k.SerializeToString()
    extra = draw(
        st.lists(
            st.sampled_from(
                [
                    b"\x28\x09",  # report_type 9: outside the enum, unknown
                    b"\x20\x05",  # rolling_period again: the last one wins
                    b"\x38\x96\x01",  # field 7, a varint: unknown
                    b"\x41" + bytes(8),  # field 8, fixed64: unknown
                    b"\x4d" + bytes(4),  # field 9, fixed32: unknown
                    b"\x52\x02ab",  # field 10, bytes: unknown
                    b"\x0a\x10" + bytes(range(16)),  # key_data again
                    b"\x18\xff\xff\xff\xff\x0f",  # rolling start 2**32 - 1: the low 32 bits are -1
                    b"\x0d\x01\x02\x03\x04",  # key_data's number with wire type 5: unknown
                ]
            ),
            max_size=3,
        )
    )
    return data + b"".join(extra)
