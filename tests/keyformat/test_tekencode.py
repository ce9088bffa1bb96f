"""The column-wise key writer (``tekencode``) against protobuf's own serialisation, and read back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.keyformat import gaen_export_pb2 as pb
from bluezone.keyformat.export import EXPORT_HEADER, SignatureInfo, build_export_bin, read_export_bin
from bluezone.keyformat.keys import KEY_DTYPE, NO_DAYS_SINCE_ONSET, empty_keys
from bluezone.keyformat.tekencode import REVISED_KEYS_FIELD, encode_keys

from tests.keyformat.export_helpers import INT32


def _add_with_protobuf(repeated: pb.TemporaryExposureKey, keys: np.ndarray) -> None:
    """The reference: one protobuf message per key, fields set as the exporter always set them."""
    for row in keys:
        k = repeated.add(
            key_data=bytes(row["key"]),
            transmission_risk_level=int(row["transmission_risk"]),
            rolling_start_interval_number=int(row["rolling_start"]),
            rolling_period=int(row["rolling_period"]),
        )
        if row["report_type"]:
            k.report_type = int(row["report_type"])
        if row["days_since_onset"] != NO_DAYS_SINCE_ONSET:
            k.days_since_onset_of_symptoms = int(row["days_since_onset"])


@st.composite
def key_arrays(draw: st.DrawFn, valid: bool = False) -> np.ndarray:
    """KEY_DTYPE arrays over every value the dtype holds (``valid``: what a GAEN file may carry)."""
    n = draw(st.integers(0, 20))
    keys = empty_keys(n)
    small = st.integers(0, 8) if valid else INT32
    for i in range(n):
        onset = draw(st.one_of(st.just(NO_DAYS_SINCE_ONSET), st.integers(-14, 14) if valid else INT32))
        keys[i] = (
            draw(st.binary(min_size=16, max_size=16)),
            draw(st.integers(0, 2**31 - 145) if valid else INT32),
            draw(st.integers(1, 144) if valid else INT32),
            draw(small),
            draw(st.integers(0, 5)),
            onset,
        )
    return keys


@settings(max_examples=300)
@given(key_arrays())
def test_keys_encode_byte_for_byte_as_protobuf(keys: np.ndarray) -> None:
    message = pb.TemporaryExposureKeyExport()
    _add_with_protobuf(message.revised_keys, keys)
    assert encode_keys(keys, REVISED_KEYS_FIELD) == message.SerializeToString(deterministic=True)


@settings(max_examples=200)
@given(key_arrays(valid=True), key_arrays(valid=True), st.text(max_size=20), INT32, INT32)
def test_export_bin_is_protobufs_and_reads_back(
    keys: np.ndarray, revised: np.ndarray, region: str, batch_num: int, batch_size: int
) -> None:
    info = SignatureInfo("452", "v1")
    data = build_export_bin(
        keys, region=region, batch_num=batch_num, batch_size=batch_size, signature_infos=[info],
        start_timestamp=1, end_timestamp=2**40, revised_keys=revised,
    )
    message = pb.TemporaryExposureKeyExport(
        region=region, batch_num=batch_num, batch_size=batch_size, start_timestamp=1, end_timestamp=2**40
    )
    message.signature_infos.append(info.to_pb())
    _add_with_protobuf(message.keys, keys)
    _add_with_protobuf(message.revised_keys, revised)
    assert data == EXPORT_HEADER + message.SerializeToString(deterministic=True)
    parsed = pb.TemporaryExposureKeyExport.FromString(data[len(EXPORT_HEADER):])
    assert parsed == message  # protobuf reads back what it would have written
    read = read_export_bin(data)  # and our column-wise reader (tekwire) gives the keys back
    assert read.keys.tobytes() == keys.tobytes() and read.revised_keys.tobytes() == revised.tobytes()
    assert (read.region, read.batch_num, read.batch_size) == (region, batch_num, batch_size)


def test_a_full_batch_matches_protobuf() -> None:
    rng = np.random.default_rng(3)
    keys = empty_keys(30_000)
    keys["key"] = np.frombuffer(rng.bytes(16 * len(keys)), "V16")
    keys["rolling_start"] = 2_940_000 + 144 * rng.integers(0, 14, len(keys))
    keys["report_type"] = rng.integers(0, 6, len(keys))
    keys["days_since_onset"] = np.where(rng.random(len(keys)) < 0.5, NO_DAYS_SINCE_ONSET, rng.integers(-14, 15, len(keys)))
    message = pb.TemporaryExposureKeyExport()
    _add_with_protobuf(message.keys, keys)
    assert encode_keys(keys) == message.SerializeToString(deterministic=True)


def test_a_report_type_outside_the_enum_is_refused_as_protobuf_refuses_it() -> None:
    keys = np.zeros(1, KEY_DTYPE)
    keys["report_type"] = 6
    with pytest.raises(ValueError, match="report_type"):
        encode_keys(keys)
    with pytest.raises(ValueError):
        pb.TemporaryExposureKey(report_type=6)
