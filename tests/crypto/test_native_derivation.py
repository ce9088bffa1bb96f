"""The compiled helper (bluezone-native) gives the Python path's RPIs, and is optional.

The first tests need the helper (skipped without it, failed under CI=true); the selection
tests stand in a fake or missing helper and always run, so the fallback is always tested.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.crypto.conftest import fake_helper, python_rpis_into, require_native

from bluezone.crypto import derivation as rpi_module

V = json.loads((Path(__file__).parents[1] / "data" / "vectors" / "gaen_crypto.json").read_text())


def _python(teks: np.ndarray, starts: np.ndarray, count: int) -> np.ndarray:
    return rpi_module._python_rpis(teks, starts, count, np.empty(len(teks) * count * 16 + 15, np.uint8))


def _native(teks: np.ndarray, starts: np.ndarray, count: int) -> np.ndarray:
    import bluezone_native

    out = np.empty(len(teks) * count * 16, np.uint8)
    bluezone_native.rpis_into(teks, (starts & 0xFFFFFFFF).astype(np.uint32), count, out)
    return out.reshape(len(teks), count, 16)


def test_the_helper_is_chosen_when_installed() -> None:
    require_native()
    assert rpi_module.derivation_path().startswith("native (bluezone-native ")
    assert "OpenSSL 3." in rpi_module.derivation_path()


def test_the_helper_reproduces_the_published_vector() -> None:
    require_native()
    got = _native(np.frombuffer(bytes.fromhex(V["tek"]), np.uint8).reshape(1, 16), np.array([V["interval_number"]]), 144)
    assert [r.tobytes().hex() for r in got[0]] == V["rpis"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.integers(-(2**40), 2**40)), min_size=1, max_size=30),
    st.integers(1, 200),
)
def test_the_helper_equals_the_python_path(keys: list[tuple[bytes, int]], count: int) -> None:
    """Random keys and starts (also negative and past 2**32: intervals wrap modulo 2**32)."""
    require_native()
    teks = np.frombuffer(b"".join(t for t, _ in keys), np.uint8).reshape(-1, 16)
    starts = np.array([s for _, s in keys], np.int64)
    assert np.array_equal(_native(teks, starts, count), _python(teks, starts, count))


def test_the_helper_derives_a_large_batch_like_python() -> None:
    require_native()
    rng = np.random.default_rng(17)
    teks = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    starts = rng.integers(0, 14, 5000) * 144 + 2_940_000
    assert np.array_equal(_native(teks, starts, 144), _python(teks, starts, 144))


def test_the_helper_refuses_wrong_buffers() -> None:
    require_native()
    import bluezone_native

    teks, starts = np.zeros((2, 16), np.uint8), np.zeros(2, np.uint32)
    with pytest.raises(ValueError, match="at least 4608 bytes"):
        bluezone_native.rpis_into(teks, starts, 144, np.empty(4607, np.uint8))
    read_only = np.zeros(4608, np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        bluezone_native.rpis_into(teks, starts, 144, read_only)
    with pytest.raises(ValueError, match="starts"):
        bluezone_native.rpis_into(teks, starts.astype(np.int64), 144, np.empty(4608, np.uint8))
    with pytest.raises(ValueError, match="teks"):
        bluezone_native.rpis_into(teks[:, :8].copy(), starts, 144, np.empty(4608, np.uint8))
    with pytest.raises(ValueError, match="count"):
        bluezone_native.rpis_into(teks, starts, 0, np.empty(4608, np.uint8))


def test_a_numpy_count_cannot_shrink_the_buffer_the_helper_writes() -> None:
    """A count given as a numpy integer is sized as a Python int: as uint8, 2 * 144 * 16 wrapped
    to 0, passed the size check, and the helper wrote 4,608 bytes into the 16 it was given."""
    require_native()
    import bluezone_native

    teks, starts = np.zeros((2, 16), np.uint8), np.zeros(2, np.uint32)
    arena = np.zeros(8192, np.uint8)  # the buffer is its first 16 bytes: an overrun stays in it
    with pytest.raises(ValueError, match="at least 4608 bytes"):
        bluezone_native.rpis_into(teks, starts, np.uint8(144), arena[:16])
    assert not arena.any()


@pytest.mark.parametrize("count", [np.uint8(144), np.uint16(144), np.int32(144), np.int64(144)])
def test_rpis_for_keys_takes_a_numpy_count_as_an_int(derivation: str, count: np.integer) -> None:
    """As a key's rolling_period comes (i4): in uint16, 29 keys * 144 * 16 bytes wrapped too."""
    rng = np.random.default_rng(29)
    teks, starts = rng.integers(0, 256, (29, 16), dtype=np.uint8), rng.integers(0, 2**33, 29)
    expected = _python(teks, starts, 144)
    assert np.array_equal(rpi_module.rpis_for_keys(teks, starts, count), expected)
    out = np.empty(29 * 144 * 16 + 15, np.uint8)
    assert np.array_equal(rpi_module.rpis_for_keys(teks, starts, count, out=out), expected)
    with pytest.raises(TypeError):
        rpi_module.rpis_for_keys(teks, starts, 144.0)  # type: ignore[arg-type]


