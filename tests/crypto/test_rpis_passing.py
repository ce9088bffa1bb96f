"""``rpis_passing``: RPIs pre-filtered as they are derived, by the compiled helper or numpy, alike.

The helper's tests need it (skipped without it, failed under CI=true); the selection tests stand
in a fake helper and always run, so the fallback to numpy's filter is always tested.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crypto.conftest import fake_helper, python_rpis_into, require_native

from bluezone.crypto import derivation as rpi_module

Sieve = rpi_module.Sieve


def _python(teks: np.ndarray, starts: np.ndarray, count: int) -> np.ndarray:
    return rpi_module._python_rpis(teks, starts, count, np.empty(len(teks) * count * 16 + 15, np.uint8)).reshape(-1, 16)


def _sieve_of(rpis: np.ndarray, every: int, bits1: int, bits2: int, seed: int) -> Sieve:
    """A sieve that passes every ``every``-th of ``rpis`` (and what collides with them) plus random bits."""
    rng = np.random.default_rng(seed)
    words = rpis.view("<u4")
    tables = []
    for column, bits in ((words[::every, 0], bits1), (words[::every, 1], bits2)):
        table = np.zeros(max(1, (1 << bits) >> 3), np.uint8)
        values = column & np.uint32((1 << bits) - 1)
        np.bitwise_or.at(table, values >> 3, np.left_shift(np.uint8(1), (values & 7).astype(np.uint8)))
        table |= rng.integers(0, 256, len(table), dtype=np.uint8) & rng.integers(0, 256, len(table), dtype=np.uint8) & 0x11
        tables.append(table)
    return Sieve(tables[0], bits1, tables[1], bits2)


def _numpy(teks: np.ndarray, starts: np.ndarray, count: int, sieve: Sieve) -> tuple[np.ndarray, np.ndarray]:
    rpis = _python(teks, starts, count)
    positions = sieve.passing(rpis)
    return positions, rpis[positions]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.integers(-(2**40), 2**40)), min_size=1, max_size=20),
    st.integers(1, 300),
    st.integers(3, 24),
    st.integers(3, 26),
    st.integers(1, 7),
    st.integers(0, 2**31),
)
def test_the_helpers_prefilter_equals_numpys(
    keys: list[tuple[bytes, int]], count: int, bits1: int, bits2: int, every: int, seed: int
) -> None:
    require_native()
    import bluezone_native

    teks = np.frombuffer(b"".join(t for t, _ in keys), np.uint8).reshape(-1, 16)
    starts = np.array([s for _, s in keys], np.int64)
    sieve = _sieve_of(_python(teks, starts, count), every, bits1, bits2, seed)
    positions, rpis = bluezone_native.rpis_passing(teks, (starts & 0xFFFFFFFF).astype(np.uint32), count, *sieve)
    expected_positions, expected_rpis = _numpy(teks, starts, count, sieve)
    assert len(expected_positions) >= len(teks) * count // every
    assert np.array_equal(positions, expected_positions) and np.array_equal(rpis, expected_rpis)


def test_the_helpers_prefilter_on_the_matchers_shape() -> None:
    """A batch of 2,000 keys of 144 RPIs against 24- and 26-bit tables, and wider and narrower ones."""
    require_native()
    import bluezone_native

    rng = np.random.default_rng(5)
    teks, starts = rng.integers(0, 256, (2000, 16), dtype=np.uint8), rng.integers(0, 14, 2000) * 144 + 2_940_000
    for bits1, bits2, every in ((24, 26, 997), (28, 3, 5), (3, 28, 5)):
        sieve = _sieve_of(_python(teks, starts, 144), every, bits1, bits2, 1)
        positions, rpis = bluezone_native.rpis_passing(teks, starts.astype(np.uint32), 144, *sieve)
        expected = _numpy(teks, starts, 144, sieve)
        assert len(positions) > 0 and np.array_equal(positions, expected[0]) and np.array_equal(rpis, expected[1])


def test_the_helpers_prefilter_refuses_wrong_arguments() -> None:
    require_native()
    import bluezone_native

    teks, starts = np.zeros((2, 16), np.uint8), np.zeros(2, np.uint32)
    table = np.zeros(1 << 13, np.uint8)  # 16 bits
    with pytest.raises(ValueError, match="at least 8192 bytes"):
        bluezone_native.rpis_passing(teks, starts, 144, table[:-1], 16, table, 16)
    with pytest.raises(ValueError, match="at least 16384 bytes"):
        bluezone_native.rpis_passing(teks, starts, 144, table, 16, table, 17)
    with pytest.raises(ValueError, match="bits"):
        bluezone_native.rpis_passing(teks, starts, 144, table, 32, table, 16)
    with pytest.raises(ValueError, match="count"):
        bluezone_native.rpis_passing(teks, starts, bluezone_native.PASSING_MAX_COUNT + 1, table, 16, table, 16)
    with pytest.raises(ValueError, match="starts"):
        bluezone_native.rpis_passing(teks, starts.astype(np.int64), 144, table, 16, table, 16)
    positions, rpis = bluezone_native.rpis_passing(teks[:0], starts[:0], 144, table, 16, table, 16)
    assert positions.shape == (0,) and rpis.shape == (0, 16)


@pytest.mark.parametrize("derivation", ["python", "native"])
def test_rpis_passing_is_the_same_either_way(derivation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if derivation == "python":
        monkeypatch.setattr(rpi_module, "_native_rpis", lambda: None)
    else:
        require_native()
        assert rpi_module._native_passing() is not None
    rng = np.random.default_rng(8)
    teks, starts = rng.integers(0, 256, (300, 16), dtype=np.uint8), rng.integers(0, 2**33, 300)
    sieve = _sieve_of(_python(teks, starts, 144), 50, 24, 20, 2)
    positions, rpis = rpi_module.rpis_passing(teks, starts, 144, sieve, out=np.empty(300 * 144 * 16 + 15, np.uint8))
    expected = _numpy(teks, starts, 144, sieve)
    assert np.array_equal(positions, expected[0]) and np.array_equal(rpis, expected[1])


@pytest.mark.parametrize("derivation", ["python", "native"])
@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(0, 2**32 - 1), max_size=300), bits=st.integers(3, 20), stride=st.integers(1, 4))
def test_bit_set_holds_exactly_the_masked_values(derivation: str, values: list[int], bits: int, stride: int) -> None:
    """Both ways, for values above 2**bits (masked) read with a stride (a column of RPI words)."""
    with pytest.MonkeyPatch.context() as patch:
        if derivation == "python":
            patch.setattr(rpi_module, "_native_set_bits", lambda: None)
        else:
            require_native()
            assert rpi_module._native_set_bits() is not None
        column = np.zeros((len(values), stride), np.uint32)
        column[:, 0] = values
        table = rpi_module.bit_set(column[:, 0], bits)
    assert table.shape == (1 << (bits - 3),)
    held = np.flatnonzero(np.unpackbits(table, bitorder="little"))
    assert held.tolist() == sorted({v & ((1 << bits) - 1) for v in values})


def test_the_helpers_set_bits_refuses_wrong_arguments() -> None:
    require_native()
    import bluezone_native

    values, table = np.arange(10, dtype=np.uint32), np.zeros(1 << 13, np.uint8)
    with pytest.raises(ValueError, match="uint32"):
        bluezone_native.set_bits(values.astype(np.int64), 16, table)
    with pytest.raises(ValueError, match="uint32"):
        bluezone_native.set_bits(values[::-1], 16, table)
    with pytest.raises(ValueError, match="at least 16384 bytes"):
        bluezone_native.set_bits(values, 17, table)
    with pytest.raises(ValueError, match="bits"):
        bluezone_native.set_bits(values, 32, table)
    read_only = table.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        bluezone_native.set_bits(values, 16, read_only)
    assert not table.any()


# --- selection: with a fake helper, always run ------------------------------------------------


def _fake_helper(passing: Callable[..., tuple[np.ndarray, np.ndarray]] | None) -> types.ModuleType:
    """A stand-in helper that derives correctly, with ``passing`` as its pre-filter (None: none)."""
    return fake_helper(python_rpis_into, **({} if passing is None else {"rpis_passing": passing}))


def _check_with(helper: types.ModuleType, reselect: pytest.MonkeyPatch) -> object:
    """Which pre-filter rpis_passing chose with ``helper`` installed; its results must be numpy's."""
    reselect.setitem(sys.modules, "bluezone_native", helper)
    rng = np.random.default_rng(3)
    teks, starts = rng.integers(0, 256, (40, 16), dtype=np.uint8), rng.integers(0, 2**32, 40)
    sieve = _sieve_of(_python(teks, starts, 144), 9, 16, 16, 4)
    got = rpi_module.rpis_passing(teks, starts, 144, sieve)
    expected = _numpy(teks, starts, 144, sieve)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    return rpi_module._native_passing()


