"""A scenario's phone model can take its TX power and RSSI correction from Google's calibration table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluezone.errors import ConfigError
from bluezone.sim.scenario import load_scenario

BASE = """
name = "t"
duration_min = 5
[space]
width_m = 5.0
depth_m = 5.0
[[groups]]
kind = "waypoint"
people = 4
"""


def scenario(tmp_path: Path, models: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "s.toml"
    path.write_text(BASE + "[devices]\n" + models)
    return load_scenario(path)


def test_models_from_the_table_and_overrides(tmp_path: Path) -> None:
    s = scenario(tmp_path, """
[[devices.models]]
table = "Pixel 4"
share = 0.5
[[devices.models]]
table = "HTC One M9"
table_manufacturer = "HTC"
tx_power_dbm = -20
share = 0.5
""")
    pixel, htc = s.devices.models
    assert (pixel.name, pixel.tx_power_dbm, pixel.rssi_correction_db) == ("Pixel 4", -28, 5)
    assert (htc.name, htc.tx_power_dbm, htc.rssi_correction_db) == ("HTC One M9", -20, 4)  # the file's TX power wins


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ('[[devices.models]]\ntable = "Nokia 3310"\n', "not in Google's calibration table"),
        ('[[devices.models]]\ntable = "iPhone 8"\n', "no TX power"),
        ("[[devices.models]]\ntable = 8\n", "a model name"),
    ],
)
def test_unknown_or_incomplete_table_models_are_one_line_errors(tmp_path: Path, models: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        scenario(tmp_path, models)
    assert "\n" not in str(err.value)


def test_an_iphone_needs_its_tx_power_from_the_file(tmp_path: Path) -> None:
    s = scenario(tmp_path, '[[devices.models]]\ntable = "iPhone 8"\ntx_power_dbm = -20\n')
    (iphone,) = s.devices.models
    assert (iphone.tx_power_dbm, iphone.rssi_correction_db) == (-20, 0)
