"""Suite-wide settings: deterministic hypothesis runs, no deadlines on a noisy 2-core machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "bluezone",
    derandomize=True,  # same examples every run: the suite is deterministic
    deadline=None,
    max_examples=int(os.environ.get("BLUEZONE_HYPOTHESIS_EXAMPLES", "100")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("bluezone")

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A developer's own ~/.config/bluezone/daemon.toml (bluezone calibrate writes one) or config.toml, and
    BLUEZONE_* variables of the shell (BLUEZONE_DB, BLUEZONE_CHECK_SERVER, ...), never reach a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.getbasetemp() / "xdg-config"))
    for name in list(os.environ):
        if name.startswith("BLUEZONE_") and name != "BLUEZONE_HYPOTHESIS_EXAMPLES":
            monkeypatch.delenv(name)
