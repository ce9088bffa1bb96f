"""Scenarios ship with bluezone: found by name, listed, and every file in simulations/ is one of them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner
from sim_helpers import REPO, SIMULATIONS

from bluezone.cli import cli
from bluezone.sim.catalogue import find_scenario, scenario_dir, scenario_names


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), obj={})


def test_every_scenario_file_in_simulations_ships_by_name() -> None:
    assert scenario_names() == sorted(p.stem for p in SIMULATIONS.glob("*.toml"))
    assert scenario_dir().resolve() == SIMULATIONS.resolve()  # the checkout's folder, through the link


def test_the_scenario_files_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.toml" in config["package-data"]["bluezone.sim.scenarios"]  # a package of data (tests/packaging)
    assert (REPO / "bluezone" / "sim" / "scenarios").is_symlink()


def test_simulate_by_name(tmp_path: Path) -> None:
    result = invoke("simulate", "wall", "--seed", "1", "--minutes", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["scenario"] == "wall"


def test_the_readme_path_form_still_works_from_a_checkout(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(REPO)
    assert find_scenario("simulations/market.toml") == Path("simulations/market.toml")


def test_simulate_list_names_every_scenario_with_its_description() -> None:
    result = invoke("simulate", "--list")
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines()]
    assert listed == scenario_names()
    assert "open-air market" in result.output


def test_unknown_names_and_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    result = invoke("simulate", "markt")
    assert result.exit_code == 2 and "no scenario named 'markt'" in result.output and "market" in result.output
    result = invoke("simulate", str(tmp_path / "market.toml"))
    assert result.exit_code == 2 and "bluezone simulate market" in result.output
    result = invoke("simulate")
    assert result.exit_code == 2 and "--list" in result.output


def test_a_path_that_is_there_but_no_regular_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    """`simulate /dev/zero` or a FIFO said 'no scenario file /dev/zero': it is there, it is a device."""
    import os

    fifo = tmp_path / "scene.toml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device"), (tmp_path, "a directory")):
        result = invoke("simulate", str(path))
        assert result.exit_code == 2 and result.output == f"Error: {path} is {kind}, not a scenario file\n", result.output
