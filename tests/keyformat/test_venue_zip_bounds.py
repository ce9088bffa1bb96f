"""A venue-warning file comes from the server's index like a key batch, so a hostile server or CDN
can serve a forged one: its export.bin must not be held before its signature is checked. A 243 KB
zip inflating to 250 MB was read whole (540 MB peak) before "does not verify"."""

from __future__ import annotations

import tracemalloc

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.errors import ExportSignatureError
from bluezone.keyformat.export import SignatureInfo, sign_export, write_export_zip
from bluezone.keyformat.venue_export import VENUE_HEADER, open_signed_venue_zip, signed_venue_zip


def test_a_forged_venue_file_is_refused_before_it_is_held() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    info = SignatureInfo("310", "v1")
    body = VENUE_HEADER + bytes(32 << 20)
    forged = write_export_zip(body, sign_export(body[:-1], private, info))
    assert len(forged) < 64 << 10
    tracemalloc.start()
    try:
        with pytest.raises(ExportSignatureError, match="does not verify"):
            open_signed_venue_zip(forged, private.public_key())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.0f} MiB held checking a forged {len(body) / 2**20:.0f} MiB file"


def test_a_signed_venue_file_still_reads() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    signed = signed_venue_zip([], private, SignatureInfo("310", "v1"), "VN", 490_000)
    assert open_signed_venue_zip(signed, private.public_key(), "310") == []
    with pytest.raises(ExportSignatureError, match="does not verify"):
        open_signed_venue_zip(signed, ec.generate_private_key(ec.SECP256R1()).public_key())


def test_a_venue_file_given_as_a_key_file_is_named_as_one(tmp_path) -> None:
    """Both sit in a key server's export directory; `check --keys` of the venue one said only that
    export.bin must start with b'EK Export v1    '."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.errors import KeyFileError
    from bluezone.keyformat.export import parse_whole_export_bin
    from bluezone.proximity.store import SightingStore

    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "1796475014-venues-a9f82d-0001.zip"
    path.write_bytes(signed_venue_zip([], private, SignatureInfo("310", "v1"), "VN", 490_000))
    SightingStore.open(tmp_path / "node.db").close()
    result = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(tmp_path / "node.db")], obj={})
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {path}: a venue-warning file (BZ Venues v1), not diagnosis keys: `bluezone check --server URL` reads those"
    ]
    with pytest.raises(KeyFileError, match="a venue-warning file"):  # the whole-file parser says the same
        parse_whole_export_bin(VENUE_HEADER + b"\x00")
