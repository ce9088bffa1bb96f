"""A run's random streams: a radio setting moves nobody, one group's size moves no other group,
and a bus whose stops come at uneven gaps gives rides that are not whole multiples of one interval."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bluezone.sim import engine
from bluezone.sim.mobility import Bus, Crowd
from bluezone.sim.scenario import scenario_from_mapping
from bluezone.sim.streams import streams


def busy_room(**radio: Any) -> dict[str, Any]:
    """Seated people swaying, walkers, a queue: every kind of mover that draws as it moves."""
    return {
        "name": "busy",
        "duration_min": 4,
        "space": {"width_m": 12.0, "depth_m": 8.0},
        "devices": {"share": 1.0, "positives": "all", "carriage": {"hand": 0.5, "pocket": 0.5}},
        "groups": [
            {"kind": "seated", "people": 6, "layout": "grid", "origin": [1.0, 1.0], "rows": 2, "columns": 3,
             "spacing_m": [1.2, 1.2], "sway_m": 0.1},
            {"kind": "waypoint", "people": 5, "region": [0.5, 0.5, 11.5, 7.5], "speed_mps": [0.5, 1.0],
             "pause_s": [1, 20]},
            {"kind": "queue", "people": 6, "origin": [9.0, 1.0], "direction_deg": 90, "service_s": [20, 40]},
        ],
        "radio": radio,
    }


def where_everyone_was(scenario: dict[str, Any], seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    result = engine.run(scenario_from_mapping(scenario), seed, scorers=["gaen"], store="memory")
    seconds = np.stack([acc for _, acc in sorted(result.truth.seconds.items())])
    return seconds, [s["pos"] for s in result.scene["snapshots"]]


def test_a_radio_setting_moves_nobody() -> None:
    """One generator for crowd and radio moved the walkers whenever the radio drew a different number of
    packets; a what-if on one seed compared two crowds.  Now the truth (seconds within each radius, every
    pair) and the positions are the same to the last bit, while the radio did change."""
    near, pos_near = where_everyone_was(busy_room(exponent=1.6), seed=5)
    far, pos_far = where_everyone_was(busy_room(exponent=2.4, sensitivity_dbm=-80.0), seed=5)
    assert np.array_equal(near, far)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(pos_near, pos_far))
    a = engine.run(scenario_from_mapping(busy_room(exponent=1.6)), 5, scorers=["gaen"], store="memory")
    b = engine.run(scenario_from_mapping(busy_room(exponent=2.4, sensitivity_dbm=-80.0)), 5, scorers=["gaen"], store="memory")
    assert a.sightings != b.sightings  # the radio itself did change
    assert np.array_equal(a.devices.carriage, b.devices.carriage) and np.array_equal(a.devices.tx_error, b.devices.tx_error)


def test_one_groups_size_leaves_the_other_groups_moving_as_before() -> None:
    """Each group has a child stream of its own: five walkers more leave the seated and the queue alone."""
    base = busy_room()
    more = busy_room()
    more["groups"] = [dict(g) for g in base["groups"]]
    more["groups"][1]["people"] = 10
    a = Crowd(scenario_from_mapping(base), streams(3).crowd)
    b = Crowd(scenario_from_mapping(more), streams(3).crowd)
    for t in np.arange(0.0, 240.0, 1.0):
        pa, _, _ = a.step(float(t))
        pb, _, _ = b.step(float(t))
        assert np.array_equal(pa[:6], pb[:6])  # the seated, swaying
        assert np.array_equal(pa[11:], pb[16:], equal_nan=True)  # the queue


def test_streams_are_the_seeds_own() -> None:
    one, again, other = streams(4), streams(4), streams(5)
    assert one.crowd.random() == again.crowd.random()
    draws = {name: getattr(one, name).random() for name in ("phones", "uploaders", "keys", "shadowing", "packets", "cloud")}
    assert len(set(draws.values())) == len(draws)  # no two streams alike
    assert other.phones.random() != streams(4).phones.random()


def bus(stop_interval_s: float | list[float], seed: int = 1) -> Bus:
    sc = scenario_from_mapping({
        "name": "line 7", "duration_min": 60, "space": {"width_m": 2.4, "depth_m": 12.0},
        "devices": {"share": 1.0, "positives": "all"},
        "groups": [{"kind": "bus", "people": 120, "origin": [0.35, 1.0], "rows": 10, "columns": 4,
                    "spacing_m": [0.48, 0.8], "stop_interval_s": stop_interval_s, "ride_stops": [1, 12]}],
    })
    crowd = Crowd(sc, streams(seed).crowd)
    mover = crowd.groups[0]
    assert isinstance(mover, Bus)
    return mover


def test_uneven_stops_give_rides_of_any_length() -> None:
    """One interval made every ride, and every time two passengers spent together, a whole multiple of it
    (generated carriages: pairs at 13.6 minutes and none between that and 17.0); a range draws each gap."""
    fixed = bus(180)
    rode = fixed.spot >= 0
    assert np.all(np.mod(fixed.on[rode], 180) == 0) and np.all(np.mod(fixed.off[rode], 180) == 0)
    uneven = bus([90, 270])
    rode = uneven.spot >= 0
    ride = uneven.off[rode] - uneven.on[rode]
    assert np.mod(ride, 180).astype(bool).mean() > 0.9  # rides are not multiples of the mean gap
    gaps = np.diff(np.unique(np.r_[uneven.on[rode], uneven.off[rode]]))
    assert gaps.min() >= 90 - 1e-9 and gaps.std() > 20  # (a stop where nobody gets on or off joins two gaps)


@pytest.mark.parametrize("interval", [180, [90, 270]])
def test_the_bus_still_stops_within_the_run(interval: float | list[float]) -> None:
    mover = bus(interval)
    rode = mover.spot >= 0
    assert np.all(mover.on[rode] < 3600) and np.all(mover.off[rode] > mover.on[rode])
