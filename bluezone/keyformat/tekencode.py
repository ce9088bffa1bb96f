"""The ``TemporaryExposureKey`` entries of an export, encoded without a Python object per key.

Building a million key messages through protobuf costs ~2.5 s, most of an export's
sign-and-zip work.  The wire format of a key is simple (GAEN's proto2 schema, fields
written in number order, a field present only when set), so numpy writes every key at
once: each field is a column of bytes with a length per key, the columns side by side
make a matrix, and the bytes of each row up to its length, row after row, are the
repeated field.  The output is byte-for-byte what ``SerializeToString(deterministic=True)``
gives for the same messages (tests compare both, under hypothesis): ``key_data``, risk,
rolling start and period always present, ``report_type`` when not 0, days since onset
unless ``NO_DAYS_SINCE_ONSET``.  ``tekwire`` is the reading side.
"""

from __future__ import annotations

import numpy as np

from bluezone.crypto.keys import KEY_LENGTH
from bluezone.keyformat.keys import NO_DAYS_SINCE_ONSET, key_bytes

#: Field numbers of the repeated key fields in ``TemporaryExposureKeyExport``.
KEYS_FIELD, REVISED_KEYS_FIELD = 7, 8
_MAX_REPORT_TYPE = 5  # REVOKED, the last value of the (closed) ReportType enum
_LENGTH_DELIMITED, _VARINT = 2, 0


def _tag(field: int, wire_type: int) -> int:
    return field << 3 | wire_type


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bytes (n, width), length per row) of the base-128 varints of ``values`` (uint64)."""
    values = values.astype(np.uint64, copy=False)
    bits = np.zeros(len(values), np.int64)
    rest = values.copy()
    while rest.any():  # significant bits, 7 at a time: at most 10 rounds
        bits += rest != 0
        rest >>= np.uint64(7)
    lengths = np.maximum(bits, 1)
    width = int(lengths.max(initial=1))
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((values[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    more = np.arange(width) < (lengths[:, None] - 1)  # continuation bit on all but the last byte
    return groups | (more.astype(np.uint8) << 7), lengths


def _int32_field(field: int, values: np.ndarray, present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A varint field of int32 values: negative ones take ten bytes, as protobuf sign-extends them."""
    encoded, lengths = _varints(values.astype(np.int64).view(np.uint64))
    return _with_tag(_tag(field, _VARINT), encoded, lengths, present)


def _with_tag(
    tag: int, encoded: np.ndarray, lengths: np.ndarray, present: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    block = np.empty((len(lengths), encoded.shape[1] + 1), np.uint8)
    block[:, 0] = tag
    block[:, 1:] = encoded
    lengths = lengths + 1
    return block, lengths if present is None else np.where(present, lengths, 0)


def _rows(blocks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Blocks side by side: (matrix, which of its bytes are real) for ``matrix[mask]``."""
    matrix = np.concatenate([b for b, _ in blocks], axis=1)
    mask = np.concatenate([np.arange(b.shape[1]) < n[:, None] for b, n in blocks], axis=1)
    return matrix, mask


def encode_keys(keys: np.ndarray, field: int = KEYS_FIELD) -> bytes:
    """The repeated ``TemporaryExposureKey`` field ``field`` (7 ``keys``, 8 ``revised_keys``) for
    ``keys`` (``KEY_DTYPE``) in their order, as protobuf serialises it.

    A ``report_type`` outside the enum (0-5) is a ValueError, as protobuf refuses to set one."""
    n = len(keys)
    if n == 0:
        return b""
    report = keys["report_type"].astype(np.int64)
    if ((report < 0) | (report > _MAX_REPORT_TYPE)).any():
        raise ValueError(f"report_type must be 0-{_MAX_REPORT_TYPE} (the GAEN ReportType enum)")
    key_data = np.empty((n, 2 + KEY_LENGTH), np.uint8)
    key_data[:, 0] = _tag(1, _LENGTH_DELIMITED)
    key_data[:, 1] = KEY_LENGTH
    key_data[:, 2:] = key_bytes(keys)
    onset = keys["days_since_onset"].astype(np.int64)
    has_onset = onset != NO_DAYS_SINCE_ONSET
    zigzag = ((onset << 1) ^ (onset >> 31)) & 0xFFFFFFFF  # sint32
    body = [
        (key_data, np.full(n, key_data.shape[1])),
        _int32_field(2, keys["transmission_risk"]),
        _int32_field(3, keys["rolling_start"]),
        _int32_field(4, keys["rolling_period"]),
        _int32_field(5, report, report != 0),
        _with_tag(_tag(6, _VARINT), *_varints(zigzag.view(np.uint64)), has_onset),
    ]
    body_length = np.sum([lengths for _, lengths in body], axis=0)
    head, head_length = _varints(body_length.astype(np.uint64))
    matrix, mask = _rows([_with_tag(_tag(field, _LENGTH_DELIMITED), head, head_length, None), *body])
    return matrix[mask].tobytes()
