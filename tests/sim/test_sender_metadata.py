"""research/sender_metadata.py must give each judged link its real sender's phone, or its bound means nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bluezone.sim import engine
from bluezone.sim.scenario import CARRIAGES, load_scenario

from research_scripts import research

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scene,seed", [("wedding", 3), ("classroom", 5)])  # a count of uploaders, and "all"
def test_senders_are_the_engines_uploaders(scene: str, seed: int) -> None:
    """The crowd, the phones and the uploaders each come from a stream of the run's: a re-draw from
    another stream (or the run's seed itself) would pin other phones' carriages on the keys."""
    module = research("sender_metadata")
    scenario = load_scenario(ROOT / "simulations" / f"{scene}.toml").with_overrides(duration_min=6)
    result = engine.run(scenario, seed=seed, scorers=["gaen"], store="memory")
    s = module.senders_of(scenario, seed)
    assert np.array_equal(s.device, result.senders)
    assert np.array_equal(s.carriage, result.devices.carriage[result.senders])
    assert np.array_equal(s.tx_error, result.devices.tx_error[result.senders])
    # nominal loss per class: the scene's carriage loss plus half its body loss times the class's share
    assert s.nominal[CARRIAGES.index("pocket")] == pytest.approx(9.0 + 8.0 * 1.0 / 2)
    assert s.nominal[CARRIAGES.index("hand")] == pytest.approx(0.0 + 8.0 * 0.6 / 2)
