"""Batched RPI derivation has two paths, the compiled helper and Python: tests run both."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator

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
