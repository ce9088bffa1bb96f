"""est21's research on issue 13's per-run F1 losses: per_run_goal.py must read the committed fresh-seed figures it
claims to read, and clinic_ceiling.py's channel that keeps the hidden losses must not change the run it watches."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from bluezone.sim import engine
from bluezone.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def research(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "research"))  # the scripts import each other as scripts
    spec = importlib.util.spec_from_file_location(name, ROOT / "research" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_per_run_goal_reads_all_280_committed_fresh_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    goal = research("per_run_goal", monkeypatch)
    sets = goal.load()
    assert list(sets) == ["72-79", "80-87", "88-95", "96-103", "104-111"]
    runs = [r for rs in sets.values() for r in rs]
    assert len(runs) == 280 and len({r.scene for r in runs}) == 7
    # the scene means ranking_rule.py committed for 104-111 (5 digits); per-run margins are printed to 3
    for scene, mean in (("clinic", 0.02822), ("wall", 0.14488), ("classroom", 0.03911), ("bus", 0.12424)):
        assert np.mean([r.margin for r in sets["104-111"] if r.scene == scene]) == pytest.approx(mean, abs=0.0006)
    below = {(r.scene, r.seed) for r in runs if r.margin < 0}
    assert {("wall", 104), ("wall", 110), ("classroom", 108), ("clinic", 104), ("wall", 77)} <= below
    # 88-95: the span verdict's block (the default since the sixteenth session) unless --as-shipped
    clinic94 = {block: next(r for r in goal.load(as_shipped=block)["88-95"] if (r.scene, r.seed) == ("clinic", 94))
                for block in (False, True)}
    assert clinic94[False].margin == pytest.approx(0.033, abs=0.001)
    assert clinic94[True].margin == pytest.approx(-0.004, abs=0.001)
    # a run's own bootstrap kept where committed (72-95), none after
    assert all(r.sd is not None and r.sd > 0 for r in sets["72-79"]) and all(r.sd is None for r in sets["96-103"])


def test_per_run_goal_refuses_a_file_missing_a_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    goal = research("per_run_goal", monkeypatch)
    for _, name, _ in goal.SETS:
        text = (goal.RESULTS / name).read_text()
        if name.endswith("104-111.txt"):
            text = "\n".join(line for line in text.splitlines() if not line.startswith("wall_110"))
        (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit, match="55 runs parsed"):
        goal.load(tmp_path)


def test_normal_inverse_undoes_the_normal(monkeypatch: pytest.MonkeyPatch) -> None:
    goal = research("per_run_goal", monkeypatch)
    for x in (-2.5, -0.3, 0.0, 1.0, 2.326):
        assert goal.phi_inv(goal.phi(x)) == pytest.approx(x, abs=1e-9)
    assert goal.phi(1.959964) == pytest.approx(0.975, abs=1e-6)


def test_the_channel_keeping_hidden_losses_changes_no_verdict_and_sees_the_wall(monkeypatch: pytest.MonkeyPatch) -> None:
    ceiling = research("clinic_ceiling", monkeypatch)
    scenario = load_scenario(ROOT / "simulations" / "wall.toml").with_overrides(duration_min=40)
    plain = engine.run(scenario, seed=11, scorers=["gaen", "bluezone"], store="memory")
    monkeypatch.setattr(engine, "LinkShadowing", ceiling.HiddenLosses)
    kept = engine.run(scenario, seed=11, scorers=["gaen", "bluezone"], store="memory")
    assert kept.scores == plain.scores and kept.sightings == plain.sightings
    ch = ceiling.HiddenLosses.last
    near = ch.near_steps > 0
    wall = ch.wall[near] / ch.near_steps[near]
    body = ch.body[near] / ch.near_steps[near]
    carriage = ch.carriage[near] / ch.near_steps[near]
    assert ((wall >= 0) & (wall <= 6.0 + 1e-9)).all() and (wall > 0).any() and (wall == 0).any()  # the one 6-dB wall
    most = 2 * scenario.radio.body_loss_db  # each end's body, all of it with a pocket (the carrier's back to the other)
    assert ((body >= -1e-9) & (body <= most + 1e-9)).all() and (body > 0).any()
    assert (carriage >= -1e-9).all() and (carriage > 0).any()
