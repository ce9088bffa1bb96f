"""The streamed export.bin reader gives what protobuf's parse of the whole file gives, whatever the
field order, splitting, unknown fields, piece size, truncation or garbage; and it reads in pieces."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bluezone.keyformat.export as export_module
import bluezone.keyformat.exportstream as exportstream
from bluezone.errors import ExportSignatureError, KeyFileError
from bluezone.keyformat import gaen_export_pb2 as pb
from bluezone.keyformat.export import (
    EXPORT_HEADER,
    SignatureInfo,
    build_export_bin,
    open_export,
    open_signed_export,
    parse_whole_export_bin,
    read_export_bin,
    sign_export,
    write_export_zip,
)
from bluezone.keyformat.keyfile import load_keys, load_signed_keys
from bluezone.keyformat.keys import empty_keys

from tests.keyformat.export_helpers import delimited, field, fields_of, key_messages, outcome, varint

UINT64 = st.integers(0, 2**64 - 1)


@st.composite
def valid_keys(draw: st.DrawFn) -> bytes:
    """A TemporaryExposureKey that passes every rule, its fields in any order, some repeated."""
    k = pb.TemporaryExposureKey(
        key_data=draw(st.binary(min_size=16, max_size=16)),
        rolling_start_interval_number=draw(st.integers(0, 3_000_000)),
        transmission_risk_level=draw(st.integers(0, 8)),
    )
    if draw(st.booleans()):
        k.rolling_period = draw(st.integers(0, 144))
    if draw(st.booleans()):
        k.report_type = draw(st.integers(0, 5))
    if draw(st.booleans()):
        k.days_since_onset_of_symptoms = draw(st.integers(-14, 14))
    fields = [k.__class__(**{f.name: v}).SerializeToString() for f, v in k.ListFields()]
    return b"".join(draw(st.permutations(fields))) + draw(st.sampled_from([b"", b"\x20\x05", b"\x52\x02ab"]))


@st.composite
def top_level_fields(draw: st.DrawFn, odd: bool = True) -> list[bytes]:
    """The top-level fields of an export, one bytes each, in any order: keys and revised keys
    (valid or, with ``odd``, not, up to a multi-byte length), scalars maybe repeated, signature
    infos, unknown fields and known numbers with another wire type (with ``odd``: multi-byte tags
    and groups too, which the streamed reader leaves to protobuf)."""
    entries = key_messages() if odd and draw(st.booleans()) else valid_keys()
    parts = [delimited(7, k) for k in draw(st.lists(entries, max_size=8))]
    parts += [delimited(8, k) for k in draw(st.lists(entries, max_size=3))]
    valid = pb.TemporaryExposureKey(key_data=bytes(range(16)), rolling_start_interval_number=2_650_000)
    parts += [delimited(7, valid.SerializeToString())] * draw(st.integers(0, 40))
    if odd and draw(st.booleans()):
        parts.append(delimited(7, valid.SerializeToString() + b"\x52\x70" + bytes(112)))  # 132 bytes: a 2-byte length
    for _ in range(draw(st.integers(0, 2))):
        parts.append(field(1, 1, draw(UINT64).to_bytes(8, "little")))
        parts.append(field(2, 1, draw(UINT64).to_bytes(8, "little")))
    for _ in range(draw(st.integers(0, 2))):
        parts.append(delimited(3, draw(st.sampled_from([b"VN", b"DE", b"", b"\xff\xfe", "Việt".encode()]))))
    for number in (4, 5):
        for _ in range(draw(st.integers(0, 2))):
            parts.append(field(number, 0, varint(draw(UINT64))))
    for _ in range(draw(st.integers(0, 2))):
        info = pb.SignatureInfo(verification_key_id=draw(st.text(max_size=4)), verification_key_version="v1")
        parts.append(delimited(6, info.SerializeToString()))
    unknown = [
        field(9, 0, b"\x96\x01"),  # unknown varint
        field(10, 1, bytes(8)),  # unknown fixed64
        field(11, 5, bytes(4)),  # unknown fixed32
        delimited(12, b"abc"),  # unknown bytes
        field(1, 0, b"\x05"),  # start_timestamp as a varint: unknown
        field(4, 5, bytes(4)),  # batch_num as fixed32: unknown
        field(7, 0, b"\x01"),  # keys as a varint: unknown
    ]
    if odd:
        unknown += [
            delimited(200, b"x"),  # a two-byte tag
            field(13, 3, field(1, 0, b"\x01")) + field(13, 4, b""),  # a group
        ]
    parts += draw(st.lists(st.sampled_from(unknown), max_size=4))
    return draw(st.permutations(parts))


piece_sizes = st.sampled_from([1, 2, 3, 17, 64, 1000, exportstream.PIECE])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(top_level_fields(), piece_sizes)
def test_any_field_order_reads_as_protobuf_does(parts: list[bytes], piece: int) -> None:
    data = EXPORT_HEADER + b"".join(parts)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exportstream, "PIECE", piece)
        assert outcome(read_export_bin, data) == outcome(parse_whole_export_bin, data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(top_level_fields(odd=False), piece_sizes)
def test_what_servers_write_is_streamed_never_parsed_whole(parts: list[bytes], piece: int) -> None:
    """Valid keys, known and unknown fields in any order: never left to protobuf, and as it reads them."""
    data = EXPORT_HEADER + b"".join(parts)
    expected = outcome(parse_whole_export_bin, data)
    assert expected[0] == "ok"

    def whole(data: bytes) -> None:
        raise AssertionError("parsed whole")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exportstream, "PIECE", piece)
        mp.setattr(exportstream, "_MIN_VALID_ENTRY", 10_000)  # room for one key: the rows grow
        mp.setattr(export_module, "parse_whole_export_bin", whole)
        assert outcome(read_export_bin, data) == expected


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(top_level_fields(), st.integers(0, 10_000), piece_sizes)
def test_a_truncated_export_reads_as_protobuf_does(parts: list[bytes], cut: int, piece: int) -> None:
    data = EXPORT_HEADER + b"".join(parts)
    data = data[: cut % (len(data) + 1)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exportstream, "PIECE", piece)
        assert outcome(read_export_bin, data) == outcome(parse_whole_export_bin, data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(top_level_fields(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4), piece_sizes)
def test_garbage_reads_as_protobuf_does_or_is_a_clean_error(parts: list[bytes], flips: list, piece: int) -> None:
    data = bytearray(EXPORT_HEADER + b"".join(parts))
    for at, value in flips:
        data[at % len(data)] = value
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exportstream, "PIECE", piece)
        assert outcome(read_export_bin, bytes(data)) == outcome(parse_whole_export_bin, bytes(data))


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_random_bytes_after_the_header(body: bytes) -> None:
    data = EXPORT_HEADER + body
    assert outcome(read_export_bin, data) == outcome(parse_whole_export_bin, data)


def _keys(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keys = empty_keys(n)
    keys["key"] = np.frombuffer(rng.bytes(16 * n), "V16")
    keys["rolling_start"] = 2_940_000 + 144 * rng.integers(0, 14, n)
    keys["rolling_period"][rng.random(n) < 0.1] = 77  # a one-byte varint: entries of two lengths
    keys["report_type"] = rng.integers(0, 6, n)
    keys["days_since_onset"][::3] = -5
    return keys


class _Recording(io.BytesIO):
    """A stream that remembers the largest read asked of it."""

    largest = 0

    def read(self, n: int | None = -1) -> bytes:
        self.largest = max(self.largest, n if n is not None and n >= 0 else 1 << 62)
        return super().read(n)


def test_a_large_export_is_read_in_pieces_without_the_whole_file(monkeypatch: pytest.MonkeyPatch) -> None:
    keys, revised = _keys(20_000), _keys(300, seed=4)
    data = build_export_bin(keys, region="VN", revised_keys=revised)
    monkeypatch.setattr(exportstream, "PIECE", 4096)

    def whole(data: bytes) -> None:
        raise AssertionError("parsed whole")

    monkeypatch.setattr(export_module, "parse_whole_export_bin", whole)
    stream = _Recording(data)
    monkeypatch.setattr(export_module, "_rewound", lambda file: _nothing_closed(stream))
    export, info = open_export(stream)
    assert info is None and stream.largest == 4096
    assert export.keys.tobytes() == keys.tobytes() and export.revised_keys.tobytes() == revised.tobytes()
    assert export.keys.flags.owndata and len(export.keys) == len(keys)  # trimmed in place, not a view


def _nothing_closed(stream: io.BytesIO):  # type: ignore[no-untyped-def]
    from contextlib import nullcontext

    stream.seek(0)
    return nullcontext(stream)


@pytest.fixture
def signer() -> tuple[ec.EllipticCurvePrivateKey, SignatureInfo]:
    return ec.generate_private_key(ec.SECP256R1()), SignatureInfo("310", "v1")


def test_a_signed_zip_is_verified_over_the_streamed_bytes(tmp_path: Path, signer: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    private, info = signer
    keys = _keys(5_000)
    export_bin = build_export_bin(keys, region="VN", signature_infos=[info])
    path = tmp_path / "batch.zip"
    path.write_bytes(write_export_zip(export_bin, sign_export(export_bin, private, info)))
    monkeypatch.setattr(exportstream, "PIECE", 1000)
    assert load_signed_keys(path, private.public_key(), "310").tobytes() == keys.tobytes()
    assert load_keys(path).tobytes() == keys.tobytes()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ExportSignatureError, match="does not verify"):
        load_signed_keys(path, other)


def test_a_bad_signature_is_said_before_bad_content(signer: tuple) -> None:
    private, info = signer
    bad = empty_keys(2)  # key_data of zeros is 16 bytes; make one key break a rule instead
    bad["transmission_risk"][1] = 99
    export_bin = build_export_bin(bad, region="VN")
    signed = write_export_zip(export_bin, sign_export(export_bin, private, info))
    with pytest.raises(KeyFileError, match=r"keys\[1\]: transmission_risk_level must be 0-8, got 99") as caught:
        open_signed_export(signed, private.public_key())
    assert not isinstance(caught.value, ExportSignatureError)
    tampered = write_export_zip(export_bin[:-1] + b"\x07", sign_export(export_bin, private, info))
    with pytest.raises(ExportSignatureError, match="does not verify"):
        open_signed_export(tampered, private.public_key())
    headless = b"EK Export v2    " + export_bin[16:]
    with pytest.raises(ExportSignatureError, match="does not verify"):
        open_signed_export(write_export_zip(headless, sign_export(export_bin, private, info)), private.public_key())
    with pytest.raises(KeyFileError, match="16-byte header"):
        open_signed_export(write_export_zip(headless, sign_export(headless, private, info)), private.public_key())


def test_a_corrupt_zip_member_is_one_clean_error(signer: tuple) -> None:
    private, info = signer
    export_bin = build_export_bin(_keys(2_000), region="VN")
    data = bytearray(write_export_zip(export_bin, sign_export(export_bin, private, info)))
    data[len(data) // 3] ^= 0xFF  # inside export.bin's deflate stream
    with pytest.raises(KeyFileError, match="not a valid export zip|not a valid TemporaryExposureKeyExport|keys\\["):
        open_signed_export(bytes(data), private.public_key())


def test_a_bare_export_bin_file_streams_and_carries_no_signature(tmp_path: Path, signer: tuple) -> None:
    keys = _keys(3_000)
    path = tmp_path / "export.bin"
    path.write_bytes(build_export_bin(keys, region="VN"))
    assert load_keys(path).tobytes() == keys.tobytes()
    with pytest.raises(ExportSignatureError, match="bare export.bin carries no signature"):
        load_signed_keys(path, signer[0].public_key())
    path.write_bytes(build_export_bin(keys, region="VN")[:-3])
    with pytest.raises(KeyFileError, match=f"{path}: export.bin is not a valid TemporaryExposureKeyExport"):
        load_keys(path)


def test_a_file_left_to_protobuf_has_its_signature_checked_before_it_is_held_whole(
    signer: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small unknown fields make the streamed reader leave a file to protobuf's parse of the
    whole file: 24 MB of them zip to ~25 KB, so a bad signature must be said before it is held."""
    private, info = signer
    export_bin = build_export_bin(_keys(50), region="VN") + b"\x48\x00" * (12 << 20)  # field 9, varint 0
    forged = write_export_zip(export_bin, sign_export(export_bin[:-2], private, info))
    assert len(forged) < 1 << 20
    largest = []
    read = export_module._Member.read
    monkeypatch.setattr(export_module._Member, "read", lambda self, n=-1: largest.append(n) or read(self, n))
    with pytest.raises(ExportSignatureError, match="does not verify"):
        open_signed_export(forged, private.public_key())
    assert 0 < max(largest) <= exportstream.PIECE, "export.bin read whole before its signature was checked"
    small = build_export_bin(_keys(50), region="VN") + b"\x48\x00" * 20_000  # still left to protobuf
    export, verified = open_signed_export(write_export_zip(small, sign_export(small, private, info)), private.public_key())
    assert verified == info and export.keys.tobytes() == _keys(50).tobytes()


