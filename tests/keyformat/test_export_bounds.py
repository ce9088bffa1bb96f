"""Odd or hostile export.bin files cost bounded time and memory: a file only protobuf's parse of
the whole file reads is refused above a size no server writes, and a forged signed batch whose
keys break the rules is refused as forged without parsing the rest."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import bluezone.keyformat.export as export_module
import bluezone.keyformat.exportstream as exportstream
from bluezone.errors import ExportSignatureError, KeyFileError
from bluezone.keyformat.export import (
    EXPORT_HEADER,
    MAX_WHOLE_PARSE_BYTES,
    SignatureInfo,
    build_export_bin,
    open_export,
    open_signed_export,
    read_export_bin,
    sign_export,
    write_export_zip,
)
from bluezone.keyformat.keys import empty_keys

from tests.keyformat.export_helpers import varint


def _never(*args: object) -> None:
    raise AssertionError("held or parsed whole")


@pytest.mark.parametrize("field", [7, 12])  # one key message, one unknown field: both longer than any streamed
def test_a_file_only_protobuf_reads_is_refused_above_the_whole_parse_limit(
    field: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One 250 MB key entry (a 250 KB zip) peaked at 1 GB parsed whole; now refused unread."""
    n = MAX_WHOLE_PARSE_BYTES
    data = EXPORT_HEADER + varint(field << 3 | 2) + varint(n) + bytes(n)
    monkeypatch.setattr(export_module, "_read_whole", _never)
    monkeypatch.setattr(export_module, "parse_whole_export_bin", _never)
    for source in (data, write_export_zip(data, b"")):
        with pytest.raises(KeyFileError, match=rf"export.bin \({len(data)} bytes\) is not in the form key servers "
                           rf"write, and too large to be parsed whole \(limit {MAX_WHOLE_PARSE_BYTES} bytes\)"):
            open_export(io.BytesIO(source))


def test_below_the_limit_such_a_file_is_still_parsed_whole() -> None:
    keys = empty_keys(3)
    data = build_export_bin(keys, region="VN") + b"\x48\x00" * 20_000  # many unknown fields
    assert read_export_bin(data).keys.tobytes() == keys.tobytes()


@pytest.fixture
def signer() -> tuple[ec.EllipticCurvePrivateKey, SignatureInfo]:
    return ec.generate_private_key(ec.SECP256R1()), SignatureInfo("310", "v1")


def test_a_forged_batch_of_bad_keys_is_refused_without_parsing_the_rest(
    signer: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """125M empty key entries (250 MB, a 250 KB zip) were all parsed before "does not verify":
    29 s on a quiet machine, 165 s at load 6. After the first bad key a signed batch is only hashed."""
    private, info = signer
    body = EXPORT_HEADER + b"\x3a\x00" * 200_000
    forged = write_export_zip(body, sign_export(body[:-2], private, info))
    monkeypatch.setattr(exportstream, "PIECE", 1000)
    fed = []
    feed = exportstream._Parser.feed
    monkeypatch.setattr(exportstream._Parser, "feed", lambda self, *a, **k: fed.append(1) or feed(self, *a, **k))
    with pytest.raises(ExportSignatureError, match="does not verify"):
        open_signed_export(forged, private.public_key())
    assert len(fed) <= 2, f"{len(fed)} pieces parsed after the first bad key"


@pytest.mark.parametrize(
    "body",
    [
        b"\x3a\x00" * 3000,  # every key bad
        b"\x3a\x00" * 3000 + b"\x3a\x05\x0a",  # a bad key, then truncated: protobuf's error is said
        b"\x42\x00" + b"\x3a\x00",  # a bad revised key first, a bad key later: the key's is said
    ],
)
def test_a_signed_batch_with_bad_keys_says_what_an_unsigned_read_says(
    body: bytes, signer: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, info = signer
    data = EXPORT_HEADER + body
    monkeypatch.setattr(exportstream, "PIECE", 1000)
    with pytest.raises(KeyFileError) as unsigned:
        read_export_bin(data)
    with pytest.raises(KeyFileError) as signed:
        open_signed_export(write_export_zip(data, sign_export(data, private, info)), private.public_key())
    assert not isinstance(signed.value, ExportSignatureError)
    assert str(signed.value) == str(unsigned.value)
