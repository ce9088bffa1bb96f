"""What venue check-in adds at low adoption (``bluezone simulate --venues``): exact expectations
on a small scene whose truth is known, and the CLI table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sim_helpers import pairs_scenario

from bluezone.cli import cli
from bluezone.sim import engine
from bluezone.sim.scenario import scenario_from_mapping
from bluezone.sim.venues import venue_adoption_summary


@pytest.fixture(scope="module")
def pairs_result():  # type: ignore[no-untyped-def]
    return engine.run(scenario_from_mapping(pairs_scenario()), seed=7)


def test_everyone_in_the_scene_shared_the_room(pairs_result) -> None:  # type: ignore[no-untyped-def]
    summary = venue_adoption_summary(pairs_result, (0.074, 0.3, 0.7))
    assert summary["pairs"] == 12 * 11 and summary["close_contact_pairs"] == 10
    assert summary["shared_room_pairs"] == 12 * 11  # 25 minutes, all seated in one room


def test_expectations_follow_adoption(pairs_result) -> None:  # type: ignore[no-untyped-def]
    summary = venue_adoption_summary(pairs_result, (0.074, 0.3, 0.7))
    flagged = summary["flagged_when_both_use_it"]["close_contacts"]
    for row in summary["rates"]:
        a = row["adoption"]
        assert row["close_contacts"]["bluetooth"] == pytest.approx(a * a * flagged, abs=1e-4)
        assert row["shared_room_15min"]["venue"] == pytest.approx(a * a, abs=1e-4)  # beacon: all users checked in
        assert row["close_contacts"]["either"] == pytest.approx(a * a, abs=1e-4)  # every close contact shared the room
        assert row["owner_warning_shared_room"] == pytest.approx(a, abs=1e-4)  # only the visitor needs bluezone
    # with half the users checking in (QR only), the case's upload reaches a quarter as many
    half = venue_adoption_summary(pairs_result, (0.3,), checkin_rate=0.5)["rates"][0]
    assert half["shared_room_15min"]["venue"] == pytest.approx(0.09 * 0.25, abs=1e-4)


@pytest.mark.slow
def test_simulate_cli_reports_venues() -> None:
    runner = CliRunner()
    wall = str(Path(__file__).parents[2] / "simulations" / "wall.toml")
    result = runner.invoke(cli, ["simulate", wall, "--minutes", "16", "--venues", "0.074,0.3,0.7", "--json"], obj={})
    assert result.exit_code == 0, result.output
    venues = json.loads(result.stdout)["venues"]
    assert [r["adoption"] for r in venues["rates"]] == [0.074, 0.3, 0.7]
    text = runner.invoke(cli, ["simulate", wall, "--minutes", "16", "--venues", "0.3"], obj={})
    assert "venue check-in" in text.output and "owner" in text.output
    bad = runner.invoke(cli, ["simulate", wall, "--venues", "lots"], obj={})
    assert bad.exit_code == 2 and "--venues" in bad.output
