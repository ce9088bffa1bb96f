"""GAEN export files: Google's own files parse, the signed sample verifies, ours round-trip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.errors import KeyFileError
from bluezone.errors import ExportSignatureError
from bluezone.matching.check import check_sightings
from bluezone.keyformat.export import (
    SignatureInfo,
    apply_revisions,
    build_export_bin,
    load_public_key,
    open_signed_export,
    parse_export_bin,
    parse_export_zip,
    public_key_base64,
    read_export_bin,
    read_export_zip,
    sign_export,
    signed_export_zip,
    verify_export_sig,
    write_export_zip,
)
from bluezone.keyformat.keyfile import load_keys, parse_keys
from bluezone.keyformat.keys import NO_DAYS_SINCE_ONSET, empty_keys
from bluezone.proximity.sightings import SIGHTING_DTYPE

VECTORS = Path(__file__).parents[1] / "data" / "vectors"
GOOGLE_310_V1 = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE49JY6kekDgxj3Crm4y6kEHdfoKQFSNDM4mV9cgDb+e5nOAw0GeRoRThCu9/wX5wDT2QloFoOjl2pGZHI0f3C3w=="
)


def test_google_testdata_bin() -> None:
    export = read_export_bin((VECTORS / "gaen_export_google_testdata.bin").read_bytes())
    assert (export.region, export.batch_num, export.batch_size) == ("US", 1, 1)
    assert len(export.keys) == 200
    assert (export.keys["rolling_period"] < 144).any()
    assert (export.keys["rolling_start"] % 144 != 0).any()
    assert bytes(export.keys[0]["key"]).hex() == "00068b4d1fb011b9c9ae2744419d4ab3"
    assert export.keys[0]["rolling_start"] == 2625468 and export.keys[0]["rolling_period"] == 141
    assert (export.keys["days_since_onset"] == NO_DAYS_SINCE_ONSET).all()


def test_google_app_bin_through_load_keys() -> None:
    keys = load_keys(VECTORS / "gaen_export_google_app.bin")
    assert len(keys) == 110
    hexes = [bytes(k).hex() for k in keys["key"]]
    row = keys[hexes.index("2b714d3ec93c14e5d345003e59027aea")]
    assert (row["rolling_start"], row["rolling_period"]) == (2646801, 89)


def test_google_signed_zip_verifies() -> None:
    data = (VECTORS / "gaen_export_google_signed.zip").read_bytes()
    key = load_public_key(GOOGLE_310_V1)
    export, info = open_signed_export(data, key, key_id="310")
    assert info == SignatureInfo("310", "v1")
    assert len(export.keys) == 140
    assert export.signature_infos == (SignatureInfo("310", "v1"),)
    assert len(load_keys(VECTORS / "gaen_export_google_signed.zip")) == 140
    assert public_key_base64(key) == GOOGLE_310_V1


def test_google_signed_zip_every_flipped_byte_fails() -> None:
    export_bin, export_sig = read_export_zip((VECTORS / "gaen_export_google_signed.zip").read_bytes())
    assert export_sig is not None
    key = load_public_key(GOOGLE_310_V1)
    verify_export_sig(export_bin, export_sig, key)
    for i in range(len(export_bin)):
        tampered = bytearray(export_bin)
        tampered[i] ^= 0x01
        with pytest.raises(ExportSignatureError):
            verify_export_sig(bytes(tampered), export_sig, key)


def test_wrong_key_and_missing_sig_fail() -> None:
    data = (VECTORS / "gaen_export_google_signed.zip").read_bytes()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ExportSignatureError, match="does not verify"):
        open_signed_export(data, other)
    with pytest.raises(ExportSignatureError, match="no signature for key id"):
        open_signed_export(data, load_public_key(GOOGLE_310_V1), key_id="999")
    export_bin, _ = read_export_zip(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("export.bin", export_bin)
    with pytest.raises(ExportSignatureError, match="no export.sig"):
        open_signed_export(buf.getvalue(), load_public_key(GOOGLE_310_V1))


def test_google_end_to_end_match() -> None:
    """Google's round-trip case: one sighting of the key's first RPI matches exactly that key."""
    keys = load_keys(VECTORS / "gaen_export_google_app.bin")
    tek = bytes.fromhex("2b714d3ec93c14e5d345003e59027aea")
    value = rpi(rpi_key(tek), 2646801)
    assert value.hex() == "3d37caf51d1bf4ba54e758e0ac74c892"
    sightings = np.zeros(1, SIGHTING_DTYPE)
    sightings["time"] = 2646801 * INTERVAL_SECONDS + 60
    sightings["rpi"] = np.void(value)
    sightings["aem"] = np.void(aem(aem_key(tek), value, bytes(Metadata(tx_power=-10))))
    sightings["rssi"] = -60
    sightings["tx_power"] = -128
    exposures = check_sightings(keys, sightings)
    assert len(exposures) == 1
    assert bytes(keys[exposures[0].key_index]["key"]) == tek


def _sample_keys(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keys = empty_keys(n)
    keys["key"] = np.frombuffer(rng.bytes(16 * n), "V16")
    keys["rolling_start"] = 2_650_000 + 144 * rng.integers(0, 14, n)
    keys["rolling_period"] = rng.integers(1, 145, n)
    keys["transmission_risk"] = rng.integers(0, 9, n)
    keys["report_type"] = rng.integers(0, 6, n)
    keys["days_since_onset"] = rng.integers(-14, 15, n)
    return keys


def test_signed_zip_round_trip_and_reproducible() -> None:
    priv = ec.generate_private_key(ec.SECP256R1())
    info = SignatureInfo("bluezone", "v1")
    keys = _sample_keys(50)
    data = signed_export_zip(keys, priv, info, region="XX", batch_num=2, batch_size=3)
    export, got = open_signed_export(data, priv.public_key(), "bluezone")
    assert got == info
    assert (export.batch_num, export.batch_size, export.region) == (2, 3, "XX")
    assert export.keys.tobytes() == keys.tobytes()
    assert parse_export_zip(data).tobytes() == keys.tobytes()
    assert parse_keys(data).tobytes() == keys.tobytes()
    export_bin = build_export_bin(keys, region="XX", batch_num=2, batch_size=3, signature_infos=[info])
    assert build_export_bin(keys, region="XX", batch_num=2, batch_size=3, signature_infos=[info]) == export_bin
    assert export.start_timestamp == int(keys["rolling_start"].min()) * INTERVAL_SECONDS


def test_tampered_own_zip_rejected() -> None:
    priv = ec.generate_private_key(ec.SECP256R1())
    info = SignatureInfo("bluezone", "v1")
    export_bin = build_export_bin(_sample_keys(5), region="XX", signature_infos=[info])
    sig = sign_export(export_bin, priv, info)
    tampered = bytearray(export_bin)
    tampered[40] ^= 0x80
    with pytest.raises(ExportSignatureError):
        open_signed_export(write_export_zip(bytes(tampered), sig), priv.public_key())


@pytest.mark.parametrize(
    "data, message",
    [
        (b"EK Export v2    ", "header"),
        (b"EK Export v1    \xff\xff", "TemporaryExposureKeyExport"),
        (b"PK\x03\x04garbage", "export zip"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        if data.startswith(b"PK"):
            parse_export_zip(data)
        else:
            parse_export_bin(data)


def test_bad_key_length_rejected() -> None:
    from bluezone.keyformat import gaen_export_pb2 as pb

    message = pb.TemporaryExposureKeyExport()
    message.keys.add(key_data=b"short", rolling_start_interval_number=1)
    with pytest.raises(KeyFileError, match="16 bytes"):
        parse_export_bin(b"EK Export v1    " + message.SerializeToString())


@given(st.binary(max_size=300))
def test_random_bytes_only_keyfileerror(data: bytes) -> None:
    for blob in (data, b"EK Export v1    " + data, b"PK\x03\x04" + data):
        try:
            parse_keys(blob)
        except KeyFileError:
            pass
        try:
            verify_export_sig(blob, data, load_public_key(GOOGLE_310_V1))
        except KeyFileError:
            pass


@given(st.binary(min_size=1, max_size=40), st.integers(0, 4000))
def test_corrupted_signed_zip_only_keyfileerror(junk: bytes, where: int) -> None:
    data = bytearray((VECTORS / "gaen_export_google_signed.zip").read_bytes())
    where %= len(data)
    data[where : where + len(junk)] = junk
    try:
        open_signed_export(bytes(data), load_public_key(GOOGLE_310_V1))
    except KeyFileError:
        pass


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=16, max_size=16),
            st.integers(0, 2**31 - 145),
            st.integers(1, 144),
            st.integers(0, 8),
            st.integers(0, 5),
            st.one_of(st.none(), st.integers(-14, 14)),
        ),
        max_size=20,
    ),
    st.text(max_size=5),
)
def test_build_read_round_trip(rows: list, region: str) -> None:
    keys = empty_keys(len(rows))
    for i, (k, start, period, risk, report, dsos) in enumerate(rows):
        keys[i] = (k, start, period, risk, report, NO_DAYS_SINCE_ONSET if dsos is None else dsos)
    info = SignatureInfo("id", "v9")
    export = read_export_bin(build_export_bin(keys, region=region, batch_num=1, batch_size=1, signature_infos=[info]))
    assert export.keys.tobytes() == keys.tobytes()
    assert export.region == region and export.signature_infos == (info,)


def _keys(first_byte: int, n: int, report_type: int) -> np.ndarray:
    keys = empty_keys(n)
    keys["key"] = [bytes([first_byte + i]) * 16 for i in range(n)]
    keys["rolling_start"] = 2_940_000 + 144 * np.arange(n)
    keys["rolling_period"] = 144
    keys["report_type"] = report_type
    return keys


def test_revised_keys_round_trip_and_apply() -> None:
    """GAEN's ``revised_keys``: written, read back, and applied over the keys they revise."""
    keys, revised = _keys(1, 3, 2), _keys(2, 3, 5)  # keys 2 and 3 revoked, key 4 revoked from an earlier file
    export = read_export_bin(build_export_bin(keys, region="VN", revised_keys=revised))
    assert len(export.keys) == 3 and (export.revised_keys["report_type"] == 5).all()
    current = export.current_keys()
    assert [bytes(k)[0] for k in current["key"]] == [1, 2, 3, 4]
    assert current["report_type"].tolist() == [2, 5, 5, 5]
    assert (parse_export_bin(build_export_bin(keys, region="VN", revised_keys=revised)) == current).all()
    assert apply_revisions(keys, empty_keys(0)) is keys
    twice = np.concatenate([keys, keys[1:2]])  # a third-party file listing key 2 twice
    assert apply_revisions(twice, revised)["report_type"].tolist() == [2, 5, 5, 5, 5]


