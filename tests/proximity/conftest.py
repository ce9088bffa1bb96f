"""Helpers for the proximity tests: a fixed virtual start and nodes on one air."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from bluezone.proximity.sightings import SIGHTING_DTYPE

#: noon UTC on a fixed day: far from midnight unless a test wants it
NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 11, 21, 0, 0, tzinfo=UTC).timestamp()


def random_sightings(n: int, start: float, span: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = np.sort(start + rng.uniform(0, span, n))
    out["rpi"] = np.frombuffer(rng.bytes(16 * n), "V16")
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rng.integers(-100, -40, n)
    out["tx_power"] = rng.choice([-128, -10, 4], n)
    return out


@pytest.fixture
def db(tmp_path):
    return tmp_path / "data" / "bluezone.db"


def without_write_access() -> list[str]:
    """The command prefix under which permissions hold: none for a user, for root ``setpriv`` without
    the capabilities that override them (root reads and writes any file)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root, and no setpriv to give up the override of file permissions")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def bluezone_without_write_access(*args: str) -> subprocess.CompletedProcess[str]:
    """``bluezone ARGS`` in a child process under :func:`without_write_access`."""
    return subprocess.run([*without_write_access(), sys.executable, "-m", "bluezone.cli", *args],
                          capture_output=True, text=True, timeout=120)
