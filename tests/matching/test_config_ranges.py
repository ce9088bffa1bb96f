"""A scorer setting out of its range is named alone, with its range and its value: the error named every
bound of its group ("soft_width_db >= 0, min_sightings >= 1, smooth_slots 1-..., gap_fill_slots 0-...")
and left the user to find which value was wrong."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import ConfigError
from bluezone.matching.bluezone_scorer import BluezoneConfig
from bluezone.matching.receiver import MAX_RUN
from bluezone.matching.scoring import MAX_SLOT_SECONDS, MAX_SLOTS, GaenConfig

#: (config, setting, a value out of range, its range as the error says it)
BAD = [
    (BluezoneConfig, "percentile", 101.0, "0-100"),
    (BluezoneConfig, "soft_width_db", -1.0, ">= 0"),
    (BluezoneConfig, "min_sightings", 0, ">= 1"),
    (BluezoneConfig, "smooth_slots", MAX_SLOTS + 1, f"1-{MAX_SLOTS}"),
    (BluezoneConfig, "gap_fill_slots", -1, f"0-{MAX_SLOTS}"),
    (BluezoneConfig, "close_contact_minutes", 0.0, "> 0"),
    (BluezoneConfig, "slot_seconds", MAX_SLOT_SECONDS + 1, f"1-{MAX_SLOT_SECONDS:g}"),
    (BluezoneConfig, "calibration_weight", 1.5, "0-1"),
    (BluezoneConfig, "calibration_clip_db", -0.5, ">= 0"),
    (BluezoneConfig, "calibration_min_link_minutes", 0, ">= 1"),
    (BluezoneConfig, "ramp_db", -2.0, ">= 0"),
    (BluezoneConfig, "chain_scale", 0.0, "> 0"),
    (BluezoneConfig, "chain_switch", 2.0, "1e-6 to 1"),
    (BluezoneConfig, "chain_prior", 1.0, "1e-6 to 1 - 1e-6"),
    (BluezoneConfig, "minute_reference_weight", -0.1, "0-1"),
    (BluezoneConfig, "minute_reference_quantile", 100.5, "0-100"),
    (BluezoneConfig, "minute_reference_clip_db", -1.0, ">= 0"),
    (BluezoneConfig, "minute_reference_min_links", 0, ">= 1"),
    (BluezoneConfig, "reference_min_minutes", MAX_RUN + 1, f"1-{MAX_RUN}"),
    (BluezoneConfig, "minute_reference_near_share", 1.5, "0-1"),
    (BluezoneConfig, "minute_reference_strongest", -1, ">= 0"),
    (BluezoneConfig, "ranking_reference_strongest", -1, ">= 0"),
    (BluezoneConfig, "ranking_reference_slack_db", 20.5, "0-20"),
    (GaenConfig, "near_weight", 3.0, "0-2.5"),
    (GaenConfig, "close_contact_minutes", -1.0, "> 0"),
    (GaenConfig, "slot_seconds", 0.5, f"1-{MAX_SLOT_SECONDS:g}"),
    (GaenConfig, "max_gap_slots", 0, f"1-{MAX_SLOTS}"),
]


@pytest.mark.parametrize("config, setting, value, bounds", BAD, ids=[f"{c.__name__}.{s}" for c, s, _, _ in BAD])
def test_the_error_names_the_bad_setting_alone_with_its_value(config: type, setting: str, value: object, bounds: str) -> None:
    with pytest.raises(ConfigError) as error:
        config(**{setting: value})
    assert str(error.value) == f"scorer setting {setting} must be {bounds}, got {value!r}"


def test_the_attenuation_thresholds_error_gives_the_three_values() -> None:
    with pytest.raises(ConfigError, match=r"<= 255 dB, got 70, 63, 73$"):
        GaenConfig(immediate_db=70)


def test_check_set_names_the_setting_in_one_line(tmp_path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"temporaryExposureKeys": []}')
    done = CliRunner().invoke(cli, ["check", "--keys", str(keys), "--db", str(tmp_path / "none.db"),
                                    "--set", "soft_width_db=-3"])
    assert done.exit_code == 2, done.output
    assert done.stderr.strip().splitlines() == ["Error: scorer setting soft_width_db must be >= 0, got -3"]
