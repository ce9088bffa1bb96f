"""`bluezone calibrate` through the real BlueZ backend, two BlueZoo adapters: radios opened, adverts heard, clear end."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.calibration import procedure
from bluezone.cli import cli

from .conftest import BlueZoo

pytestmark = pytest.mark.timeout(120)


@pytest.mark.slow
def test_calibrate_between_two_bluez_adapters_runs_and_ends_in_one_line(
    bluezoo: BlueZoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BlueZoo reports an advert once per rescan (and RSSI 0), so this cannot give a calibration;
    # it shows that the BlueZ path advertises, scans and hears the reference, and fails cleanly.
    # One advert is heard in 4 s as in the shortest real measurement (30 s, 30 s of wall clock in every run).
    monkeypatch.setattr(procedure, "MIN_DURATION_S", 5.0)
    config = tmp_path / "daemon.toml"
    result = CliRunner().invoke(cli, [
        "calibrate", "--radio", "bluez:hci0", "--reference-radio", "bluez:hci1", "--reference-rssi-correction", "0",
        "--reference-tx-power", "-24", "--duration", "5", "--yes", "--config", str(config),
    ])
    assert result.exit_code == 2, result.output
    assert sum(line.startswith("Error:") for line in result.output.splitlines()) == 1
    # heard through BlueZ but too rarely (seen every run here), or on a starved machine not at all
    assert "adverts of reference radio bluez:hci1" in result.output and "need 100" in result.output or (
        "heard none of it" in result.output
    )
    assert "Traceback" not in result.output and not config.exists()
