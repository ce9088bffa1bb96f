"""packaging/bluezone-beacon.service: a venue's beacon at boot on a Pi, with the daemon unit's sandboxing."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.packaging.systemd_unit import unit_settings as _settings

PACKAGING = Path(__file__).parents[2] / "packaging"
UNIT = PACKAGING / "bluezone-beacon.service"


def test_the_unit_runs_a_beacon_command_the_cli_takes() -> None:
    from bluezone.venues.cli import venue

    (exec_start,) = _settings(UNIT.read_text())["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:3] == ["bluezone", "venue", "beacon"]
    ctx = venue.commands["beacon"].make_context("beacon", argv[3:])
    assert ctx.params["backend"] == "bluez" and ctx.params["duration"] is None  # until systemctl stop
    assert str(ctx.params["venue_dir"]) == "/var/lib/bluezone-beacon/venue"


def test_the_unit_has_the_daemon_units_sandboxing_and_user() -> None:
    """The same user and hardening as packaging/bluezone.service (BlueZ over D-Bus needs nothing more)."""
    beacon, daemon = _settings(UNIT.read_text()), _settings((PACKAGING / "bluezone.service").read_text())
    same = [
        "User", "SupplementaryGroups", "NoNewPrivileges", "CapabilityBoundingSet", "ProtectSystem", "ProtectHome",
        "PrivateDevices", "PrivateNetwork", "ProtectProc", "RestrictAddressFamilies",
        "UMask", "StateDirectoryMode", "RestartPreventExitStatus", "KillSignal",
    ]
    assert {k: beacon.get(k) for k in same} == {k: daemon.get(k) for k in same}
    # tighter than the daemon's: the beacon reads neither the kernel's clock state nor this boot's id (CheckedClock)
    assert beacon["ProcSubset"] == ["pid"] and beacon["ProtectClock"] == ["yes"]
    assert beacon["SystemCallFilter"] == daemon["SystemCallFilter"][:1]
    assert beacon["StateDirectory"] == ["bluezone-beacon"]
