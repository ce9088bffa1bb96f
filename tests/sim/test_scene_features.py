"""Scene features of issue 13: per-group phones, heights and storeys, radio zones, passers-by,
queues with several desks, standing areas, and a minimum spacing between people."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import pairs_scenario

from bluezone.errors import ConfigError
from bluezone.sim import engine, report
from bluezone.sim.catalogue import find_scenario
from bluezone.sim.channel import CARRIAGES, LinkShadowing, make_devices
from bluezone.sim.mobility import Crowd, hex_spots, keep_apart
from bluezone.sim.scenario import HEAD_HEIGHT_M, PHONE_HEIGHT_M, load_scenario, scenario_from_mapping
from bluezone.sim.streams import streams

QUIET = {"fast_sd_db": 0.0, "slow_sd_db": 0.0, "link_sd_db": 0.0, "body_loss_db": 0.0}


def scene(groups: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "duration_min": 2,
        "space": {"width_m": 20.0, "depth_m": 10.0},
        "devices": {"share": 1.0, "positives": "all", "carriage": {"hand": 1.0}},
        "groups": groups,
    }
    data.update(top)
    return data


def line(people: int, origin: list[float], **extra: Any) -> dict[str, Any]:
    return {"kind": "seated", "people": people, "layout": "line", "origin": origin, "rows": 1, "columns": people,
            "spacing_m": [1.0, 1.0], "sway_m": 0.0, **extra}


def mean_rssi(data: dict[str, Any], t: float = 0.0) -> tuple[np.ndarray, Any]:
    """Mean RSSI (senders x devices) of one quiet step, from received packets, and the run's pieces."""
    data["devices"].setdefault("models", [{"name": "exact", "unit_sd_db": 0.0}])
    sc = scenario_from_mapping(data)
    rng = np.random.default_rng(0)
    crowd = Crowd(sc, rng)
    devices = make_devices(sc, rng, crowd.posture, crowd.storey)
    channel = LinkShadowing(sc, devices, np.arange(len(devices.person)), rng, rng)
    pos, heading, _ = crowd.step(t)
    packets, d, separated = channel.step(t, 60.0, pos[devices.person], heading[devices.person], sc.start)
    rssi = np.full(d.shape, np.nan)
    rssi[packets.tx, packets.rx] = packets.rssi
    return rssi, (sc, devices, d, separated)


# --- per-group phones ---------------------------------------------------------------------------


def test_a_group_carries_its_own_models_and_carriage() -> None:
    data = scene(
        [line(20, [1, 1]), line(20, [1, 5], models={"iphone": 1.0}, carriage={"table": 1.0}, phone_share=1.0)],
        devices={"share": 0.5, "carriage": {"hand": 1.0},
                 "models": [{"name": "android", "share": 1.0}, {"name": "iphone", "share": 0.0, "tx_error_db": -4}]},
    )
    sc = scenario_from_mapping(data)
    devices = make_devices(sc, np.random.default_rng(3))
    staff = devices.person >= 20
    assert staff.sum() == 20  # everyone of the group carries a phone; about half of the others
    assert 3 <= (~staff).sum() <= 17
    assert set(devices.model[staff].tolist()) == {1} and set(devices.model[~staff].tolist()) == {0}
    assert set(devices.carriage[staff].tolist()) == {CARRIAGES.index("table")}
    assert set(devices.carriage[~staff].tolist()) == {CARRIAGES.index("hand")}
    assert np.all(np.abs(devices.tx_error[staff] + 4) < 12)


def test_scenarios_without_group_phones_draw_as_before() -> None:
    """Per-group draws come after the scenario-wide ones: a scenario without them is unchanged."""
    sc = scenario_from_mapping(pairs_scenario())
    rng = np.random.default_rng(5)
    got = make_devices(sc, rng)
    ref = np.random.default_rng(5)
    carries = np.flatnonzero(ref.random(sc.people) < 1.0)
    ref.choice(1, len(carries), p=[1.0])
    ref.choice(1, len(carries), p=[1.0])
    tx = ref.normal(0, 1, len(carries)) * 2.0
    assert np.array_equal(got.person, carries) and np.array_equal(got.tx_error, tx)
    assert got.phone_z is None  # a flat scenario has no heights


