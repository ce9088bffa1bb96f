"""The research scripts behind the recordings' nDCF tables (simulations/results/ndcf_decisions.txt,
bystander_context.txt) flag a one-minute window as `bluezone evaluate` does: theirs read ``weighted_minutes``,
which since f929ead is bluezone's chain ranking, and on main they said nDCF 1.000 for bluezone everywhere (nothing
flagged) and moved GAEN's, while `evaluate` and the committed files agreed (audit28)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bluezone.calibration.table import default_table
from bluezone.sim.datasets import load_dataset
from bluezone.sim.evaluate import (
    BEACON_TX_POWER,
    NOMINAL_TX_POWER,
    TC4TL_DISTANCES_M,
    TC4TL_SLACK_M,
    Minute,
    calibrations,
    distance_shift_db,
    evaluate,
    minutes_of,
)
from research_scripts import research

DATASETS = Path(__file__).resolve().parents[1] / "data" / "datasets"


def _minutes(root: Path, bystanders: bool) -> list[Minute]:
    """The one-minute windows as both scripts read them (calibrated, beacons at their measured power)."""
    dataset = load_dataset(root, bystanders=bystanders)
    links, _ = calibrations(dataset.recordings, default_table(), NOMINAL_TX_POWER, BEACON_TX_POWER.get(dataset.layout))
    return minutes_of(dataset.recordings, NOMINAL_TX_POWER, links)


def _evaluated(root: Path, bystanders: bool) -> dict:
    return evaluate(root, chains=20, bootstrap=0, bystanders=bystanders)["scorers"]


def _checked(costs: dict[str, dict[str, float]], report: dict) -> int:
    """Each script cost beside `evaluate`'s (rounded as it rounds); how many were compared."""
    compared = 0
    for name, by_distance in costs.items():
        for key, cost in by_distance.items():
            part, d = key.split("@")
            theirs = report[name][part][d]["ndcf"]
            if theirs is None:  # a distance with no window on one side of it: no cost to compare
                continue
            assert round(cost, 4) == pytest.approx(theirs, abs=1e-9), (name, key)
            compared += 1
    return compared


@pytest.mark.parametrize("dataset", ["ng_small", "mitll_small"])
def test_ndcf_decisions_costs_are_evaluates(dataset: str) -> None:
    script = research("ndcf_decisions")
    minutes = _minutes(DATASETS / dataset, bystanders=False)
    dist = np.array([m.distance_m for m in minutes])
    costs: dict[str, dict[str, float]] = {}
    for name in ("bluezone", "gaen"):
        costs[name] = {}
        for d in TC4TL_DISTANCES_M:
            within = dist <= d + TC4TL_SLACK_M
            if within.all() or not within.any():
                continue
            costs[name][f"ndcf@{d:.1f}"] = script.cost(within, script.detections(name, minutes, 0.0))
            costs[name][f"ndcf_per_distance@{d:.1f}"] = script.cost(within, script.detections(name, minutes, distance_shift_db(d)))
    assert _checked(costs, _evaluated(DATASETS / dataset, bystanders=False)) >= 4


@pytest.mark.parametrize("context", [False, True])
def test_bystander_context_costs_are_evaluates(context: bool) -> None:
    script = research("bystander_context")
    root = DATASETS / "mitll_small"
    minutes = _minutes(root, bystanders=True)
    dist = np.array([m.distance_m for m in minutes])
    costs: dict[str, dict[str, float]] = {}
    for name in ("bluezone", "gaen"):
        detected, _rank, per_d = script.scored(name, minutes, context)
        costs[name] = {}
        for d in TC4TL_DISTANCES_M:
            within = dist <= d + TC4TL_SLACK_M
            if within.all() or not within.any():
                continue
            costs[name][f"ndcf@{d:.1f}"] = script.cost(within, detected)
            costs[name][f"ndcf_per_distance@{d:.1f}"] = script.cost(within, per_d[f"{d:.1f}"])
    assert _checked(costs, _evaluated(root, bystanders=context)) >= 4
