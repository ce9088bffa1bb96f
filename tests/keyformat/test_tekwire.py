"""The column-wise key decoder agrees with protobuf on every key message, valid or not."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

import bluezone.keyformat.export as export_module
from bluezone.keyformat import gaen_export_pb2 as pb
from bluezone.keyformat.export import EXPORT_HEADER, build_export_bin, parse_whole_export_bin, read_export_bin
from bluezone.keyformat.keys import empty_keys
from bluezone.keyformat.tekwire import decode_keys, raw_export_class

from tests.keyformat.export_helpers import key_messages, outcome


def _protobuf_columns(entries: list[bytes]) -> list[tuple] | None:
    rows = []
    for e in entries:
        try:
            k = pb.TemporaryExposureKey.FromString(e)
        except DecodeError:
            return None
        dsos = k.days_since_onset_of_symptoms if k.HasField("days_since_onset_of_symptoms") else None
        rows.append(
            (k.key_data, k.rolling_start_interval_number, k.rolling_period, k.transmission_risk_level, int(k.report_type), dsos)
        )
    return rows


def _our_columns(entries: list[bytes]) -> list[tuple] | None:
    cols = decode_keys(entries)
    if cols is None:
        return None
    return [
        (
            cols.key_data[i, : cols.key_length[i]].tobytes() if cols.key_length[i] <= 16 else None,
            int(cols.rolling_start[i]),
            int(cols.rolling_period[i]),
            int(cols.transmission_risk[i]),
            int(cols.report_type[i]),
            int(cols.days_since_onset[i]) if cols.has_days_since_onset[i] else None,
        )
        for i in range(len(cols))
    ]


@settings(max_examples=300)
@given(st.lists(key_messages(), max_size=12))
def test_valid_messages_decode_as_protobuf_reads_them(entries: list[bytes]) -> None:
    theirs, ours = _protobuf_columns(entries), _our_columns(entries)
    assert theirs is not None and ours is not None
    for t, o in zip(theirs, ours):
        assert o == (t if len(t[0]) <= 16 else (None, *t[1:]))
    cols = decode_keys(entries)
    assert cols is not None and cols.key_length.tolist() == [len(t[0]) for t in theirs]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_arbitrary_bytes_decode_as_protobuf_or_are_left_to_it(entries: list[bytes]) -> None:
    ours = _our_columns(entries)
    if ours is None:
        return  # protobuf's path decides (and words any error)
    theirs = _protobuf_columns(entries)
    assert theirs is not None, "decoded what protobuf refuses"
    for t, o in zip(theirs, ours):
        assert o == (t if len(t[0]) <= 16 else (None, *t[1:]))


def test_raw_export_class_parses_the_header_and_keeps_keys_raw() -> None:
    message = pb.TemporaryExposureKeyExport(region="VN", batch_num=2, batch_size=3, start_timestamp=5)
    message.signature_infos.add(verification_key_id="310", signature_algorithm="1.2.840.10045.4.3.2")
    k = message.keys.add(key_data=bytes(range(16)), rolling_start_interval_number=2_650_000)
    raw = raw_export_class(pb.TemporaryExposureKeyExport.DESCRIPTOR).FromString(message.SerializeToString())
    assert (raw.region, raw.batch_num, raw.batch_size, raw.start_timestamp) == ("VN", 2, 3, 5)
    assert raw.signature_infos[0].verification_key_id == "310"
    assert list(raw.keys) == [k.SerializeToString()] and list(raw.revised_keys) == []


def test_long_or_unusual_messages_are_left_to_protobuf() -> None:
    assert decode_keys([b"\x0a\x10" + bytes(16) + b"\x92\x01\x01x"]) is None  # field 18: a two-byte tag
    assert decode_keys([b"\x0b\x0c"]) is None  # a group
    assert decode_keys([b"\x0a\x7f" + bytes(127)]) is None  # longer than MAX_ENTRY
    assert decode_keys([b"\x0a\x10" + bytes(15)]) is None  # truncated
    empty = decode_keys([])
    assert empty is not None and len(empty) == 0 and empty.key_data.shape == (0, 16)
    defaults = decode_keys([b""])
    assert defaults is not None and defaults.rolling_period.tolist() == [144] and defaults.key_length.tolist() == [0]
    np.testing.assert_array_equal(defaults.key_data, np.zeros((1, 16), np.uint8))


@st.composite
def export_bodies(draw: st.DrawFn) -> bytes:
    """An export.bin whose keys may break any of the export's rules."""
    message = pb.TemporaryExposureKeyExport(region="VN", batch_num=1, batch_size=1)
    for repeated in (message.keys, message.revised_keys):
        for entry in draw(st.lists(key_messages(), max_size=5)):
            repeated.add().MergeFromString(entry)
    return EXPORT_HEADER + message.SerializeToString()


@settings(max_examples=200)
@given(export_bodies())
def test_export_files_read_the_same_on_every_path(data: bytes) -> None:
    whole = outcome(parse_whole_export_bin, data)
    streamed = outcome(read_export_bin, data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export_module, "decode_keys", lambda entries: None)  # protobuf's message objects only
        slow = outcome(parse_whole_export_bin, data)
    assert whole == slow == streamed


def test_a_cwa_sized_day_reads_without_protobuf_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = empty_keys(5_000)
    rng = np.random.default_rng(1)
    keys["key"] = np.frombuffer(rng.bytes(16 * len(keys)), "V16")
    keys["rolling_start"] = 2_940_000 + 144 * rng.integers(0, 14, len(keys))
    keys["report_type"] = 1
    data = build_export_bin(keys, region="DE")

    def no_objects(*args: object) -> None:
        raise AssertionError("went through protobuf's message objects")

    monkeypatch.setattr(export_module, "columns_from_messages", no_objects)
    assert parse_whole_export_bin(data).keys.tobytes() == keys.tobytes()
    monkeypatch.setattr(export_module, "parse_whole_export_bin", no_objects)  # streamed, never whole
    assert read_export_bin(data).keys.tobytes() == keys.tobytes()


def test_chunks_join_to_the_same_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    import bluezone.keyformat.tekwire as tekwire

    entries = [pb.TemporaryExposureKey(key_data=bytes([i]) * 16, rolling_start_interval_number=i).SerializeToString() for i in range(10)]
    whole = decode_keys(entries)
    monkeypatch.setattr(tekwire, "CHUNK", 3)
    chunked = decode_keys(entries)
    assert whole is not None and chunked is not None
    for name in ("key_data", "key_length", "rolling_start", "rolling_period", "has_days_since_onset"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    entries[7] = b"\x0b"  # a group, left to protobuf: the whole file goes that way
    assert decode_keys(entries) is None
