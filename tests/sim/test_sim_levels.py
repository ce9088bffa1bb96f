"""F0 -> F1 -> F2 in the simulator: truth in time order, warnings along the recursive chain."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from sim_helpers import pairs_scenario

from bluezone.cli import cli
from bluezone.errors import ConfigError
from bluezone.sim import engine
from bluezone.sim.engine import PairScore
from bluezone.sim.levels import levels_note, levels_summary, levels_table, true_levels, warned_levels
from bluezone.sim.scenario import scenario_from_mapping
from bluezone.sim.truth import Truth

DAY = 20_000 * 86400


def fake_run(contacts: list[tuple[int, int, float, float]], n: int = 4, days: int = 1) -> SimpleNamespace:
    """A run whose truth holds the given close contacts (a, b, from, to seconds after DAY), one step a minute."""
    truth = Truth(n, n, (2.0,), close_radius=2.0)
    for step in range(0, days * 1440):
        t = DAY + step * 60.0
        d = np.full((n, n), 10.0)
        np.fill_diagonal(d, 0.0)
        for a, b, lo, hi in contacts:
            if DAY + lo <= t < DAY + hi:
                d[a, b] = d[b, a] = 1.0
        truth.add(int(t // 86400) * 86400, d, np.zeros((n, n), bool), 60.0, now=t)
    scenario = SimpleNamespace(close_distance_m=2.0, close_contact_min=15.0, name="fake")
    return SimpleNamespace(truth=truth, scenario=scenario, senders=np.arange(n), scores={})


def test_f2_is_a_contact_of_a_contact_in_time_order() -> None:
    # 0 is F0; 1 meets 0 at 10:00; 2 meets 1 at 12:00 (after: F2); 3 meets 1 at 08:00 only (before: not F2)
    run = fake_run([(0, 1, 36000, 37800), (1, 2, 43200, 45000), (1, 3, 28800, 30600)])
    levels = true_levels(run, np.array([0]))
    assert levels.level.tolist() == [-1, 1, 2, 0]
    assert levels.exposed_day[1] == DAY


def test_levels_stop_at_f2_and_the_higher_level_wins() -> None:
    # 0 F0; 1 F1; 2 F2 via 1; 3 meets 2 afterwards (would be F3: nothing); 2 never counts as F1 of itself
    run = fake_run([(0, 1, 0, 1800), (1, 2, 3600, 5400), (2, 3, 7200, 9000)])
    assert true_levels(run, np.array([0])).level.tolist() == [-1, 1, 2, 0]
    # a phone that is both a contact of the F0 and of an F1 is F1
    run = fake_run([(0, 1, 0, 1800), (0, 2, 0, 1800), (1, 2, 3600, 5400)])
    assert true_levels(run, np.array([0])).level.tolist() == [-1, 1, 1, 0]


def test_warned_levels_follow_recursive_keys_from_the_exposure_day_on() -> None:
    run = fake_run([], days=2)
    close = PairScore(20.0, 20.0, True)
    run.scores = {"x": {(DAY, 0, 1): close, (DAY, 1, 2): close, (DAY + 86400, 1, 3): close, (DAY, 3, 2): close}}
    warned = warned_levels(run, np.array([0]), "x")
    assert warned.level.tolist() == [-1, 1, 2, 2]
    # an F1 exposed on the second day publishes nothing of the first
    run.scores = {"x": {(DAY + 86400, 0, 1): close, (DAY, 1, 2): close}}
    assert warned_levels(run, np.array([0]), "x").level.tolist() == [-1, 1, 0, 0]


def test_a_line_of_phones_end_to_end() -> None:
    """Phones 1.2 m apart in a line (seats shuffled): with an end phone as F0 its neighbour is F1 and
    the next one F2, in truth and (the scorer finds 1.2 m pairs) in bluezone's warnings."""
    result = engine.run(scenario_from_mapping(pairs_scenario(minutes=25.0)), seed=7, scorers=["bluezone"])
    (close,) = [m >= 15 for m in result.truth.minutes(2.0).values()]
    neighbours = {d: set(np.flatnonzero(close[d]).tolist()) - {d} for d in range(12)}
    end = min(d for d in range(12) if len(neighbours[d]) == 1)
    (f1,) = neighbours[end]
    (f2,) = neighbours[f1] - {end}
    truth = true_levels(result, np.array([end]))
    expected = [0] * 12
    expected[end], expected[f1], expected[f2] = -1, 1, 2
    assert truth.level.tolist() == expected
    warned = warned_levels(result, np.array([end]), "bluezone")
    assert warned.level[f1] == 1 and warned.level[f2] == 2
    far = [d for d in range(12) if not neighbours[d]]
    assert len(far) == 6 and all(warned.level[d] == 0 for d in far)  # the far line is never warned
    summary = levels_summary(result, 2, seed=1)
    assert set(summary["scorers"]["bluezone"]) == {"F1", "F2"}
    assert summary["true_levels_note"] == levels_note(summary["true_f1"], summary["true_f2"]) is not None  # a few
    assert summary == levels_summary(result, 2, seed=1)  # the F0 draw is seeded


def test_levels_need_every_phone_sending() -> None:
    data = pairs_scenario(minutes=2.0)
    data["devices"]["positives"] = 2
    result = engine.run(scenario_from_mapping(data), seed=1, scorers=["bluezone"])
    with pytest.raises(ConfigError, match="positives"):
        levels_summary(result, 1, seed=0)


@pytest.mark.parametrize(
    "scene, count, message",
    [
        ("wedding", 2, "wedding has 30 uploaders of 102 phones (give a copy of its file [devices] positives = \"all\", or a"
         " scenario that has it: bus, classroom,"),
        ("bus", 70, "F0 count must be 1-65 for bus, got 70"),
    ],
)
def test_simulate_refuses_levels_it_cannot_score_before_the_run(
    monkeypatch: pytest.MonkeyPatch, scene: str, count: int, message: str
) -> None:
    """`bluezone simulate wedding --levels 2` simulated the wedding for five minutes (load 12), then said its
    levels need every phone sending: now said before the run, with the scenarios that send from every phone."""

    def simulated(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scene was simulated before the refusal")

    monkeypatch.setattr(engine, "run", simulated)
    result = CliRunner().invoke(cli, ["simulate", scene, "--seed", "1", "--levels", str(count)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_levels_with_few_true_people_say_so() -> None:
    """docs' seed-1 levels table has true F1 5-10 and F2 0-7: figures that rest on a handful of people; the
    levels report says so beside them (None when both reach 10), level by level: with true F1 5 and F2 0 it
    said "recall is undefined" (F1's was not: one person moved it by 0.20) and that the levels "show the chain
    works", also where a scorer's recall was 0."""
    assert levels_note(10, 12) is None
    note = levels_note(5, 0) or ""
    assert note.startswith("true F1 5 and F2 0 (fewer than 10), from one seed and one draw of F0s:") and "\n" not in note
    assert "moves F1 recall by 0.20" in note and "F2 recall is undefined (no true F2" in note
    assert "chain works" not in note and "F1 recall is undefined" not in note
    both = levels_note(5, 6) or ""
    assert "moves F1 recall by 0.20 and F2 recall by 0.17" in both and "at these levels" in both
    one = levels_note(12, 4) or ""
    assert one.startswith("true F2 4 (fewer than 10)") and "moves F2 recall by 0.25" in one and "F1" not in one
    assert "at this level" in one
    table = levels_table({"f0": [1], "true_f1": 3, "true_f2": 12, "scorers": {}, "true_levels_note": levels_note(3, 12)})
    assert table.splitlines()[-1] == f"note: {levels_note(3, 12)}"
