"""Every systemd unit in packaging/ is one systemd itself accepts (`systemd-analyze verify`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.systemd_unit import unit_settings

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


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_starts_after_the_clock_is_set_without_pulling_time_sync_in(unit: Path) -> None:
    """A Raspberry Pi has no real-time clock: until NTP answers it runs from its last saved time (or 1970).
    The daemon would make daily keys and stamp sightings of the wrong day, the key server date its
    exports wrongly: both wait for time-sync.target.  The beacon's frames decode whatever its clock says
    and a beacon by a door may have no network: it waits only for time-set.target (the saved time
    restored, so its epochs move forward).  systemd.special(7): ordered after, never pulled in."""
    s = unit_settings(unit.read_text())
    after = {u for value in s.get("After", []) for u in value.split()}
    pulled = {u for key in ("Wants", "Requires", "Requisite", "BindsTo") for v in s.get(key, []) for u in v.split()}
    needs = {"time-set.target"} | ({"time-sync.target"} if unit.name != "bluezone-beacon.service" else set())
    assert needs <= after
    assert not pulled & {"time-set.target", "time-sync.target"}
