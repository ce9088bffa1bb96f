"""An export zip names export.bin and export.sig once each: a zip holding one of them twice is
refused, since readers disagree on which copy counts (Python's zipfile takes the last, others the
first), so the keys a signature was checked over could differ from the keys another tool shows."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.errors import KeyFileError
from bluezone.keyformat.export import (
    SignatureInfo,
    build_export_bin,
    open_export,
    open_signed_export,
    read_export_zip,
    sign_export,
)
from bluezone.keyformat.keyfile import load_keys
from bluezone.keyformat.keys import empty_keys
from bluezone.keyformat.venue_export import open_signed_venue_zip


def _keys(n: int, seed: int) -> np.ndarray:
    keys = empty_keys(n)
    keys["key"] = np.frombuffer(np.random.default_rng(seed).bytes(16 * n), "V16")
    keys["rolling_start"] = 2_940_000
    keys["rolling_period"] = 144
    return keys


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members:
                archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def signed() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes, bytes]:
    """A signing key, two export.bin files and the signature over the second."""
    private = ec.generate_private_key(ec.SECP256R1())
    first = build_export_bin(_keys(3, 1), region="VN")
    second = build_export_bin(_keys(3, 2), region="VN")
    return private, first, second, sign_export(second, private, SignatureInfo("310", "v1"))


def _refused_by_every_reader(data: bytes, private: ec.EllipticCurvePrivateKey, message: str, tmp_path: Path) -> None:
    """Every way a zip is read (signed keys, unsigned keys, venue warnings, a key file, a streamed
    export) refuses ``data`` with ``message``."""
    with pytest.raises(KeyFileError, match=message):
        open_signed_export(data, private.public_key())
    with pytest.raises(KeyFileError, match=message):
        read_export_zip(data)
    with pytest.raises(KeyFileError, match=message):
        open_signed_venue_zip(data, private.public_key())
    path = tmp_path / "batch.zip"
    path.write_bytes(data)
    with pytest.raises(KeyFileError, match=message):
        load_keys(path)
    with pytest.raises(KeyFileError, match=message), path.open("rb") as file:
        open_export(file)


@pytest.mark.parametrize("twice", ["export.bin", "export.sig"])
def test_a_member_named_twice_is_refused_by_every_reader(signed: tuple, twice: str, tmp_path: Path) -> None:
    private, first, second, sig = signed
    members = [("export.bin", first), ("export.sig", sig), ("export.bin", second)]
    if twice == "export.sig":
        members = [("export.bin", second), ("export.sig", b"junk"), ("export.sig", sig)]
    data = _zip(members)
    message = f"export zip holds {twice} twice"
    _refused_by_every_reader(data, private, message, tmp_path)


def test_one_of_each_still_reads(signed: tuple) -> None:
    private, _, second, sig = signed
    export, info = open_signed_export(_zip([("export.bin", second), ("export.sig", sig)]), private.public_key())
    assert info.key_id == "310" and export.keys.tobytes() == _keys(3, 2).tobytes()


def _many_entries(n: int, extra: list[tuple[str, bytes]]) -> bytes:
    """A zip of ``extra`` and then ``n`` empty stored entries (zipfile writes zip64 end records past 65,535)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in extra:
            archive.writestr(name, content)
        for i in range(n):
            archive.writestr(f"{i:x}", b"")
    return buffer.getvalue()


@pytest.mark.parametrize("n", [5_000, 70_000])
def test_a_zip_of_thousands_of_entries_is_refused_before_zipfile_lists_them(signed: tuple, n: int, tmp_path: Path) -> None:
    """zipfile makes an object of every central directory entry before anything is checked: a batch
    (downloaded, then read before its signature is known) of 256 MiB of empty entries took ~1.4 GB and
    ~45 s per read; 1M entries (86 MB) 460 MB and 14 s.  A directory over 64 KiB is refused first."""
    private, _, second, sig = signed
    data = _many_entries(n, [("export.bin", second), ("export.sig", sig)])
    message = "its directory takes"
    _refused_by_every_reader(data, private, message, tmp_path)
    # a few entries beside the two are still read (other tools add a directory entry, a README)
    export, _ = open_signed_export(_many_entries(3, [("export.bin", second), ("export.sig", sig)]), private.public_key())
    assert export.keys.tobytes() == _keys(3, 2).tobytes()