def _correct_passing(calls: list[int]):
    def passing(teks, starts, count, table1, bits1, table2, bits2):
        calls.append(len(teks))
        return _numpy(teks, starts.astype(np.int64), count, Sieve(table1, bits1, table2, bits2))

    return passing


def test_a_helper_without_a_prefilter_derives_and_numpy_filters(reselect: pytest.MonkeyPatch) -> None:
    """bluezone-native 0.1 has no rpis_passing: its RPIs are still used, filtered by numpy."""
    assert _check_with(_fake_helper(None), reselect) is None
    assert rpi_module.derivation_path() == "native (bluezone-native 0.0-test, OpenSSL 3.0.0 (test))"


def test_a_correct_prefilter_is_used(reselect: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    chosen = _check_with(_fake_helper(_correct_passing(calls)), reselect)
    assert chosen is not None and calls == [3, 40]  # the probe, then the call


def test_a_prefilter_that_drops_an_rpi_is_not_used(reselect: pytest.MonkeyPatch) -> None:
    def dropping(*args):
        positions, rpis = _correct_passing([])(*args)
        return positions[1:], rpis[1:]

    assert _check_with(_fake_helper(dropping), reselect) is None


def test_a_prefilter_that_fails_is_not_used(reselect: pytest.MonkeyPatch) -> None:
    def failing(*args):
        raise OSError("bluezone_native: OpenSSL failed while deriving RPIs")

    assert _check_with(_fake_helper(failing), reselect) is None


def test_turned_off_the_prefilter_is_numpys_too(reselect: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    reselect.setenv("BLUEZONE_NATIVE", "0")
    assert _check_with(_fake_helper(_correct_passing(calls)), reselect) is None and calls == []


def test_bit_sets_from_a_helper_without_them_or_a_wrong_one_are_numpys(reselect: pytest.MonkeyPatch) -> None:
    values = (np.arange(5000, dtype=np.uint64) * 2654435761 % 2**32).astype(np.uint32)
    expected = rpi_module._sorted_bit_set(values & np.uint32(0xFFFF), 16)
    reselect.setitem(sys.modules, "bluezone_native", _fake_helper(None))
    assert rpi_module._native_set_bits() is None and np.array_equal(rpi_module.bit_set(values, 16), expected)

    def wrong(values: np.ndarray, bits: int, table: np.ndarray) -> None:
        table[:] = rpi_module._sorted_bit_set(values & np.uint32((1 << bits) - 1), bits)
        table[0] ^= 1

    calls: list[int] = []

    def right(values: np.ndarray, bits: int, table: np.ndarray) -> None:
        calls.append(len(values))
        table[:] = rpi_module._sorted_bit_set(values & np.uint32((1 << bits) - 1), bits)

    for set_bits, used in ((wrong, False), (right, True)):
        helper = _fake_helper(None)
        helper.set_bits = set_bits  # type: ignore[attr-defined]
        rpi_module._select_native.cache_clear()
        reselect.setitem(sys.modules, "bluezone_native", helper)
        assert (rpi_module._native_set_bits() is not None) == used
        assert np.array_equal(rpi_module.bit_set(values, 16), expected)
    assert calls == [429, 5000]  # the probe, then the call
