"""A calibration is tied to the adapter it was made on, by its Bluetooth address: calibrate records it, and status and
doctor say when the adapter in use is another (run says it too: tests/ble/test_bluez_daemon.py, on BlueZoo)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.calibration.procedure import CalibrationResult
from bluezone.calibration.session import save_calibration
from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.errors import ConfigError
from bluezone.proximity.backends.emulated import Air, EmulatedRadio, fake_adapter_address
from bluezone.proximity.cli import calibration_line
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.doctor import Report, check_calibration_adapter
from bluezone.proximity.store import SightingStore

START = 1_795_089_600.0
HERE, THERE = "00:1A:7D:DA:71:13", "5C:F3:70:8B:12:01"


def result(adapter: str | None) -> CalibrationResult:
    return CalibrationResult(-7, -21, 1.0, 180.0, "Google Pixel 4", 800, -71.0, 6.0, None, -79.0, adapter)


def test_calibrate_records_the_adapter_it_measured(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    out = CliRunner().invoke(cli, ["calibrate", "--radio", "emulated", "--reference", "Pixel 4", "--config",
                                   str(config), "--yes", "--duration", "60"])
    assert out.exit_code == 0, out.output
    saved = DaemonConfig.load(config)
    address = fake_adapter_address("adapter")  # the emulated adapter's, as a real one's its own
    assert saved.calibration_adapter == address and f" on adapter {address}: 1 m from " in saved.calibration
    assert saved.calibrated and saved.on_another_adapter(address) is None


def test_a_calibration_of_an_adapter_of_unknown_address_clears_the_last_ones(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    assert save_calibration(path, result(HERE)).calibration_adapter == HERE
    again = save_calibration(path, result(None))
    assert again.calibration_adapter == "" and "on adapter" not in again.calibration
    assert again.on_another_adapter(THERE) is None


def test_another_adapter_is_said_and_an_unrecorded_one_not_checked() -> None:
    config = DaemonConfig(calibration=result(HERE).note("2026-12-07 10:00 UTC"), calibration_adapter=HERE,
                          rssi_correction=-7, tx_power=-21)
    assert config.on_another_adapter(HERE.lower()) is None and config.on_another_adapter(None) is None
    line = config.on_another_adapter(THERE)
    assert line is not None and HERE in line and THERE in line and "bluezone calibrate` on this one" in line
    assert config.calibrated  # its numbers are as calibrate wrote them: the adapter is what differs
    old = dataclasses.replace(config, calibration_adapter="")  # calibrated before the address was recorded
    assert old.on_another_adapter(THERE) is None
    warned, same, unrecorded = Report(), Report(), Report()
    check_calibration_adapter(warned, config, THERE)
    check_calibration_adapter(same, config, HERE)
    check_calibration_adapter(unrecorded, old, THERE)
    assert [(c.status, c.detail) for c in warned.checks] == [("warn", line)] and "--adapter" in warned.checks[0].fix
    assert [c.status for c in same.checks] == ["ok"] and unrecorded.checks == []


@pytest.mark.parametrize("bad", ["hci0", "00:1A:7D:DA:71", "00-1A-7D-DA-71-13", "00:1A:7D:DA:71:1G"])
def test_a_calibration_adapter_that_is_no_address_is_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text(f'calibration_adapter = "{bad}"\n')
    with pytest.raises(ConfigError, match=r"^config file .*: calibration_adapter must be a Bluetooth address"):
        DaemonConfig.load(path)


class AdapterLikeRadio(EmulatedRadio):
    """An emulated radio named like a BlueZ adapter, so status treats it as real hardware."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.name = "bluez:hci0"


@pytest.mark.parametrize("calibrated_on", [HERE, THERE, ""])
def test_status_says_when_the_daemons_adapter_is_not_the_one_calibrated(tmp_path: Path, calibrated_on: str) -> None:
    clock = VirtualClock(START)
    path = tmp_path / "node.db"
    config = DaemonConfig(calibration="bluezone calibrate 2026-12-04 10:00 UTC: 1 m from Google Pixel 4",
                          calibration_adapter=calibrated_on, rssi_correction=-4)
    radio = AdapterLikeRadio(Air(clock, seed=1), "node", (0.0, 0.0), adapter_address=HERE)
    with SightingStore.open(path) as store:
        clock.run(Daemon(radio, store, clock, config).run(duration=120))
    out = CliRunner().invoke(cli, ["status", "--db", str(path)]).output
    line = next(line for line in out.splitlines() if line.startswith("calibration"))
    if calibrated_on == THERE:
        assert line.endswith(f"(ANOTHER ADAPTER: {config.on_another_adapter(HERE)})")
    else:
        assert "ANOTHER" not in line and "Google Pixel 4" in line
    assert calibration_line({"backend": "bluez:hci0", "calibration": config.calibration}) == config.calibration
