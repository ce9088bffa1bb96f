"""Procedural scenes: random rooms, crowds, carriages and storeys drawn from a seed.

A guard against defaults that fit the hand-written scenes only: ``generate("room", 7)``
draws a room's size, seating, walls, phones and carriage from seed 7 and returns a checked
``Scenario`` (the same checks as a TOML file; ``scene_mapping`` gives the TOML-shaped dict, which
``bluezone simulate --generate room --seed 7 --save-scene FILE`` writes out).  The same kind and
seed always give the same scene.  Ranges come from the radio facts the model rests on
(docs/radio-model.md): path-loss exponents between the indoor iPhone (1.2) and open Android
(2.2) fits, metal vehicles at 0.6-1.0 with 4-6 dB per-link shadowing (Leith & Farrell), model
residuals within the 14 dB measured between the two phones of one pair, concrete slabs at
10-14 dB (ITU-R P.1238).  Sizes stay small enough for a run of well under a minute.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.errors import ConfigError
from bluezone.sim.scenario import Scenario, scenario_from_mapping

KINDS = ("room", "crowd", "carriage", "storeys")
_SALT = {kind: i + 1 for i, kind in enumerate(KINDS)}
#: Rooms, flats and carriages keep people who move this far apart (shoulder to shoulder): without it a
#: walker in a generated room passed within 5 mm of a seated person, inside them.
SPACING_M = 0.45


def generate(kind: str, seed: int) -> Scenario:
    """The scene of ``kind`` drawn from ``seed`` (a ConfigError names the kinds for a wrong one)."""
    return scenario_from_mapping(scene_mapping(kind, seed), where=f"generated {kind} (seed {seed})")


def scene_mapping(kind: str, seed: int) -> dict[str, Any]:
    """The scene as a TOML-shaped dict (what a scenario file would hold)."""
    if kind not in _SALT:
        raise ConfigError(f"--generate: {kind!r} is not one of {', '.join(KINDS)}")
    if seed < 0:
        raise ConfigError(f"--seed: a generated scene needs a seed >= 0, got {seed}")
    # the scene's own stream, apart from the run's: the same scene can be run with any seed
    rng = np.random.default_rng([seed, _SALT[kind], 0x5CE9E])
    return _BUILDERS[kind](rng, seed)


def _u(rng: np.random.Generator, low: float, high: float, digits: int = 2) -> float:
    return round(float(rng.uniform(low, high)), digits)


def _i(rng: np.random.Generator, low: int, high: int) -> int:
    """A whole number in [low, high]."""
    return int(rng.integers(low, high + 1))


def _devices(rng: np.random.Generator, carriages: tuple[str, ...], positives: int | str = "all") -> dict[str, Any]:
    """Phones: 1-4 models with residuals within what was measured, carriage shares at random."""
    count = _i(rng, 1, 4)
    shares = rng.dirichlet(np.ones(count))
    models = [
        {
            "name": f"model-{i + 1}",
            "share": round(round(float(s), 3) + 0.001, 3),
            "tx_error_db": _u(rng, -6, 6, 1),
            "rx_error_db": _u(rng, -6, 6, 1),
            "unit_sd_db": _u(rng, 1, 4, 1),
        }
        for i, s in enumerate(shares)
    ]
    carriage = {c: round(round(float(s), 3) + 0.001, 3) for c, s in zip(carriages, rng.dirichlet(np.ones(len(carriages))))}
    return {"share": _u(rng, 0.7, 1.0), "positives": positives, "carriage": carriage, "models": models}


def _room(rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """A room of people seated in rows, at tables or along a wall, a few walking; sometimes a
    second room behind a wall (neighbours who are never in contact)."""
    width, depth = _u(rng, 7, 18, 1), _u(rng, 6, 14, 1)
    split = rng.random() < 0.4
    inner = round(width * _u(rng, 0.55, 0.75), 1) if split else width  # the main room's far side
    groups: list[dict[str, Any]] = []
    layout = str(rng.choice(["grid", "tables", "line"]))
    posture = str(rng.choice(["seated", "seated", "low"]))
    duration = _i(rng, 30, 120)
    stay = [round(duration * 0.6), duration]
    if layout == "grid":
        sx, sy = _u(rng, 0.8, 2.6), _u(rng, 0.9, 2.6)
        columns = max(int((inner - 1.5) // sx) + 1, 2)
        rows = max(int((depth - 1.5) // sy) + 1, 2)
        seats = rows * columns
        groups.append({"name": "seated in rows", "kind": "seated", "layout": "grid", "origin": [1.0, 1.0],
                       "rows": rows, "columns": columns, "spacing_m": [sx, sy], "facing_deg": 90,
                       "people": _i(rng, max(seats // 2, 2), seats), "posture": posture,
                       "arrive_min": [0, 5], "stay_min": stay})
    elif layout == "tables":
        per = _i(rng, 4, 10)
        radius = round(0.25 + 0.1 * per, 2)
        sx, sy = _u(rng, 2 * radius + 1.0, 2 * radius + 2.5), _u(rng, 2 * radius + 1.0, 2 * radius + 2.5)
        columns = max(int((inner - 2 * radius - 1) // sx) + 1, 1)
        rows = max(int((depth - 2 * radius - 1) // sy) + 1, 1)
        seats = rows * columns * per
        groups.append({"name": "at tables", "kind": "seated", "layout": "tables",
                       "origin": [radius + 0.6, radius + 0.6], "rows": rows, "columns": columns,
                       "spacing_m": [sx, sy], "seats_per_table": per, "table_radius_m": radius,
                       "facing_deg": "table", "people": _i(rng, max(seats // 2, 2), seats), "posture": posture,
                       "arrive_min": [0, 15], "stay_min": stay})
    else:
        spacing = _u(rng, 0.5, 1.2)
        columns = max(int((inner - 1.0) // spacing), 2)
        groups.append({"name": "chairs along a wall", "kind": "seated", "layout": "line", "origin": [0.5, 0.8],
                       "rows": 1, "columns": columns, "spacing_m": [spacing, spacing], "direction_deg": 0,
                       "facing_deg": 90, "people": _i(rng, max(columns // 2, 2), columns), "posture": posture,
                       "arrive_min": [0, duration * 0.7], "stay_min": [10, duration * 0.5]})
        if rng.random() < 0.5:  # a second row facing the first across the room
            groups.append({**groups[0], "name": "chairs along the other wall", "origin": [0.5, depth - 0.8],
                           "facing_deg": -90})
    groups.append({"name": "walking about", "kind": "waypoint", "people": _i(rng, 1, 6), "posture": "standing",
                   "region": [0.3, 0.3, inner - 0.3, depth - 0.3], "speed_mps": [0.3, 1.0], "pause_s": [10, 300]})
    space: dict[str, Any] = {"width_m": width, "depth_m": depth, "min_spacing_m": SPACING_M}
    if split:
        space["walls"] = [{"start": [inner, 0.0], "end": [inner, depth], "loss_db": _u(rng, 3, 12, 1),
                           "separates": True}]
        groups.append({"name": "next door", "kind": "waypoint", "people": _i(rng, 2, 8), "posture": "standing",
                       "region": [inner + 0.2, 0.3, width - 0.3, depth - 0.3], "speed_mps": [0.2, 0.8],
                       "pause_s": [60, 900], "group_size": [1, 3]})
    return {
        "name": f"room-{seed}",
        "description": f"A generated room ({layout}, {posture}), seed {seed}",
        "duration_min": duration,
        "space": space,
        "devices": _devices(rng, ("hand", "pocket", "bag", "table")),
        "groups": groups,
        "radio": {"exponent": _u(rng, 1.2, 2.2)},
    }


def _crowd(rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """An open square: walkers alone and in small groups, stalls, queues at desks, passers-by."""
    width, depth = _u(rng, 25, 50, 0), _u(rng, 20, 40, 0)
    duration = _i(rng, 40, 90)
    groups: list[dict[str, Any]] = [
        {"name": "strolling", "kind": "waypoint", "people": _i(rng, 60, 180), "region": [0, 0, width, depth],
         "speed_mps": [0.4, 1.2], "pause_s": [20, 240], "group_size": [1, _i(rng, 1, 5)],
         "arrive_min": [0, duration * 0.7], "stay_min": [15, duration]},
        {"name": "passing through", "kind": "passing", "people": _i(rng, 20, 120),
         "path": [[0.0, _u(rng, 2, depth - 2, 1)], [width, _u(rng, 2, depth - 2, 1)]], "lane_m": _u(rng, 1, 4, 1),
         "speed_mps": [0.9, 1.6], "arrive_min": [0, duration]},
        {"name": "stall keepers", "kind": "seated", "layout": "grid", "origin": [3.0, 3.0],
         "rows": 2, "columns": 4, "spacing_m": [round((width - 6) / 3, 1), round(depth - 6, 1)],
         "people": 8, "posture": "standing", "sway_m": 0.3},
    ]
    for q in range(_i(rng, 0, 2)):
        groups.append({"name": f"queue {q + 1}", "kind": "queue", "people": _i(rng, 8, 20),
                       "origin": [_u(rng, 5, width - 5, 1), _u(rng, 3, depth / 2, 1)], "direction_deg": 90,
                       "desks": _i(rng, 1, 3), "spacing_m": [_u(rng, 0.6, 1.0), 1.0], "service_s": [30, 150],
                       "arrive_min": [0, duration * 0.8]})
    return {
        "name": f"crowd-{seed}",
        "description": f"A generated open crowd, seed {seed}",
        "duration_min": duration,
        "space": {"width_m": width, "depth_m": depth, "min_spacing_m": _u(rng, 0.35, 0.6)},
        "devices": _devices(rng, ("hand", "pocket", "bag"), positives=_i(rng, 15, 40)),
        "groups": groups,
        "radio": {"exponent": _u(rng, 1.6, 2.2)},
    }


def _carriage(rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """A bus or tram carriage (a metal zone) with seats, standing areas and stops."""
    rows = _i(rng, 6, 14)
    sy = _u(rng, 0.7, 0.9)
    front, back = _u(rng, 0.0, 3.0, 1), _u(rng, 1.0, 4.0, 1)
    seats_from = front + 0.4
    depth = round(seats_from + rows * sy + back, 1)
    standing = [[0.1, seats_from + rows * sy - 0.2, 2.3, depth - 0.1]]
    if front >= 1.0:
        standing.append([0.1, 0.1, 2.3, front])
    stop_s = _i(rng, 60, 240)  # the mean gap between stops; each gap drawn within half of it either way
    duration = _i(rng, 30, 60)
    # the longest ride drawn in minutes, then as stops: drawn in stops (4-15 of 1-4 minutes) no ride
    # reached 15 minutes in 29 of seeds 0-99, and those runs had nothing to find
    longest = _u(rng, 20, 45, 1)
    capacity = rows * 4 + 20
    return {
        "name": f"carriage-{seed}",
        "description": f"A generated bus or tram carriage, {rows} rows of seats, seed {seed}",
        "duration_min": duration,
        "space": {"width_m": 2.4, "depth_m": depth, "min_spacing_m": SPACING_M,
                  "zones": [{"name": "carriage", "region": [0.0, 0.0, 2.4, depth], "exponent": _u(rng, 0.6, 1.0),
                             "link_sd_db": _u(rng, 4, 6, 1), "slow_sd_db": _u(rng, 3, 5, 1), "slow_tau_s": 60.0}]},
        "devices": _devices(rng, ("hand", "pocket", "bag")),
        "groups": [{"name": "passengers", "kind": "bus", "posture": "auto",
                    "people": _i(rng, capacity, 3 * capacity), "origin": [0.35, seats_from], "rows": rows,
                    "columns": 4, "spacing_m": [0.48, sy], "standing_areas": standing,
                    "stop_interval_s": [round(stop_s / 2), round(stop_s * 1.5)],
                    "ride_stops": [1, max(round(longest * 60 / stop_s), 2)], "sway_m": 0.05}],
    }


def _storeys(rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """Flats on two or three storeys, two flats per storey behind a wall; households at home."""
    width, depth = _u(rng, 12, 20, 1), _u(rng, 6, 10, 1)
    storeys = _i(rng, 2, 3)
    middle = round(width / 2, 1)
    groups: list[dict[str, Any]] = []
    sofa = [_u(rng, 1.0, middle - 2.0, 1), _u(rng, 1.0, depth - 1.0, 1)]  # one place, every storey
    for storey in range(storeys):
        for side, (x0, x1) in enumerate(((0.3, middle - 0.2), (middle + 0.2, width - 0.3))):
            if rng.random() < 0.5:
                groups.append({"name": f"storey {storey} flat {side + 1}, on the sofa", "kind": "seated",
                               "storey": storey, "posture": "seated", "layout": "line",
                               "origin": [sofa[0] + (x0 - 0.3), sofa[1]], "rows": 1, "columns": 2,
                               "spacing_m": [0.8, 0.8], "direction_deg": 0, "people": 2,
                               "arrive_min": [0, 30], "stay_min": [60, 150]})
            groups.append({"name": f"storey {storey} flat {side + 1}", "kind": "waypoint", "storey": storey,
                           "posture": str(rng.choice(["standing", "seated", "low"])), "people": _i(rng, 1, 4),
                           "region": [x0, 0.3, x1, depth - 0.3], "speed_mps": [0.2, 0.8],
                           "pause_s": [120, 1500], "group_size": [1, 2]})
    return {
        "name": f"storeys-{seed}",
        "description": f"Generated flats on {storeys} storeys, seed {seed}",
        "duration_min": _i(rng, 60, 180),
        "space": {"width_m": width, "depth_m": depth, "min_spacing_m": SPACING_M, "storey_height_m": _u(rng, 2.6, 3.2),
                  "slab_loss_db": _u(rng, 10, 14, 1),
                  "walls": [{"start": [middle, 0.0], "end": [middle, depth], "loss_db": _u(rng, 4, 12, 1),
                             "separates": True}]},
        "devices": _devices(rng, ("hand", "pocket", "bag", "table")),
        "groups": groups,
        "radio": {"exponent": _u(rng, 1.2, 2.2)},
    }


_BUILDERS: dict[str, Callable[[np.random.Generator, int], dict[str, Any]]] = {
    "room": _room,
    "crowd": _crowd,
    "carriage": _carriage,
    "storeys": _storeys,
}


def save(kind: str, seed: int, path: Path) -> None:
    """Write the generated scene as a scenario file (loads back to the same scene), whole and never through a
    link or FIFO planted at its name in a shared folder (``writefile``: they had it written into the file
    the link named, or waited for a reader for ever)."""
    import tomlkit  # the project's TOML writer (bluezone calibrate edits the daemon config with it)

    from bluezone.writefile import write_file

    header = f"# Generated by `bluezone simulate --generate {kind} --seed {seed}` (bluezone.sim.generate).\n"
    data = (header + tomlkit.dumps(scene_mapping(kind, seed))).encode()
    # a scene saved, then edited, then its command run again from the shell's history: the edits were lost
    if path.is_file() and not path.is_symlink() and path.read_bytes() != data:
        raise ConfigError(f"{path} already exists and holds another scene (edited?): give --save-scene a new name")
    try:
        write_file(path, data, None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the scene ({exc.strerror or exc})") from None
