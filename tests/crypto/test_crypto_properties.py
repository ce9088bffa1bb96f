"""Invariants of the GAEN crypto and payload parsers, checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluezone.crypto import DailyKey, Metadata, ServiceData, aem, aem_key, decrypt_aem, rpi, rpi_key, rpis_for_keys
from bluezone.errors import InputError, PayloadError

keys16 = st.binary(min_size=16, max_size=16)
intervals = st.integers(min_value=0, max_value=2**32 - 145)


@given(keys16, intervals)
def test_rpis_differ_across_intervals(tek: bytes, start: int) -> None:
    rpis = rpis_for_keys(np.frombuffer(tek, np.uint8).reshape(1, 16), np.array([start]))[0]
    assert len({r.tobytes() for r in rpis}) == 144


@given(st.lists(keys16, min_size=2, max_size=5, unique=True), intervals)
def test_rpis_differ_across_keys(teks: list[bytes], start: int) -> None:
    arr = np.frombuffer(b"".join(teks), np.uint8).reshape(-1, 16)
    got = rpis_for_keys(arr, np.full(len(teks), start), 8)
    assert len({r.tobytes() for r in got.reshape(-1, 16)}) == 8 * len(teks)


@given(keys16, st.binary(min_size=16, max_size=16), st.binary(min_size=4, max_size=4))
def test_aem_decrypts_back(tek: bytes, rpi_value: bytes, metadata: bytes) -> None:
    sealed = aem(aem_key(tek), rpi_value, metadata)
    assert len(sealed) == 4
    assert decrypt_aem(tek, rpi_value, sealed) == metadata


@given(st.lists(st.tuples(keys16, intervals), min_size=1, max_size=6), st.integers(1, 144))
def test_batched_equals_single(pairs: list[tuple[bytes, int]], count: int) -> None:
    teks = np.frombuffer(b"".join(t for t, _ in pairs), np.uint8).reshape(-1, 16)
    starts = np.array([s for _, s in pairs])
    got = rpis_for_keys(teks, starts, count)
    for k, (tek, start) in enumerate(pairs):
        rpik = rpi_key(tek)
        for i in sorted({0, count // 2, count - 1}):
            assert got[k, i].tobytes() == rpi(rpik, start + i)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=4, max_size=4))
def test_service_data_round_trip(rpi_value: bytes, aem_value: bytes) -> None:
    data = ServiceData(rpi_value, aem_value)
    assert ServiceData.from_bytes(bytes(data)) == data
    assert bytes(ServiceData.from_bytes(rpi_value + aem_value)) == rpi_value + aem_value


@given(st.binary(max_size=40).filter(lambda b: len(b) != 20))
def test_service_data_bad_length(data: bytes) -> None:
    with pytest.raises(PayloadError):
        ServiceData.from_bytes(data)


@given(st.integers(-128, 127), st.integers(0, 255))
def test_metadata_round_trip(tx_power: int, version: int) -> None:
    meta = Metadata(tx_power=tx_power, version=version)
    assert Metadata.from_bytes(bytes(meta)) == meta
    assert meta.plausible == (version >> 6 == 1 and -50 <= tx_power <= 20)


@given(st.binary(max_size=10).filter(lambda b: len(b) != 4))
def test_metadata_bad_length(data: bytes) -> None:
    with pytest.raises(PayloadError):
        Metadata.from_bytes(data)


@given(st.integers().filter(lambda t: not -128 <= t <= 127))
def test_metadata_tx_power_must_fit_a_byte(tx_power: int) -> None:
    with pytest.raises(PayloadError):
        bytes(Metadata(tx_power=tx_power))


def test_signed_tx_power_byte() -> None:
    assert Metadata.from_bytes(bytes.fromhex("40f20000")).tx_power == -14


@given(st.binary(max_size=40).filter(lambda b: len(b) != 16))
def test_daily_key_length(key: bytes) -> None:
    with pytest.raises(InputError):
        DailyKey(key, 0)


@given(keys16, st.integers().filter(lambda p: not 1 <= p <= 144))
def test_daily_key_period(key: bytes, period: int) -> None:
    with pytest.raises(InputError):
        DailyKey(key, 144, period)


@given(keys16, st.integers(max_value=-1))
def test_daily_key_negative_start(key: bytes, start: int) -> None:
    with pytest.raises(InputError):
        DailyKey(key, start)


@given(st.floats(min_value=0, max_value=4e9))
def test_generated_keys_start_at_utc_midnight(t: float) -> None:
    key = DailyKey.generate(t)
    assert key.rolling_start % 144 == 0 and key.covers(int(t // 600))
    assert len(key.key) == 16 and key.rolling_period == 144
