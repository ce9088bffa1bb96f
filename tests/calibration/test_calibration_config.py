"""The calibration in the daemon's TOML: written keeping the user's file, read by run, doctor and status."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bluezone.calibration.procedure import MAX_CORRECTION_DB, CalibrationResult
from bluezone.calibration.session import save_calibration, settings_of
from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig, default_config_path, load_config, save_settings
from bluezone.errors import ConfigError
from bluezone.proximity.backends.emulated import Air, EmulatedRadio
from bluezone.proximity.cli import calibration_line
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.doctor import Report, check_calibration
from bluezone.proximity.store import SightingStore

START = 1_795_089_600.0


def result(correction: int = -7, tx: int | None = -21) -> CalibrationResult:
    return CalibrationResult(correction, tx, 1.0, 180.0, "Google Pixel 4", 800, -71.0, 6.0, None, -79.0 if tx else None)


def test_round_trip_keeps_comments_and_the_daemon_table(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("# my node\n[daemon]\nretention_days = 10  # shorter on purpose\n")
    saved = save_calibration(path, result())
    text = path.read_text()
    assert "# my node" in text and "# shorter on purpose" in text
    again = DaemonConfig.load(path)
    assert again == saved and (again.retention_days, again.rssi_correction, again.tx_power) == (10, -7, -21)
    assert again.calibrated and "RSSI correction -7 dB, TX power -21 dBm" in again.calibration
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_unmeasured_tx_power_keeps_the_configured_one(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("tx_power = -30\n")
    saved = save_calibration(path, result(tx=None))
    assert saved.tx_power == -30 and saved.rssi_correction == -7 and "TX power not measured" in saved.calibration
    assert "tx_power" not in settings_of(result(tx=None))


def test_an_invalid_result_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("tx_power = -30\n")
    with pytest.raises(ConfigError, match="rssi_correction"):
        save_settings(path, {"rssi_correction": 400})
    with pytest.raises(ConfigError, match="one line"):
        save_settings(path, {"calibration": "two\nlines"})
    assert path.read_text() == "tx_power = -30\n" and [p.name for p in tmp_path.iterdir()] == ["daemon.toml"]


@given(correction=st.integers(-MAX_CORRECTION_DB, MAX_CORRECTION_DB), tx=st.one_of(st.none(), st.integers(-50, 20)))
def test_any_calibration_round_trips(tmp_path_factory: pytest.TempPathFactory, correction: int, tx: int | None) -> None:
    path = tmp_path_factory.mktemp("cfg") / "daemon.toml"
    saved = save_calibration(path, result(correction, tx))
    assert DaemonConfig.load(path) == saved and saved.rssi_correction == correction
    assert saved.tx_power == (DaemonConfig().tx_power if tx is None else tx)


def test_load_config_uses_the_default_file_only_when_it_exists() -> None:
    assert load_config() == DaemonConfig()
    default_config_path().parent.mkdir(parents=True, exist_ok=True)
    try:
        default_config_path().write_text('rssi_correction = 3\ncalibration = "measured"\n')
        assert load_config().rssi_correction == 3 and load_config().calibrated
    finally:
        default_config_path().unlink()


def test_doctor_warns_when_uncalibrated_and_names_the_calibration_otherwise() -> None:
    plain, done = Report(), Report()
    check_calibration(plain, DaemonConfig())
    check_calibration(done, DaemonConfig(calibration="bluezone calibrate 2026-12-04: 1 m from Pixel 4"))
    (a,), (b,) = plain.checks, done.checks
    assert a.status == "warn" and "uncalibrated" in a.detail and "bluezone calibrate" in a.fix and plain.ok
    assert b.status == "ok" and "Pixel 4" in b.detail


class AdapterLikeRadio(EmulatedRadio):
    """An emulated radio named like a BlueZ adapter, so status treats it as real hardware."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.name = "bluez:hci0"


@pytest.mark.parametrize("calibration", ["", "bluezone calibrate 2026-12-04 10:00 UTC: 1 m from Google Pixel 4"])
def test_status_says_whether_the_running_adapter_is_calibrated(tmp_path: Path, calibration: str) -> None:
    clock = VirtualClock(START)
    air = Air(clock, seed=1)
    path = tmp_path / "node.db"
    config = DaemonConfig(calibration=calibration, rssi_correction=-4 if calibration else 0)
    with SightingStore.open(path) as store:
        clock.run(Daemon(AdapterLikeRadio(air, "node", (0.0, 0.0)), store, clock, config).run(duration=120))
    out = CliRunner().invoke(cli, ["status", "--db", str(path)]).output
    line = next(line for line in out.splitlines() if line.startswith("calibration"))
    if calibration:
        assert "Google Pixel 4" in line
    else:
        assert "NONE" in line and "bluezone calibrate" in line and "-24 dBm" in line


