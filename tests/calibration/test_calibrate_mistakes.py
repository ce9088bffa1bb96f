"""Mistakes around calibration that used to cost a run or end in a generic error line:
a config calibrate cannot write into (found only after minutes of measuring, or a TypeError),
a FIFO or /dev/zero as evaluate's calibration table (a hang), a negative --seed (ValueError, exit 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.calibration.table import CalibrationTable
from bluezone.cli import cli
from bluezone.config import check_settings_file, save_settings
from bluezone.errors import CalibrationTableError, ConfigError

DATASET = Path(__file__).parent.parent / "data" / "datasets" / "ng_small"
CALIBRATE = ["calibrate", "--radio", "emulated", "--reference", "Pixel 4", "--yes"]


@pytest.mark.parametrize(
    ("text", "child"),
    [("daemon = 5\n", False), ("tx_power = 'loud'\n", False), ("[daemon]\nbogus = 1\n", False), ("", True)],
)
def test_calibrate_refuses_an_unwritable_config_before_measuring(tmp_path: Path, text: str, child: bool) -> None:
    existing = tmp_path / "daemon.toml"
    existing.write_text(text)
    target = existing / "x.toml" if child else existing  # a file where a directory must be
    result = CliRunner().invoke(cli, [*CALIBRATE, "--config", str(target)])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and "heard" not in result.output  # refused before measuring
    assert "TypeError" not in result.output and "FileExistsError" not in result.output
    assert existing.read_text() == text


def test_save_settings_says_why_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="cannot write config file"):
        save_settings(tmp_path / "f" / "daemon.toml", {"rssi_correction": 3})
    with pytest.raises(ConfigError, match="under \\[daemon\\] or none"):
        (tmp_path / "d.toml").write_text("daemon = 5\n")
        save_settings(tmp_path / "d.toml", {"rssi_correction": 3})


def test_a_good_config_is_still_written(tmp_path: Path) -> None:
    target = tmp_path / "new" / "daemon.toml"
    check_settings_file(target)
    result = CliRunner().invoke(cli, [*CALIBRATE, "--config", str(target)])
    assert result.exit_code == 0, result.output
    assert "rssi_correction" in target.read_text()


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_calibration_table_that_is_no_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "table.csv"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(CalibrationTableError, match="not a calibration table"):
        CalibrationTable.from_path(path)
    result = CliRunner().invoke(cli, ["evaluate", str(DATASET), "--calibration-table", str(path)])
    assert result.exit_code == 2 and "not a calibration table" in result.output


@pytest.mark.parametrize(
    "args",
    [
        [*CALIBRATE, "--dry-run", "--seed", "-1"],
        ["evaluate", str(DATASET), "--seed", "-1"],
        ["benchmark", "--keys", "1", "--sightings", "1", "--seed", "-1"],
        ["demo", "--seed", "-1"],
    ],
)
def test_a_negative_seed_is_a_usage_error(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "ValueError" not in result.output and "--seed" in result.output


def test_the_radio_advice_works_for_calibrate() -> None:
    """Without Bluetooth, calibrate said 'try it without Bluetooth (--backend emulated)', as run
    does; calibrate had only --radio, so following the advice was 'No such option'."""
    from bluezone.proximity.backends.real import ALTERNATIVES

    assert "--backend emulated" in ALTERNATIVES
    result = CliRunner().invoke(cli, ["calibrate", "--backend", "emulated", "--reference", "Pixel 4", "--yes", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "RSSI correction" in result.output


def test_find_says_when_it_shows_only_part_of_the_matches() -> None:
    """`calibrate --find samsung` printed 30 rows and stopped, as if the table held no more."""
    import json

    everything = json.loads(CliRunner().invoke(cli, ["calibrate", "--find", "samsung", "--json"]).output)
    assert len(everything) > 30
    text = CliRunner().invoke(cli, ["calibrate", "--find", "samsung"]).output
    assert f"and {len(everything) - 30} more" in text
    assert "more" not in CliRunner().invoke(cli, ["calibrate", "--find", "pixel 4"]).output


@pytest.mark.parametrize(
    ("args", "reads"),
    [(["--phone-rssi", "-60"], "on the emulated radio the reference phone hears this radio itself"),
     (["--radio", "bluez", "--reference-radio", "bluez:hci1", "--reference-rssi-correction", "0",
       "--reference-tx-power", "-24", "--phone-rssi", "-60"], "a --reference-radio hears this radio itself")],
    ids=["emulated", "reference-radio"],
)
def test_a_phone_reading_the_reference_would_not_use_is_refused(args: list[str], reads: str) -> None:
    """--phone-rssi was dropped without a word where the reference reads the adapter itself: on the
    emulated radio -60 and -90 gave the same TX power (walk12, trying docs/calibration.md's phone flow
    there), and beside a --reference-radio. Now a usage error, before any radio is opened."""
    base = ["calibrate", "--reference", "Pixel 4", "--yes"] if args[0] == "--phone-rssi" else ["calibrate", "--yes"]
    radio = ["--radio", "emulated"] if args[0] == "--phone-rssi" else []
    result = CliRunner().invoke(cli, [*base, *radio, *args])
    assert result.exit_code == 2, result.output
    assert reads in result.output and "heard" not in result.output