# --- selection and fallback: always run, with a fake or missing helper ---------------------


def _vector_rpis_by_rpis_for_keys() -> list[str]:
    tek = np.frombuffer(bytes.fromhex(V["tek"]), np.uint8).reshape(1, 16)
    return [r.tobytes().hex() for r in rpi_module.rpis_for_keys(tek, np.array([V["interval_number"]]))[0]]


def test_turned_off_by_the_environment(reselect: pytest.MonkeyPatch) -> None:
    reselect.setenv("BLUEZONE_NATIVE", "0")
    assert rpi_module.derivation_path() == "python (compiled helper turned off by BLUEZONE_NATIVE=0)"
    assert rpi_module._native_rpis() is None
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


def test_not_installed_falls_back_to_python(reselect: pytest.MonkeyPatch) -> None:
    reselect.setitem(sys.modules, "bluezone_native", None)  # import raises ImportError
    assert rpi_module.derivation_path() == "python (compiled helper bluezone-native not installed)"
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


def test_without_openssl_3_falls_back_to_python(reselect: pytest.MonkeyPatch) -> None:
    def no_openssl() -> str:
        raise OSError("bluezone_native: libcrypto.so.3 (OpenSSL 3) not found")

    fake = fake_helper(lambda *a: None)
    fake.openssl_version = no_openssl  # type: ignore[attr-defined]
    reselect.setitem(sys.modules, "bluezone_native", fake)
    assert rpi_module.derivation_path() == (
        "python (compiled helper unusable: bluezone_native: libcrypto.so.3 (OpenSSL 3) not found)"
    )
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


def test_a_helper_of_another_version_falls_back_to_python(reselect: pytest.MonkeyPatch) -> None:
    """bluezone-native is installed apart from bluezone: one with another API (or a broken build
    lacking a function) must leave the Python path in use, not fail every derivation."""

    def newer(teks, starts, count, out, *, jobs) -> None:  # another signature: TypeError
        raise AssertionError("not called with the old arguments")

    reselect.setitem(sys.modules, "bluezone_native", fake_helper(newer))
    assert rpi_module.derivation_path().startswith("python (compiled helper unusable: ")
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]
    rpi_module._select_native.cache_clear()
    lacking = fake_helper(lambda *a: None)
    del lacking.openssl_version  # type: ignore[attr-defined]
    reselect.setitem(sys.modules, "bluezone_native", lacking)
    assert "has no attribute 'openssl_version'" in rpi_module.derivation_path()
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


def test_a_helper_giving_other_rpis_is_not_used(reselect: pytest.MonkeyPatch) -> None:
    def wrong(teks, starts, count, out) -> None:  # right shape, wrong bytes (one flipped bit)
        python_rpis_into(teks, starts, count, out)
        out[len(teks) * count * 16 - 1] ^= 1

    reselect.setitem(sys.modules, "bluezone_native", fake_helper(wrong))
    assert rpi_module._native_rpis() is None
    assert "different RPIs" in rpi_module.derivation_path()
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


def test_a_correct_helper_is_used_and_the_choice_logged_without_keys(
    reselect: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def correct(teks, starts, count, out) -> None:
        calls.append(len(teks))
        python_rpis_into(teks, starts, count, out)

    reselect.setitem(sys.modules, "bluezone_native", fake_helper(correct))
    with caplog.at_level(logging.DEBUG, logger="bluezone.crypto.derivation"):
        path = rpi_module.derivation_path()
    assert path == "native (bluezone-native 0.0-test, OpenSSL 3.0.0 (test))"
    assert [r.message for r in caplog.records] == [f"batched RPI derivation: {path}"]
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]
    assert calls == [3, 1]  # the probe, then the call above