def test_a_file_parsed_whole_is_held_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file left to protobuf is read into one buffer and parsed in place: a zip member's read()
    of it all held it twice, and a copy of the body after the header once more (a 250 KB zip of
    250 MB of small unknown fields: 800 MB peak, now 550)."""
    import tracemalloc

    data = build_export_bin(_keys(50), region="VN") + b"\x48\x00" * (8 << 20)
    streamed = export_module.stream_export_bin

    def then_reset_peak(stream: io.BytesIO, size: int, sink: object = None, **options: bool) -> None:
        assert streamed(stream, size, sink, **options) is None  # left to protobuf
        tracemalloc.reset_peak()  # the streamed try reserves (untouched) rows for the keys

    monkeypatch.setattr(export_module, "stream_export_bin", then_reset_peak)
    for source in (write_export_zip(data, b""), data):
        tracemalloc.start()
        try:
            export, _ = open_export(io.BytesIO(source))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert export.keys.tobytes() == _keys(50).tobytes()
        assert peak < 1.25 * len(data), f"{peak / 2**20:.1f} MiB traced reading a {len(data) / 2**20:.0f} MiB file whole"


def test_an_inflated_export_sig_is_never_read_whole(signer: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """export.sig is a few hundred bytes: one that inflates to MB is refused by its declared size,
    and an unsigned read does not open it at all (a 250 KB zip inflating one to 250 MB was read
    whole, 550 MB peak, before three keys)."""
    import zipfile

    private, info = signer
    export_bin = build_export_bin(_keys(3), region="VN")
    zipped = write_export_zip(export_bin, sign_export(export_bin, private, info) + bytes(4 << 20))
    assert len(zipped) < 64 << 10
    with pytest.raises(KeyFileError, match=r"export.sig in the export zip is too large \(\d+ bytes, limit 65536\)"):
        open_signed_export(zipped, private.public_key())
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def recording_open(self: zipfile.ZipFile, name: str | zipfile.ZipInfo, *args: object, **kwargs: object) -> object:
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    export, verified = open_export(io.BytesIO(zipped))
    assert verified is None and export.keys.tobytes() == _keys(3).tobytes()
    assert opened == ["export.bin"]


class _Collected:
    """A KeySink keeping what it is given since the last restart."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.restarts = 0

    def add(self, keys: np.ndarray) -> None:
        self.parts.append(keys.copy())

    def restart(self) -> None:
        self.parts = []
        self.restarts += 1


