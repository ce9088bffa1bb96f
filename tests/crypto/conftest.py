"""Batched RPI derivation has two paths, the compiled helper and Python: tests run both."""

from __future__ import annotations

import os
import platform
import types
from collections.abc import Callable, Iterator

import numpy as np
import pytest


def require_native() -> None:
    """Skip when the compiled helper is not usable here, but fail under CI=true on the machines
    that .ci/run builds and installs it for (x86-64, aarch64)."""
    from bluezone.crypto import derivation as rpi_module
    path = rpi_module.derivation_path()
    if path.startswith("native"):
        return
    if os.environ.get("CI") == "true" and platform.machine() in ("x86_64", "aarch64"):
        pytest.fail(f"the compiled helper must be tested in CI: {path} (.ci/run builds and installs it)")
    pytest.skip(path)


@pytest.fixture(params=["python", "native"])
def derivation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with batched derivation in Python, then with the compiled helper."""
    from bluezone.crypto import derivation as rpi_module
    if request.param == "python":
        monkeypatch.setattr(rpi_module, "_native_rpis", lambda: None)
    else:
        require_native()
    yield request.param


# --- the choice of path, with a stand-in helper (the selection tests of both helper files) ------


@pytest.fixture
def reselect(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Forget the cached choice before and after, so each test chooses afresh."""
    from bluezone.crypto import derivation as rpi_module

    rpi_module._select_native.cache_clear()
    monkeypatch.delenv("BLUEZONE_NATIVE", raising=False)
    yield monkeypatch
    rpi_module._select_native.cache_clear()


def python_rpis_into(teks: np.ndarray, starts: np.ndarray, count: int, out: np.ndarray) -> None:
    """A correct ``bluezone_native.rpis_into``: the Python path's RPIs, written into ``out``."""
    from bluezone.crypto import derivation as rpi_module

    good = rpi_module._python_rpis(teks, starts.astype(np.int64), count, np.empty(len(teks) * count * 16 + 15, np.uint8))
    out[: good.size] = good.reshape(-1)


def fake_helper(rpis_into: Callable[..., None], **functions: Callable[..., object]) -> types.ModuleType:
    """A stand-in ``bluezone_native`` (0.0-test, "OpenSSL 3.0.0 (test)") with ``rpis_into`` and
    any optional ``functions`` (``rpis_passing``, ``set_bits``)."""
    def this_helpers_rpis_into(*args: object, **kwargs: object) -> None:
        rpis_into(*args, **kwargs)  # a function of its own: bluezone caches its probes per rpis_into

    module = types.ModuleType("bluezone_native")
    module.__version__ = "0.0-test"  # type: ignore[attr-defined]
    module.openssl_version = lambda: "OpenSSL 3.0.0 (test)"  # type: ignore[attr-defined]
    module.rpis_into = this_helpers_rpis_into  # type: ignore[attr-defined]
    for name, function in functions.items():
        setattr(module, name, function)
    return module