def test_nobody_who_moves_keeps_a_phone_on_a_table() -> None:
    """Scene-wide carriage shares reached walkers too, whose phone then walked with a table's radio
    (generated room seed 45: such a walker in 11 of bluezone's 19 false alarms). A mover now carries it
    as the scene's other shares say (in hand when "table" is all there is); the seated keep theirs."""
    walkers = {"kind": "waypoint", "people": 40, "region": [10, 1, 19, 9]}
    only = scene([line(3, [1, 1]), walkers], devices={"share": 1.0, "positives": "all", "carriage": {"table": 1.0}})
    devices = make_devices(scenario_from_mapping(only), np.random.default_rng(1))
    names = np.array(CARRIAGES)[devices.carriage]
    assert set(names[:3]) == {"table"} and set(names[3:]) == {"hand"}
    mixed = {**only, "devices": {**only["devices"], "carriage": {"table": 0.5, "pocket": 0.3, "bag": 0.2}}}
    devices = make_devices(scenario_from_mapping(mixed), np.random.default_rng(1))
    names = np.array(CARRIAGES)[devices.carriage[3:]]
    assert set(names) == {"pocket", "bag"}  # both drawn, by their shares, none left on a table


def test_a_moving_group_of_its_own_cannot_put_phones_on_a_table() -> None:
    walkers = {"kind": "waypoint", "people": 4, "carriage": {"table": 0.5, "hand": 0.5}}
    with pytest.raises(ConfigError, match=r"#1.carriage: a waypoint group moves"):
        scenario_from_mapping(scene([walkers]))
    scenario_from_mapping(scene([line(3, [1, 1], carriage={"table": 1.0})]))  # the seated may


@pytest.mark.parametrize("name", ["bus", "classroom", "clinic", "market", "office", "wall", "wedding",
                                  "streetfood", "restaurant", "storeys", "tram"])
def test_no_shipped_scene_walks_a_phone_on_a_table(name: str) -> None:
    """At seed 1 streetfood had 60 passers-by, restaurant 49 people queueing or passing, storeys.toml 2
    walkers with a table phone: none now."""
    sc = load_scenario(find_scenario(name))
    crowd, devices = engine.people(sc, streams(1))
    kinds = np.repeat([g.kind for g in sc.groups], [g.people for g in sc.groups])[devices.person]
    assert not np.any((kinds != "seated") & (devices.carriage == CARRIAGES.index("table")))


def test_unknown_group_model_and_bad_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no \\[\\[devices.models\\]\\] named nokia"):
        scenario_from_mapping(scene([line(2, [1, 1], models={"nokia": 1.0})]))
    twice = {"models": [{"name": "a"}, {"name": "a", "tx_error_db": 3}]}
    with pytest.raises(ConfigError, match="a is named twice"):
        scenario_from_mapping(scene([line(2, [1, 1], models={"a": 1.0})], devices=twice))
    scenario_from_mapping(scene([line(2, [1, 1])], devices=twice))  # fine while no group picks by name
    with pytest.raises(ConfigError, match="not one of"):
        scenario_from_mapping(scene([line(2, [1, 1], posture="lying")]))
    with pytest.raises(ConfigError, match="does not use it"):
        scenario_from_mapping(scene([line(2, [1, 1], desks=2)]))
    with pytest.raises(ConfigError, match="does not use it"):
        scenario_from_mapping(scene([{"kind": "passing", "people": 2, "stay_min": [1, 2]}]))
    # a passer-by at 0 m/s never walks through: stood at the entry for good (and divided by 0)
    with pytest.raises(ConfigError, match="speed_mps: passers-by"):
        scenario_from_mapping(scene([{"kind": "passing", "people": 2, "speed_mps": [0, 1]}]))
    with pytest.raises(ConfigError, match="two ends must differ"):
        scenario_from_mapping(scene([{"kind": "passing", "people": 2, "path": [[1, 1], [1, 1]]}]))
    with pytest.raises(ConfigError, match="needs a region"):
        scenario_from_mapping(scene([line(2, [1, 1])], space={"zones": [{"exponent": 1.0}]}))
    with pytest.raises(ConfigError, match="x0 < x1"):
        scenario_from_mapping(scene([line(2, [1, 1])], space={"zones": [{"region": [5, 0, 1, 3]}]}))
    with pytest.raises(ConfigError, match="unknown key"):
        scenario_from_mapping(scene([line(2, [1, 1])], space={"zones": [{"region": [0, 0, 1, 3], "breakpoint_m": 2}]}))
    with pytest.raises(ConfigError, match="finite"):
        scenario_from_mapping(scene([line(2, [1, 1])], space={"slab_loss_db": math.nan}))


