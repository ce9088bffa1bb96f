"""The batched RPI path's shortcuts give the same bytes as the plain, public-API path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.crypto.derivation import (
    Sieve,
    _ecb_opener,
    _public_ecb_opener,
    _python_rpis,
    aem_keys,
    decrypt_aem,
    decrypt_aems,
    padded_data,
    rpi,
    rpi_keys,
    rpis_for_key,
    rpis_for_keys,
    rpis_passing,
)
from bluezone.crypto.keys import aem_key, rpi_key
from bluezone.crypto.payload import Metadata, metadata_fields

teks_strategy = st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=40)


@given(teks_strategy)
def test_rpi_keys_equal_hkdf(teks: list[bytes]) -> None:
    arr = np.frombuffer(b"".join(teks), np.uint8).reshape(-1, 16)
    assert rpi_keys(arr) == [rpi_key(t) for t in teks]
    assert aem_keys(arr) == [aem_key(t) for t in teks]


@given(st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1))
def test_fast_ecb_context_equals_public_cipher(key: bytes, interval: int) -> None:
    block = padded_data(interval)
    assert _ecb_opener()(key).update(block) == _public_ecb_opener()(key).update(block)


@settings(max_examples=25)
@given(teks_strategy, st.integers(0, 2**32 - 1), st.integers(1, 144))
def test_batched_rpis_equal_one_at_a_time(teks: list[bytes], start: int, count: int) -> None:
    arr = np.frombuffer(b"".join(teks), np.uint8).reshape(-1, 16)
    starts = np.full(len(teks), start)
    got = rpis_for_keys(arr, starts, count)  # the compiled helper if installed
    assert np.array_equal(got, _python_rpis(arr, starts, count, np.empty(len(teks) * count * 16 + 15, np.uint8)))
    for k, tek in enumerate(teks):
        rpik = rpi_key(tek)
        for i in (0, count - 1):
            assert got[k, i].tobytes() == rpi(rpik, (start + i) & 0xFFFFFFFF)


def test_public_fallback_gives_the_same_rpis(monkeypatch, derivation: str) -> None:
    rng = np.random.default_rng(3)
    teks = np.frombuffer(rng.bytes(16 * 50), np.uint8).reshape(50, 16)
    starts = rng.integers(0, 14, 50) * 144 + 2_940_000
    fast = rpis_for_keys(teks, starts).copy()
    from bluezone.crypto import derivation as rpi_module
    monkeypatch.setattr(rpi_module, "_ecb_opener", _public_ecb_opener)
    monkeypatch.setattr(rpi_module, "_native_rpis", lambda: None)
    assert np.array_equal(rpis_for_keys(teks, starts), fast)


@settings(max_examples=30)
@given(
    st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 4), st.binary(min_size=16, max_size=16), st.binary(min_size=4, max_size=4)), max_size=30),
)
def test_bulk_aem_decryption_equals_one_at_a_time(teks: list[bytes], adverts: list[tuple[int, bytes, bytes]]) -> None:
    adverts = [(k % len(teks), r, a) for k, r, a in adverts]
    adverts += adverts[:3]  # repeated (key, RPI) pairs, as when one RPI is heard many times
    # pairs told apart by one part only: the same RPI under another key, and an RPI sharing its
    # first or its last eight bytes with another one of the same key
    adverts += [((k + 1) % len(teks), r, a) for k, r, a in adverts[:2]]
    adverts += [(k, r[:8] + bytes(8), a) for k, r, a in adverts[:2]] + [(k, bytes(8) + r[8:], a) for k, r, a in adverts[:2]]
    arr = np.frombuffer(b"".join(teks), np.uint8).reshape(-1, 16)
    rows = np.array([k for k, _, _ in adverts], np.int64)
    rpis = np.frombuffer(b"".join(r for _, r, _ in adverts), np.uint8).reshape(-1, 16)
    aems = np.frombuffer(b"".join(a for _, _, a in adverts), np.uint8).reshape(-1, 4)
    got = decrypt_aems(arr, rows, rpis, aems)
    assert got.shape == (len(adverts), 4)
    for i, (k, r, a) in enumerate(adverts):
        assert got[i].tobytes() == decrypt_aem(teks[k], r, a)
    tx, ok = metadata_fields(got)
    for i in range(len(adverts)):
        meta = Metadata.from_bytes(got[i].tobytes())
        assert (int(tx[i]), bool(ok[i])) == (meta.tx_power, meta.plausible)


def test_zero_intervals_give_empty_arrays_and_a_negative_count_a_value_error(derivation: str) -> None:
    """A library caller's count 0 is an empty result on every path (it was a bare range() error);
    a negative count is a ValueError that names the count, not numpy's "negative dimensions"."""
    teks = np.frombuffer(bytes(range(32)), np.uint8).reshape(2, 16)
    starts = np.array([2_940_000, 2_940_144])
    assert rpis_for_keys(teks, starts, 0).shape == (2, 0, 16)
    assert rpis_for_keys(teks, starts, np.int64(0), out=np.empty(15, np.uint8)).shape == (2, 0, 16)
    assert rpis_for_keys(teks[:0], starts[:0], 144).shape == (0, 144, 16)
    assert rpis_for_key(bytes(16), 2_940_000, 0).shape == (0, 16)
    sieve = Sieve(np.full(8, 255, np.uint8), 6, np.full(8, 255, np.uint8), 6)  # passes everything
    positions, rpis = rpis_passing(teks, starts, 0, sieve)
    assert positions.shape == (0,) and rpis.shape == (0, 16)
    for call in (
        lambda: rpis_for_keys(teks, starts, -1),
        lambda: rpis_for_key(bytes(16), 2_940_000, -144),
        lambda: rpis_passing(teks, starts, -1, sieve),
    ):
        with pytest.raises(ValueError, match=r"0 or more, not -1"):
            call()
