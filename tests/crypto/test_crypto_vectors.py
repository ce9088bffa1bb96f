"""Google's published GAEN v1.2 test vectors, reproduced byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bluezone.crypto import (
    DailyKey,
    Metadata,
    aem,
    aem_key,
    decrypt_aem,
    interval_number,
    rolling_start,
    rpi,
    rpi_key,
    rpis_for_key,
    rpis_for_keys,
)
DATA = Path(__file__).parents[1] / "data"

V = json.loads((DATA / "vectors" / "gaen_crypto.json").read_text())
TEK = bytes.fromhex(V["tek"])
START = V["interval_number"]


def test_interval_number_and_rolling_start() -> None:
    assert interval_number(V["key_generation_unix_seconds"]) == START
    assert rolling_start(V["key_generation_unix_seconds"]) == START  # generated at UTC midnight
    assert V["rolling_period"] == 144


def test_derived_keys() -> None:
    assert rpi_key(TEK).hex() == V["rpik"]
    assert aem_key(TEK).hex() == V["aemk"]


@pytest.mark.parametrize("i", range(144))
def test_each_rpi_and_aem(i: int) -> None:
    value = rpi(rpi_key(TEK), START + i)
    assert value.hex() == V["rpis"][i]
    assert aem(aem_key(TEK), value, bytes.fromhex(V["metadata"])).hex() == V["aems"][i]


def test_metadata_vector_is_v1_plus_8_dbm() -> None:
    meta = Metadata.from_bytes(bytes.fromhex(V["metadata"]))
    assert (meta.major_version, meta.tx_power, meta.plausible) == (1, 8, True)
    assert bytes(meta).hex() == V["metadata"]


def test_all_aems_decrypt_to_the_metadata() -> None:
    for i in range(144):
        plain = decrypt_aem(TEK, bytes.fromhex(V["rpis"][i]), bytes.fromhex(V["aems"][i]))
        assert plain.hex() == V["metadata"]


def test_batched_single_key(derivation: str) -> None:
    got = rpis_for_key(TEK, START)
    assert got.shape == (144, 16) and got.dtype == np.uint8
    assert [r.tobytes().hex() for r in got] == V["rpis"]


def test_batched_among_other_keys_and_starts(derivation: str) -> None:
    """The vector key in the middle of a batch with other keys and starts, over a chunk edge."""
    rng = np.random.default_rng(7)
    n = 2100  # more than one internal chunk of 2048
    teks = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    starts = rng.integers(START - 1000, START + 1000, n)
    for where in (0, 1500, 2049, n - 1):
        teks[where] = np.frombuffer(TEK, np.uint8)
        starts[where] = START
    got = rpis_for_keys(teks, starts)
    assert got.shape == (n, 144, 16)
    for where in (0, 1500, 2049, n - 1):
        assert [r.tobytes().hex() for r in got[where]] == V["rpis"]


def test_batched_with_reused_buffer(derivation: str) -> None:
    buf = np.empty(3 * 144 * 16 + 15, np.uint8)
    teks = np.tile(np.frombuffer(TEK, np.uint8), (3, 1))
    got = rpis_for_keys(teks, np.array([START, START + 1, START]), out=buf)
    assert got[0, 0].tobytes().hex() == V["rpis"][0]
    assert got[1, 0].tobytes().hex() == V["rpis"][1]
    assert got[2, 143].tobytes().hex() == V["rpis"][143]
    assert np.shares_memory(got, buf)


def test_batched_rejects_bad_buffer_and_lengths(derivation: str) -> None:
    teks = np.zeros((2, 16), np.uint8)
    with pytest.raises(ValueError):
        rpis_for_keys(teks, np.array([1]))
    with pytest.raises(ValueError):
        rpis_for_keys(teks, np.array([1, 2]), out=np.empty(100, np.uint8))


def test_partial_count_is_a_prefix(derivation: str) -> None:
    got = rpis_for_keys(np.frombuffer(TEK, np.uint8).reshape(1, 16), np.array([START + 10]), 5)
    assert [r.tobytes().hex() for r in got[0]] == V["rpis"][10:15]


def test_daily_key_of_the_vector() -> None:
    key = DailyKey(TEK, START)
    assert key.end == START + 144 and key.covers(START + 143) and not key.covers(START + 144)
    assert TEK.hex() not in repr(key)