def test_status_is_silent_about_calibration_for_the_emulated_radio() -> None:
    assert calibration_line({"backend": "emulated:self", "calibration": ""}) == ""
    assert calibration_line({"backend": "bluez:hci0"}) == ""  # a daemon too old to report it


def test_numbers_set_by_hand_are_not_called_nominal() -> None:
    """A config with tx_power / rssi_correction from Google's table but no calibration note: doctor,
    status and run called -30 dBm and +4 dB 'nominal'."""
    report = Report()
    check_calibration(report, DaemonConfig(tx_power=-30, rssi_correction=4))
    detail = report.checks[-1].detail
    assert "set by hand" in detail and "nominal" not in detail
    line = calibration_line({"backend": "bluez:hci0", "calibration": "", "tx_power": -30, "rssi_correction": 4})
    assert "set by hand" in line and "nominal" not in line
    defaults = calibration_line({"backend": "bluez:hci0", "calibration": "", "tx_power": -24, "rssi_correction": 0})
    assert "are nominal" in defaults


@pytest.mark.parametrize("tx", [24, -51, 21, 127, -128])
def test_a_tx_power_receivers_would_ignore_is_refused(tx: int) -> None:
    """Receivers (GAEN's and bluezone's) ignore an AEM TX power outside -50..+20 dBm and assume their
    default, so tx_power = 24 (a typo for -24) was accepted and silently did nothing."""
    from bluezone.errors import ConfigError

    with pytest.raises(ConfigError, match="-50..20"):
        DaemonConfig(tx_power=tx)
    assert DaemonConfig(tx_power=-50).tx_power == -50 and DaemonConfig(tx_power=20).tx_power == 20


def test_save_settings_keeps_a_symlinked_config_a_link(tmp_path: Path) -> None:
    """A daemon.toml linked from a dotfiles folder was replaced by a plain file: the link is kept, the file it
    names gets the new settings."""
    real = tmp_path / "dotfiles" / "daemon.toml"
    real.parent.mkdir()
    real.write_text("# mine\n[daemon]\nstatus_interval = 30\n", encoding="utf-8")
    link = tmp_path / "config" / "daemon.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    save_settings(link, {"rssi_correction": 3})
    assert link.is_symlink() and link.resolve() == real.resolve()
    text = real.read_text(encoding="utf-8")
    assert "# mine" in text and "rssi_correction = 3" in text and "status_interval = 30" in text
    assert load_config(link).rssi_correction == 3


def test_save_settings_is_on_disk_before_it_replaces_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new file was renamed over the old one unsynced: a power cut after calibrate could leave an empty config."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_settings(tmp_path / "daemon.toml", {"rssi_correction": 3})
    assert events[:2] == ["fsync", "replace"]


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ("rssi_correction = 20\n", "rssi_correction = 20 (calibrated: -7 dB)"),  # a typo for -20, or -7 kept
        ("tx_power = -12\n", "tx_power = -12 (calibrated: -21 dBm)"),
    ],
)
def test_a_number_edited_after_calibrating_is_not_reported_calibrated(tmp_path: Path, edit: str, said: str) -> None:
    """doctor and status said 'calibration ok' under the note of the numbers calibrate wrote, while the config
    held a number edited since, the one every check (and the daemon's AEM) used."""
    path = tmp_path / "daemon.toml"
    save_calibration(path, result())
    name = edit.split(" ")[0]
    path.write_text("".join(line if not line.startswith(name) else edit for line in path.read_text().splitlines(True)))
    config = DaemonConfig.load(path)
    assert not config.calibrated and config.edited_since_calibration() == said
    report = Report()
    check_calibration(report, config)
    assert (report.checks[-1].status, report.checks[-1].detail) == (
        "warn", f"edited since bluezone calibrate: {said}; the edited number is the one used"
    )
    state = {"backend": "bluez:hci0", "calibration": config.calibration, "tx_power": config.tx_power,
             "rssi_correction": config.rssi_correction}
    assert calibration_line(state) == f"{config.calibration} (EDITED since: {said})"


def test_a_calibration_note_agreeing_with_its_numbers_or_naming_none_is_calibrated(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    for made in (result(), result(correction=0), result(tx=None)):
        config = save_calibration(path, made)
        assert config.calibrated and config.edited_since_calibration() is None
    by_hand = DaemonConfig(calibration="measured at the lab, 2026-11-30", rssi_correction=3)
    assert by_hand.calibrated and by_hand.edited_since_calibration() is None
    report = Report()
    check_calibration(report, DaemonConfig.load(path))
    assert report.checks[-1].status == "ok"
