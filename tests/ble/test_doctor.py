"""`bluezone doctor` against BlueZoo and against a machine with no BlueZ at all."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.proximity.backends.bluez import BluezRadio
from bluezone.proximity.doctor import diagnose, render

from .conftest import BlueZoo

pytestmark = pytest.mark.timeout(60)


async def test_doctor_passes_on_bluezoo_and_hears_a_node(bluezoo: BlueZoo) -> None:
    node = BluezRadio("hci0")
    async with node:
        await node.advertise(bytes(20), -10)
        report = await diagnose("hci1", scan_seconds=2.5)
    statuses = {c.name: c.status for c in report.checks}
    assert report.ok, render(report)
    assert statuses["adapter"] == "ok" and statuses["advertising"] == "ok"
    assert statuses["passive-scan"] == "warn"  # BlueZoo has no advertisement monitor
    assert statuses["scan"] == "ok"
    assert report.facts["scan"]["gaen_adverts"] >= 1
    assert report.facts["advertising"]["supported_instances"] > 0


async def test_doctor_names_the_problem_and_the_fix(bluezoo: BlueZoo) -> None:
    missing = await diagnose("hci9", scan_seconds=0)
    assert not missing.ok
    adapter = next(c for c in missing.checks if c.name == "adapter")
    assert adapter.status == "fail" and "hci0" in adapter.detail and adapter.fix

    await bluezoo.set_powered(0, False)
    off = await diagnose("hci0", scan_seconds=0)
    adapter = next(c for c in off.checks if c.name == "adapter")
    assert adapter.status == "fail" and "power on" in adapter.fix


def test_doctor_cli_json_without_bluez(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    result = CliRunner().invoke(cli, ["doctor", "--json", "--scan-seconds", "0"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["ok"] is False
    bus = next(c for c in data["checks"] if c["name"] == "system-bus")
    assert bus["status"] == "fail" and "dbus" in bus["fix"]


def test_not_ready_without_bluez_names_the_radios_that_need_none(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """It ended "not ready: fix the FAIL lines above" where `bluezone run` says "try it without Bluetooth
    (--backend emulated)": a newcomer with no Bluetooth was left with only the fixes (note27)."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    result = CliRunner().invoke(cli, ["doctor", "--scan-seconds", "0", "--db", str(tmp_path / "node.db")])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        "not ready for `bluezone run --backend bluez`: fix the FAIL lines above, or give bluezone a controller of its"
        " own (--backend bumble:usb:0), or try it without Bluetooth (--backend emulated)"
    ), result.output


def test_not_ready_for_any_radio_offers_none() -> None:
    """A failure no other radio escapes (a config.toml `run` cannot read, a damaged store) keeps the plain line."""
    from bluezone.proximity.doctor import Report, verdict

    report = Report()
    report.add("daemon-config", "fail", "config.toml: not TOML")
    report.add("system-bus", "fail", "cannot reach the system D-Bus")
    assert verdict(report) == "not ready: fix the FAIL lines above"


def test_doctor_cli_text_on_bluezoo(bluezoo: BlueZoo) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--adapter", "hci0", "--scan-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert "[ok  ] adapter: hci0" in result.output and "ready for" in result.output


@pytest.mark.parametrize(
    ("version", "status"), [(None, "warn"), ("5.55", "warn"), ("5.66", "ok"), ("5.7x", "ok")]
)
def test_version_check(version: str | None, status: str) -> None:
    from bluezone.proximity.doctor import Report, _check_version

    report = Report()
    _check_version(report, version)
    assert report.checks[0].status == status