# --- heights and storeys ------------------------------------------------------------------------


def test_storeys_add_a_slab_and_separate() -> None:
    groups = [line(2, [1, 1], storey=0), line(2, [1, 1], storey=1)]
    rssi, (sc, devices, d, separated) = mean_rssi(
        scene(groups, radio=QUIET, space={"storey_height_m": 3.0, "slab_loss_db": 15.0})
    )
    assert sc.heights
    # person 0 downstairs and one upstairs sit on the same spot (each group draws its seats): 3 m apart, through the slab
    above = 2 + int(np.argmin(d[0, 2:]))
    assert d[0, above] == pytest.approx(3.0) and separated[0, above] and not separated[0, 1]
    phone_dz = devices.phone_z[above] - devices.phone_z[0]
    assert phone_dz == pytest.approx(3.0)
    same_floor = -24 - (50 + 10 * 2 * math.log10(1.0))
    assert rssi[0, 1] == pytest.approx(same_floor, abs=0.6)
    assert rssi[0, above] == pytest.approx(-24 - (50 + 20 * math.log10(3.0) + 15.0), abs=0.6)


def test_postures_set_heights_of_phones_and_heads() -> None:
    groups = [line(1, [1, 1], posture="standing"), line(1, [2, 1], posture="low", carriage={"pocket": 1.0})]
    _, (sc, devices, d, _) = mean_rssi(scene(groups, radio=QUIET))
    assert devices.phone_z.tolist() == [PHONE_HEIGHT_M["standing"]["hand"], PHONE_HEIGHT_M["low"]["pocket"]]
    head_dz = HEAD_HEIGHT_M["standing"] - HEAD_HEIGHT_M["low"]
    assert d[0, 1] == pytest.approx(math.hypot(1.0, head_dz))  # the truth: between heads


# --- radio zones --------------------------------------------------------------------------------


def test_a_zone_has_its_own_radio_and_a_shell() -> None:
    groups = [line(2, [1, 1]), line(1, [1, 6])]  # two in the carriage 1 m apart, one outside 5 m away
    zone = {"region": [0, 0, 10, 3], "exponent": 0.5, "attenuation_1m_db": 55.0, "shell_loss_db": 10.0}
    rssi, _ = mean_rssi(scene(groups, radio=QUIET, space={"zones": [zone]}))
    assert rssi[0, 1] == pytest.approx(-24 - 55.0, abs=0.6)  # inside: the zone's radio
    assert rssi[1, 0] == pytest.approx(-24 - 55.0, abs=0.6)
    outside = -24 - (50 + 20 * math.log10(5.0) + 10.0)  # across the shell: the scenario's radio plus the shell
    assert rssi[0, 2] == pytest.approx(outside, abs=0.6)


def test_zone_shadowing_follows_the_zone() -> None:
    groups = [line(6, [1, 1]), line(6, [1, 7])]
    zone = {"region": [0, 0, 20, 3], "link_sd_db": 8.0, "slow_sd_db": 0.0}
    rssi, (_, _, d, _) = mean_rssi(scene(groups, radio={**QUIET}, space={"zones": [zone]}))
    off = ~np.eye(6, dtype=bool)
    expected = -24 - 50 - 20 * np.log10(np.where(np.isfinite(d), d, 1.0))
    inside, outside = (rssi - expected)[:6, :6][off], (rssi - expected)[6:, 6:][off]
    assert np.std(inside) > 4  # the zone's static shadowing, SD 8 dB
    assert np.all(np.abs(outside) <= 0.6)  # the scenario's quiet radio


