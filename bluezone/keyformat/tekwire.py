"""The ``TemporaryExposureKey`` entries of an export, decoded without a Python object per key.

A CWA day holds 358,105 keys.  Read through protobuf message objects they cost ~2.4 us a
key in Python, twelve times protobuf's own parse.  Here upb parses the export with
``keys`` and ``revised_keys`` declared as ``bytes`` (the same wire format), so each key
arrives as its raw message bytes, and numpy decodes the fields of all keys at once: one
pass per field position, reading tags and varints column-wise.

The columns are what protobuf gives for this proto2 schema: the last occurrence of a field
wins, an absent ``rolling_period`` is 144, int32 values are the low 32 bits of the varint,
a ``report_type`` outside the enum is unknown (the field keeps its value), fields of an
unknown number or an unexpected wire type are skipped.  What is not handled here (a tag of
more than one byte, groups, a key message over ``MAX_ENTRY`` bytes, anything malformed)
gives ``None``, and the caller takes protobuf's path, which also words the error; tests
check that both paths agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD
from bluezone.crypto.keys import KEY_LENGTH
from bluezone.errors import KeyFileError
from bluezone.keyformat.keys import (
    MAX_DAYS_SINCE_ONSET,
    MAX_REPORT_TYPE,
    MAX_TRANSMISSION_RISK,
    NO_DAYS_SINCE_ONSET,
    empty_keys,
)

#: Longest key message decoded here (a canonical one is at most 45 bytes).
MAX_ENTRY = 96
#: Keys decoded together (``decode_keys``).
CHUNK = 262_144
_VARINT = 10  # bytes a varint may take
#: Bytes ``decode_entries`` may read past the last message (a tag, a varint, a key).
PADDING = 2 * _VARINT + 16
_DEFAULT_PERIOD = 144  # the schema's [default = 144]
_MAX_REPORT_TYPE = 5  # REVOKED, the last ReportType
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class KeyColumns:
    """One array per ``TemporaryExposureKey`` field, a row per key, before any validation."""

    key_data: np.ndarray  # uint8 (n, 16): the first 16 bytes of each key, zero padded
    key_length: np.ndarray  # int64: the length each key_data had (validated by the caller)
    rolling_start: np.ndarray  # int64 (int32 values)
    rolling_period: np.ndarray
    transmission_risk: np.ndarray
    report_type: np.ndarray
    days_since_onset: np.ndarray
    has_days_since_onset: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.key_length)


@cache
def raw_export_class(export_descriptor: Any) -> Any:
    """A message class like ``TemporaryExposureKeyExport`` whose ``keys`` and ``revised_keys``
    are ``repeated bytes``: the raw key messages, parsed by upb, with no object per key."""
    # protobuf's runtime (~15-25 ms to import) only here: a file streamed (``exportstream``) needs none of it
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file_proto = descriptor_pb2.FileDescriptorProto()
    export_descriptor.file.CopyToProto(file_proto)
    old, new = f".{file_proto.package}.", f".{file_proto.package}.raw."
    file_proto.name = file_proto.name.replace(".proto", "_raw.proto")
    file_proto.package += ".raw"
    for message in file_proto.message_type:
        for f in message.field:
            if f.type_name.startswith(old):
                f.type_name = new + f.type_name[len(old) :]
            if message.name == export_descriptor.name and f.number in (7, 8):
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                f.ClearField("type_name")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file_proto.package}.{export_descriptor.name}"))


def decode_keys(entries: Any) -> KeyColumns | None:
    """The fields of each raw ``TemporaryExposureKey`` message in ``entries`` (a sequence of
    bytes), or None where protobuf's own path must decide.

    Decoded ``CHUNK`` keys at a time, so the working arrays stay a few tens of MB whatever the
    file holds (a 6M-key file would otherwise need about a GB of them at once)."""
    parts = []
    for lo in range(0, len(entries), CHUNK):
        part = _decode_chunk(entries[lo : lo + CHUNK])
        if part is None:
            return None
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return _decode_chunk([])
    return KeyColumns(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(KeyColumns)))


def _decode_chunk(entries: Any) -> KeyColumns | None:
    lengths = np.fromiter(map(len, entries), np.int64, len(entries))
    # every message side by side, as sent
    flat = np.frombuffer(b"".join(entries) + bytes(PADDING), np.uint8)
    return decode_entries(flat, np.cumsum(lengths) - lengths, lengths)


def decode_entries(flat: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> KeyColumns | None:
    """The fields of the key messages at ``flat[offsets[i] : offsets[i] + lengths[i]]``, or None
    where protobuf's own path must decide.  ``flat`` (uint8) must hold ``PADDING`` bytes after the
    last message: reads that run past a message's end see what follows it (the next message, or
    padding) and are caught by the length checks."""
    n = len(offsets)
    if n == 0:
        empty = np.empty(0, np.int64)
        return KeyColumns(np.empty((0, 16), np.uint8), empty, empty, empty, empty, empty, empty, np.empty(0, bool))
    offsets = offsets.astype(np.int64, copy=False)
    lengths = lengths.astype(np.int64, copy=False)
    if lengths.max() > MAX_ENTRY:
        return None
    key_at = np.zeros(n, np.int64)
    key_len = np.zeros(n, np.int64)  # absent key_data reads as empty bytes
    start, risk, report, dsos = (np.zeros(n, np.int64) for _ in range(4))
    period = np.full(n, _DEFAULT_PERIOD, np.int64)
    has_dsos = np.zeros(n, bool)
    cursor = np.zeros(n, np.int64)
    active = np.flatnonzero(lengths > 0)
    while len(active):
        at = offsets[active] + cursor[active]  # where each active message's next tag is
        tag = flat[at]
        wire, number = tag & 7, tag >> 3
        if (tag & 0x80).any() or (number == 0).any() or np.isin(wire, (3, 4, 6, 7)).any():
            return None
        varint, delimited = wire == 0, wire == 2
        # the varint after the tag (wire types 0 and 2), one byte position at a time
        value = np.zeros(len(active), np.uint64)
        size = np.zeros(len(active), np.int64)  # bytes of the varint
        going = varint | delimited
        for k in range(_VARINT):
            byte = flat[at + 1 + k]
            value |= np.where(going, (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k), np.uint64(0))
            size += going
            going &= byte >= 0x80
            if not going.any():
                break
        else:
            return None  # a varint longer than 10 bytes
        if (value[delimited] > MAX_ENTRY).any():
            return None  # longer than any message here: truncated
        step = np.select([varint, delimited, wire == 1], [1 + size, 1 + size + value.astype(np.int64), 9], 5)
        after = cursor[active] + step
        if (after > lengths[active]).any():
            return None  # truncated
        low32 = (value & np.uint64(0xFFFFFFFF)).astype(np.int64)
        int32 = np.where(low32 >= 2**31, low32 - 2**32, low32)
        for field, column in ((2, risk), (3, start), (4, period)):
            hit = varint & (number == field)
            column[active[hit]] = int32[hit]
        hit = varint & (number == 5) & (int32 >= 0) & (int32 <= _MAX_REPORT_TYPE)
        report[active[hit]] = int32[hit]
        hit = varint & (number == 6)  # sint32: zigzag
        dsos[active[hit]] = (low32[hit] >> 1) ^ -(low32[hit] & 1)
        has_dsos[active[hit]] = True
        hit = delimited & (number == 1)
        key_at[active[hit]] = (at + 1 + size)[hit]
        key_len[active[hit]] = value[hit].astype(np.int64)
        cursor[active] = after
        active = active[after < lengths[active]]

    raw = flat[key_at[:, None] + np.arange(16)]
    raw[np.arange(16) >= key_len[:, None]] = 0  # what follows a short key_data is not part of it
    return KeyColumns(raw, key_len, start, period, risk, report, dsos, has_dsos)


def columns_from_messages(entries: Sequence[Any]) -> KeyColumns:
    """The fields of parsed ``TemporaryExposureKey`` messages: protobuf's path, for what
    ``decode_entries`` leaves to it."""
    n = len(entries)
    raw = np.zeros((n, KEY_LENGTH), np.uint8)
    lengths = np.fromiter((len(k.key_data) for k in entries), np.int64, n)
    for i, k in enumerate(entries):
        data = k.key_data[:KEY_LENGTH]
        raw[i, : len(data)] = np.frombuffer(data, np.uint8)

    def column(values: Any) -> np.ndarray:
        return np.fromiter(values, np.int64, n)

    return KeyColumns(
        key_data=raw,
        key_length=lengths,
        rolling_start=column(k.rolling_start_interval_number for k in entries),
        rolling_period=column(k.rolling_period for k in entries),
        transmission_risk=column(k.transmission_risk_level for k in entries),
        report_type=column(int(k.report_type) for k in entries),
        days_since_onset=column(k.days_since_onset_of_symptoms for k in entries),
        has_days_since_onset=np.fromiter((k.HasField("days_since_onset_of_symptoms") for k in entries), bool, n),
    )


def broken_rule(cols: KeyColumns, where: str, first: int = 0) -> str | None:
    """The export's rule the first bad key in ``cols`` breaks, as ``where[i]: ...`` with ``i``
    counted from ``first``; None when every key is valid."""
    period = np.where(cols.rolling_period == 0, ROLLING_PERIOD, cols.rolling_period)
    dsos = cols.days_since_onset
    rules = [  # in the order each key is judged
        (cols.key_length != KEY_LENGTH, lambda i: f"key_data must be {KEY_LENGTH} bytes, got {cols.key_length[i]}"),
        (cols.rolling_start < 0, lambda i: f"rolling_start_interval_number must not be negative, got {cols.rolling_start[i]}"),
        ((cols.rolling_period < 0) | (cols.rolling_period > ROLLING_PERIOD),
         lambda i: f"rolling_period must be 0-{ROLLING_PERIOD}, got {cols.rolling_period[i]}"),
        (cols.rolling_start + period > _INT32_MAX, lambda i: "rolling start + period overflows"),
        ((cols.transmission_risk < 0) | (cols.transmission_risk > MAX_TRANSMISSION_RISK),
         lambda i: f"transmission_risk_level must be 0-{MAX_TRANSMISSION_RISK}, got {cols.transmission_risk[i]}"),
        ((cols.report_type < 0) | (cols.report_type > MAX_REPORT_TYPE),
         lambda i: f"report_type must be 0-{MAX_REPORT_TYPE}, got {cols.report_type[i]}"),
        (cols.has_days_since_onset & ((dsos < -MAX_DAYS_SINCE_ONSET) | (dsos > MAX_DAYS_SINCE_ONSET)),
         lambda i: f"days_since_onset_of_symptoms must be {-MAX_DAYS_SINCE_ONSET}-{MAX_DAYS_SINCE_ONSET}"),
    ]
    bad = np.zeros(len(cols), bool)
    for broken, _ in rules:
        bad |= broken
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    message = next(say for broken, say in rules if broken[i])
    return f"{where}[{first + i}]: {message(i)}"


def fill_keys(cols: KeyColumns, out: np.ndarray) -> None:
    """Write valid columns (``broken_rule`` said None) into ``out``, ``KEY_DTYPE`` rows."""
    out["key"] = np.ascontiguousarray(cols.key_data).view("V16").reshape(-1)
    out["rolling_start"] = cols.rolling_start
    out["rolling_period"] = np.where(cols.rolling_period == 0, ROLLING_PERIOD, cols.rolling_period)  # as Google
    out["transmission_risk"] = cols.transmission_risk
    out["report_type"] = cols.report_type
    out["days_since_onset"] = np.where(cols.has_days_since_onset, cols.days_since_onset, NO_DAYS_SINCE_ONSET)


def keys_from_columns(cols: KeyColumns, where: str) -> np.ndarray:
    """``KEY_DTYPE`` keys from decoded columns; the first key that breaks a rule is a KeyFileError."""
    problem = broken_rule(cols, where)
    if problem is not None:
        raise KeyFileError(problem)
    keys = empty_keys(len(cols))
    fill_keys(cols, keys)
    return keys


def take(cols: KeyColumns, rows: np.ndarray) -> KeyColumns:
    """The ``rows`` (a mask or indices) of every column."""
    return KeyColumns(*(getattr(cols, f.name)[rows] for f in fields(KeyColumns)))