def test_more_intervals_than_the_helper_takes_are_derived_in_python(reselect: pytest.MonkeyPatch) -> None:
    """The helper takes at most 2**24 intervals a key; beyond, rpis_for_keys derives in Python as
    it would without the helper (it raised ValueError)."""
    calls = []

    def correct(teks, starts, count, out) -> None:
        if not 1 <= count <= 1 << 24:
            raise ValueError("count must be between 1 and 2**24")  # as bluezone_native.rpis_into
        calls.append(count)
        python_rpis_into(teks, starts, count, out)

    reselect.setitem(sys.modules, "bluezone_native", fake_helper(correct))
    none = np.empty((0, 16), np.uint8), np.empty(0, np.int64)
    assert rpi_module.rpis_for_keys(*none, (1 << 24) + 1).shape == (0, (1 << 24) + 1, 16)
    assert rpi_module.rpis_for_keys(*none, 1 << 24).shape == (0, 1 << 24, 16)
    assert calls == [144, 1 << 24]  # the probe, then the largest count the helper takes


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_turned_off_by_any_false_word(reselect: pytest.MonkeyPatch, value: str) -> None:
    reselect.setitem(sys.modules, "bluezone_native", fake_helper(lambda *a: None))
    reselect.setenv("BLUEZONE_NATIVE", value)
    assert rpi_module.derivation_path() == f"python (compiled helper turned off by BLUEZONE_NATIVE={value.strip()})"
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


@pytest.mark.parametrize("value", ["", "1", "true", "YES", "on"])
def test_on_by_a_true_word_or_unset(reselect: pytest.MonkeyPatch, value: str) -> None:
    reselect.setitem(sys.modules, "bluezone_native", fake_helper(python_rpis_into))
    reselect.setenv("BLUEZONE_NATIVE", value)
    assert rpi_module.derivation_path() == "native (bluezone-native 0.0-test, OpenSSL 3.0.0 (test))"


@pytest.mark.parametrize("value", ["O", "2", "disable", "nein"])
def test_any_other_value_is_one_clear_error(reselect: pytest.MonkeyPatch, value: str) -> None:
    """Anything but 0 meant on: BLUEZONE_NATIVE=O or =off-ish typos silently kept the helper."""
    from bluezone.errors import ConfigError

    reselect.setenv("BLUEZONE_NATIVE", value)
    with pytest.raises(ConfigError, match=rf"BLUEZONE_NATIVE={value} is not understood: use 0 \(off\) or 1 \(on, the default\)"):
        rpi_module.derivation_path()


def test_the_probe_digest_is_the_python_paths() -> None:
    """The helper is held to ``PROBE_RPIS_SHA256`` (so that a check with it imports no
    ``cryptography``): it must be the digest of the probe keys' RPIs as Python derives them."""
    rpis = _python(rpi_module._PROBE_TEKS, rpi_module._PROBE_STARTS, 144)
    assert hashlib.sha256(rpis.tobytes()).hexdigest() == rpi_module.PROBE_RPIS_SHA256


@pytest.mark.parametrize(
    "source",
    ['raise RuntimeError("half installed")\n', "def rpis_into(:\n", "from ._rpi import rpis_into  # no such module\n"],
    ids=["raises", "truncated", "lacks-a-module"],
)
def test_a_helper_that_fails_to_import_falls_back_to_python(
    reselect: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    """A broken install (a file cut short, one of another version whose import fails halfway) raises
    whatever its code raises, not only ImportError: it failed every derivation (`keys derive`:
    'Error: RuntimeError: half installed', exit 1) where the Python path would have served."""
    (tmp_path / "bluezone_native").mkdir()
    (tmp_path / "bluezone_native" / "__init__.py").write_text(source)
    reselect.syspath_prepend(str(tmp_path))
    reselect.delitem(sys.modules, "bluezone_native", raising=False)
    assert rpi_module.derivation_path().startswith("python (compiled helper unusable: it failed to import: ")
    assert _vector_rpis_by_rpis_for_keys() == V["rpis"]


def test_a_helper_without_a_version_is_used_and_said_so(reselect: pytest.MonkeyPatch) -> None:
    helper = fake_helper(python_rpis_into)
    del helper.__version__  # type: ignore[attr-defined]
    reselect.setitem(sys.modules, "bluezone_native", helper)
    assert rpi_module.derivation_path() == "native (bluezone-native of no stated version, OpenSSL 3.0.0 (test))"
