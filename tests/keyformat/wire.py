"""Protocol-buffer wire bytes written by hand, so tests can build files protobuf itself would not
write (fields out of order, unknown or repeated fields, lengths that lie)."""

from __future__ import annotations


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