# --- mobility -----------------------------------------------------------------------------------


def test_passers_by_walk_straight_through_and_leave() -> None:
    group = {"kind": "passing", "people": 30, "path": [[0, 5], [20, 5]], "lane_m": 1.0, "speed_mps": [1, 1],
             "arrive_min": [0, 1]}
    sc = scenario_from_mapping(scene([group], duration_min=2))
    crowd = Crowd(sc, np.random.default_rng(1))
    seconds = np.zeros(30)
    for t in np.arange(0, 120, 1.0):
        pos, heading, present = crowd.step(t)
        seconds += present
        assert np.all(np.abs(pos[present, 1] - 5) <= 0.5 + 1e-9)
        assert np.all((pos[present, 0] >= -1e-9) & (pos[present, 0] <= 20 + 1e-9))
        assert np.allclose(np.abs(np.cos(heading[present])), 1.0)
    assert np.all(np.abs(seconds - 20) <= 1)  # 20 m at 1 m/s, once, then gone
    assert not crowd.step(119.0)[2].any()  # the last entered by 60 s and left by 80 s
    both = np.sign(np.cos(crowd.groups[0].heading))
    assert (both > 0).any() and (both < 0).any()  # both ways along the path


def test_queue_with_several_desks() -> None:
    group = {"kind": "queue", "people": 30, "origin": [10, 2], "direction_deg": 90, "desks": 3,
             "desk_spacing_m": 2.0, "service_s": [60, 60], "arrive_min": [0, 0], "sway_m": 0.0}
    sc = scenario_from_mapping(scene([group], duration_min=10))
    crowd = Crowd(sc, np.random.default_rng(1))
    pos, _, present = crowd.step(30.0)
    q = crowd.groups[0]
    served = (q.start <= 30.0) & (30.0 < q.end)
    assert served.sum() == 3  # three served at once, at three desks across the head of the line
    assert sorted(pos[served, 0].round(6).tolist()) == [8.0, 10.0, 12.0]
    assert np.allclose(pos[served, 1], 2.0)
    assert present.sum() == 30 and np.all(pos[present & ~served, 1] > 2.0)


def test_bus_standing_areas_are_filled_apart() -> None:
    spots = hex_spots((0.0, 0.0, 2.0, 2.0), 0.5)
    gaps = np.hypot(*(spots[:, None, :] - spots[None, :, :]).transpose(2, 0, 1))
    assert len(spots) >= 12 and gaps[~np.eye(len(spots), dtype=bool)].min() >= 0.5 - 1e-9
    assert np.all((spots >= 0) & (spots <= 2))
    bus = {"kind": "bus", "people": 60, "origin": [0.4, 3.0], "rows": 2, "columns": 4, "spacing_m": [0.5, 0.8],
           "standing_areas": [[0, 0, 2.4, 2.5]], "stop_interval_s": 60, "ride_stops": [3, 3], "sway_m": 0.0,
           "posture": "auto"}
    sc = scenario_from_mapping(scene([bus], duration_min=5))
    crowd = Crowd(sc, np.random.default_rng(2))
    standing = ~crowd.groups[0].seated & (crowd.groups[0].spot >= 0)
    assert standing.any()
    pos, _, present = crowd.step(90.0)
    on = present & standing
    assert np.all(pos[on, 1] <= 2.5) and np.all(pos[on, 0] <= 2.4)
    assert set(crowd.posture[crowd.groups[0].seated].tolist()) == {1}  # seated on seats, standing elsewhere
    assert set(crowd.posture[standing].tolist()) == {0}


