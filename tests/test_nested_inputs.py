"""Files and values nested thousands deep: tomllib and json parse by recursion, so each raised a bare
RecursionError (exit 1, "run with --debug") instead of the one-line input error (exit 2) every
other defect in the same file gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.client.pinning import read_server_key
from bluezone.config import DaemonConfig, read_toml_file
from bluezone.errors import ConfigError, InputError, VenueError
from bluezone.matching.scoring import parse_setting
from bluezone.server.signing import INFO_FILE, keygen, load_signer
from bluezone.venues.owner import SECRET_FILE, load_venue_dir

DEPTH = 5000
DEEP_ARRAY = "[" * DEPTH + "]" * DEPTH
DEEP_TABLE = "{a = " * DEPTH + "1" + "}" * DEPTH


@pytest.mark.parametrize("value", [DEEP_ARRAY, DEEP_TABLE], ids=["array", "inline-table"])
def test_a_deeply_nested_toml_file_is_a_config_error(tmp_path: Path, value: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(f'name = "deep"\nx = {value}\n')
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_toml_file(path, "scenario file")
    with pytest.raises(ConfigError, match="nested too deeply"):
        DaemonConfig.load_text(f"x = {value}\n")


def test_simulate_with_a_deeply_nested_scenario_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(f'name = "deep"\nduration_min = 1\nx = {DEEP_ARRAY}\n')
    result = CliRunner().invoke(cli, ["simulate", str(path)], prog_name="bluezone")
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "nested too deeply" in result.output, result.output


def test_a_deeply_nested_scorer_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="near_weight.*nested too deeply"):
        parse_setting(f"near_weight={DEEP_ARRAY}")


def test_a_deeply_nested_server_key_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "signing_key.json"
    path.write_text('{"public_key": ' + DEEP_ARRAY + "}")
    with pytest.raises(InputError, match="not a signing_key.json"):
        read_server_key(path)


def test_a_deeply_nested_venue_secret_file_is_a_venue_error(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text('{"payload": ' + DEEP_ARRAY + "}")
    with pytest.raises(VenueError, match="not a bluezone venue secret file"):
        load_venue_dir(tmp_path)


def test_a_deeply_nested_signing_key_info_is_a_config_error(tmp_path: Path) -> None:
    keygen(tmp_path / "keys")
    (tmp_path / "keys" / INFO_FILE).write_text('{"key_id": ' + DEEP_ARRAY + "}")
    with pytest.raises(ConfigError, match="no usable signing key"):
        load_signer(tmp_path / "keys")
