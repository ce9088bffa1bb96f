"""Every systemd unit in packaging/ is one systemd itself accepts (`systemd-analyze verify`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).parents[2] / "packaging"
UNITS = sorted(PACKAGING.glob("*.service"))


def test_every_unit_is_checked() -> None:
    assert {u.name for u in UNITS} >= {"bluezone.service", "bluezone-server.service", "bluezone-beacon.service"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify`, with `bluezone` resolved to this environment's script."""
    script = Path(sys.executable).with_name("bluezone")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("ExecStart=bluezone ", f"ExecStart={script} "))
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=120)
    problems = [line for line in proc.stderr.splitlines() if unit.name in line]
    assert proc.returncode == 0 and not problems, proc.stderr
