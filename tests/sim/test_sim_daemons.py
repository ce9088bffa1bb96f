"""Small crowd through real asyncio daemons on the emulated Air, with the simulator's channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bluezone.keyformat.keys import keys_from_daily
from bluezone.matching.check import check_sightings
from bluezone.matching.scoring import get_scorer
from bluezone.proximity.backends.emulated import Links
from bluezone.proximity.emulation import run_emulated
from bluezone.proximity.store import SightingStore
from bluezone.sim.airchannel import ScenarioChannel
from bluezone.sim.scenario import RadioModel, Wall

START = 1_780_473_600.0 + 10 * 3600  # 2026-06-03 10:00 UTC


def test_real_daemons_with_the_sim_channel(tmp_path: Path) -> None:
    # A and B hold their phones 1 m apart for 25 minutes; C, 6 m away, has hers in a pocket.
    channel = ScenarioChannel(RadioModel(), carriage=["hand", "hand", "pocket"], seed=5)
    dbs = run_emulated({"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (6.0, 0.0)}, tmp_path, START, 25 * 60, seed=5, channel=channel)
    with SightingStore.open(dbs["a"]) as a:
        keys = keys_from_daily(a.daily_keys())
    assert len(keys) == 1
    for name in ("bluezone", "gaen"):
        scorer = get_scorer(name)
        verdict = {}
        for node in ("b", "c"):
            with SightingStore.open(dbs[node]) as store:
                exposures = check_sightings(keys, store.sightings(), scorer)
            verdict[node] = any(e.score.close_contact for e in exposures)
        assert verdict == {"b": True, "c": False}, name


def test_channel_model_pieces() -> None:
    wall = Wall((0.5, -1.0), (0.5, 1.0), loss_db=20.0)
    quiet = RadioModel(fast_sd_db=0.0, slow_sd_db=0.0, link_sd_db=0.0)
    n = 4
    links = Links(
        time=np.full(n, START),
        tx=np.array([0, 0, 1, 2]),
        rx=np.array([1, 1, 0, 0]),
        tx_pos=np.zeros((n, 2)),
        rx_pos=np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 1.0], [0.0, 1.0]]),
        tx_power=np.full(n, -24.0),
    )
    rssi = ScenarioChannel(quiet, carriage=["hand", "hand", "pocket"]).rssi(links, np.random.default_rng(0))
    assert rssi[0] == pytest.approx(-74.0)  # 1 m, hands: -24 - 50
    assert rssi[1] == pytest.approx(-94.0)  # 10 m, exponent 2
    assert rssi[3] == pytest.approx(-83.0)  # pocket on one side at 1 m: 9 dB more
    walled = ScenarioChannel(quiet, carriage=["hand", "hand", "hand"], walls=[wall]).rssi(links, np.random.default_rng(0))
    assert walled[0] == pytest.approx(-94.0) and walled[2] == pytest.approx(-74.0)
    with pytest.raises(ValueError):
        ScenarioChannel(quiet, carriage=["sock"])
