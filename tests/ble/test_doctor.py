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
    assert statuses["scan-mode"] == "ok"  # BlueZoo has no advertisement monitor: the active scan, every advert
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
    ("version", "status"), [(None, "warn"), ("5.46", "warn"), ("5.47", "ok"), ("5.55", "ok"), ("5.66", "ok"), ("5.7x", "ok")]
)
def test_version_check(version: str | None, status: str) -> None:
    from bluezone.proximity.doctor import Report, _check_version

    report = Report()
    _check_version(report, version)
    assert report.checks[0].status == status


def test_doctor_advises_the_active_scan_not_the_passive_one() -> None:
    """It warned when bluetoothd had no advertisement monitor and told the user to start it with --experimental;
    since the active scan asks BlueZ for every advert (0092903) the passive one is the scan that hears too little
    (a steady phone about once per RPI and 8 dB change), so that advice made things worse (user31's walk)."""
    from bluezone.proximity.backends.bluez_dbus import AdapterInfo
    from bluezone.proximity.doctor import Report, _check_passive

    def adapter(monitor: bool) -> AdapterInfo:
        return AdapterInfo(
            name="hci0", path="/org/bluez/hci0", address="00:11:22:33:44:55", powered=True, discovering=False,
            can_advertise=True, can_monitor=monitor, properties={}, advertising={},
            monitor={"SupportedMonitorTypes": ["or_patterns"]} if monitor else {},
        )

    without, with_monitor = Report(), Report()
    _check_passive(without, adapter(False))
    _check_passive(with_monitor, adapter(True))
    (plain,), (monitor,) = without.checks, with_monitor.checks
    assert plain.status == "ok" and "scans actively" in plain.detail and "--experimental" not in plain.fix
    # a monitor no longer makes `run` scan passively (the lead, session 31): nothing for the user to undo
    assert monitor.status == "ok" and "scans actively" in monitor.detail and "left unused" in monitor.detail
    assert not monitor.fix


@pytest.mark.parametrize(
    ("release", "status"),
    [("4.19.0-21-armmp", "warn"), ("5.6.19", "warn"), ("5.7.0", "ok"), ("6.1.0-rpi7-rpi-v8", "ok"), ("odd", "ok")],
)
def test_doctor_warns_of_a_kernel_that_stops_advertising_while_it_scans(release: str, status: str) -> None:
    from bluezone.proximity.doctor import Report, check_kernel

    report = Report()
    check_kernel(report, release)
    (kernel,) = report.checks
    assert kernel.status == status and release in kernel.detail
    if status == "warn":
        assert "bumble" in kernel.fix and "5.7" in kernel.fix