def test_keep_apart_pushes_walkers_not_the_seated_nor_through_walls() -> None:
    from bluezone.sim.scenario import Wall

    pos = np.array([[1.0, 1.0], [1.1, 1.0], [1.0, 1.15], [5.0, 5.0], [4.95, 5.0], [np.nan, np.nan]])
    movable = np.array([True, True, True, False, True, True])
    storey = np.zeros(6, np.int64)
    out = keep_apart(pos, movable, storey, 0.5)
    gaps = np.hypot(*(out[:5, None, :] - out[None, :5, :]).transpose(2, 0, 1))
    assert gaps[~np.eye(5, dtype=bool)].min() >= 0.4  # a few rounds: nearly the full spacing
    assert np.array_equal(out[3], pos[3]) and np.isnan(out[5]).all()
    assert out[4, 0] == pytest.approx(4.5)  # the seated one stays, the walker takes the whole push
    wall = Wall(start=(4.7, 0.0), end=(4.7, 10.0))
    blocked = keep_apart(pos, movable, storey, 0.5, (wall,))
    assert blocked[4, 0] == 4.95  # that push would cross the wall: dropped
    other = keep_apart(pos, movable, np.array([0, 1, 0, 0, 0, 0]), 0.5)
    assert np.array_equal(other[1], pos[1]) or np.hypot(*(other[1] - other[0])) < 0.5  # another storey: no push from 0


def test_keep_apart_separates_two_people_on_one_spot() -> None:
    # no line between them: both were pushed the same way and stayed on one spot, 1 m further on
    pos = np.array([[1.0, 1.0], [1.0, 1.0], [3.0, 3.0], [3.0, 3.0]])
    out = keep_apart(pos, np.array([True, True, True, False]), np.zeros(4, np.int64), 0.5)
    assert np.hypot(*(out[1] - out[0])) == pytest.approx(0.5)
    assert np.hypot(*(out[0] + out[1]) / 2 - pos[0]) == pytest.approx(0.0)  # apart, not carried off
    assert np.array_equal(out[3], pos[3]) and np.hypot(*(out[2] - out[3])) == pytest.approx(0.5)  # the seated one stays


def test_min_spacing_in_a_crowded_room_end_to_end() -> None:
    group = {"kind": "waypoint", "people": 40, "region": [0, 0, 3, 3], "pause_s": [0, 5]}
    data = scene([group], duration_min=1, space={"width_m": 3.0, "depth_m": 3.0, "min_spacing_m": 0.4})
    sc = scenario_from_mapping(data)
    crowd = Crowd(sc, np.random.default_rng(4))
    pos, _, _ = crowd.step(10.0)
    gaps = np.hypot(*(pos[:, None, :] - pos[None, :, :]).transpose(2, 0, 1))[~np.eye(40, dtype=bool)]
    assert np.quantile(gaps, 0.01) > 0.25
    r = report.summarise(engine.run(sc, seed=1, store="memory"))
    assert r["phones"] == 40


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(0, 4), st.floats(0, 4), st.booleans(), st.integers(0, 1)), min_size=2, max_size=25),
    spacing=st.floats(0.2, 1.0),
)
def test_keep_apart_invariants(points: list[tuple[float, float, bool, int]], spacing: float) -> None:
    """Seated people never move, nobody moves further than the pushes allow, nothing becomes NaN,
    and nobody crosses a wall."""
    from bluezone.sim.scenario import Wall

    pos = np.array([[x, y] for x, y, _, _ in points])
    movable = np.array([m for _, _, m, _ in points])
    storey = np.array([s for _, _, _, s in points], np.int64)
    wall = Wall(start=(2.0, -1.0), end=(2.0, 5.0))
    out = keep_apart(pos, movable, storey, spacing, (wall,))
    assert np.isfinite(out).all()
    assert np.array_equal(out[~movable], pos[~movable])
    moved = np.hypot(*(out - pos).T)
    assert np.all(moved <= 4 * spacing * len(points) + 1e-9)
    side = lambda p: np.sign(p[:, 0] - 2.0)  # noqa: E731
    crossed = (side(pos) * side(out)) < 0
    assert not crossed.any()