def _sunk_outcome(data: bytes) -> tuple:
    """``outcome`` of reading ``data`` with its keys handed to a sink as they stream."""
    sink = _Collected()
    try:
        f, _ = open_export(io.BytesIO(data), sink=sink)
    except KeyFileError as exc:
        return ("error", str(exc))
    assert len(f.keys) == 0
    return fields_of(f, np.concatenate(sink.parts) if sink.parts else empty_keys(0))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(top_level_fields(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
       st.integers(0, 10_000), piece_sizes)
def test_keys_handed_to_a_sink_are_what_protobuf_reads(parts: list[bytes], flips: list, cut: int, piece: int) -> None:
    """Any field order, odd fields, garbage, truncation: what the sink holds at the end (after any
    restart) is protobuf's keys, and the errors are protobuf's."""
    data = bytearray(EXPORT_HEADER + b"".join(parts))
    for at, value in flips:
        data[at % len(data)] = value
    data = data[: max(cut % (len(data) + 1), 4)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exportstream, "PIECE", piece)
        assert _sunk_outcome(bytes(data)) == outcome(parse_whole_export_bin, bytes(data))


def test_a_sink_gets_a_large_file_piece_by_piece_and_restarts_when_protobuf_takes_over(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _keys(5000)
    monkeypatch.setattr(exportstream, "PIECE", 4096)
    data = build_export_bin(keys, region="VN")
    sink = _Collected()
    open_export(io.BytesIO(data), sink=sink)
    assert len(sink.parts) > 10 and max(map(len, sink.parts)) <= 4096 // 20 and sink.restarts == 0
    assert np.concatenate(sink.parts).tobytes() == keys.tobytes()
    odd = _Collected()
    open_export(io.BytesIO(data + delimited(200, b"x")), sink=odd)  # a two-byte tag at the end
    assert odd.restarts == 1 and np.concatenate(odd.parts).tobytes() == keys.tobytes()