@given(st.sets(st.integers(1, 60), max_size=12), st.sets(st.integers(1, 60), max_size=12))
def test_apply_revisions_keeps_every_key_once_with_its_latest_type(plain: set[int], changed: set[int]) -> None:
    keys = empty_keys(len(plain))
    keys["key"] = [bytes([b]) * 16 for b in sorted(plain)]
    keys["report_type"] = 2
    revised = empty_keys(len(changed))
    revised["key"] = [bytes([b]) * 16 for b in sorted(changed)]
    revised["report_type"] = 1
    out = apply_revisions(keys, revised)
    assert sorted(bytes(k)[0] for k in out["key"]) == sorted(plain | changed)
    assert {bytes(k)[0] for k, t in zip(out["key"], out["report_type"]) if t == 1} == changed


def _revisions_by_dict(keys: np.ndarray, revised: np.ndarray) -> np.ndarray:
    """apply_revisions as it was written first, a dict of every key: the reference."""
    if not len(revised):
        return keys
    out = keys.copy()
    where: dict[bytes, list[int]] = {}
    for i, k in enumerate(keys["key"]):
        where.setdefault(bytes(k), []).append(i)
    extra = []
    for row in revised:
        rows = where.get(bytes(row["key"]))
        if rows is None:
            extra.append(row)
        else:
            for name in ("report_type", "days_since_onset", "transmission_risk"):
                out[name][rows] = row[name]
    return np.concatenate([out, np.array(extra, dtype=keys.dtype)]) if extra else out


# keys that often share their first eight bytes, or all sixteen
_similar_keys = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=15).map(
    lambda pairs: [bytes([a]) * 8 + bytes([b]) * 8 for a, b in pairs]
)


@given(_similar_keys, _similar_keys, st.randoms(use_true_random=False))
def test_apply_revisions_is_the_dict_it_replaced(plain: list[bytes], changed: list[bytes], rnd: object) -> None:
    keys, revised = empty_keys(len(plain)), empty_keys(len(changed))
    keys["key"] = plain or np.empty(0, "V16")
    revised["key"] = changed or np.empty(0, "V16")
    for arr in (keys, revised):
        arr["report_type"] = [rnd.randrange(6) for _ in arr]  # type: ignore[attr-defined]
        arr["transmission_risk"] = [rnd.randrange(9) for _ in arr]  # type: ignore[attr-defined]
        arr["days_since_onset"] = [rnd.randrange(-14, 15) for _ in arr]  # type: ignore[attr-defined]
    assert apply_revisions(keys, revised).tobytes() == _revisions_by_dict(keys, revised).tobytes()
