"""What the export.bin tests share: protocol-buffer wire bytes written by hand, so tests can build
files protobuf itself would not write (fields out of order, unknown or repeated fields, lengths
that lie), and a reader's outcome in a form two readers can be compared by."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bluezone.errors import KeyFileError


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
