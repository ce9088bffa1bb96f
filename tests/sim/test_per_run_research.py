"""est21's research on issue 13's per-run F1 losses: clinic_ceiling.py's channel that keeps the hidden losses must not
change the run it watches."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
