"""Where everyone is at each time step: random waypoint, seated groups, queues, a bus, passers-by.

Each group kind is a small class whose ``step(t)`` returns the positions (k, 2), headings
(k,) in radians and presence (k,) of its members at ``t`` seconds after the start, with
numpy over all members at once.  Absent people (not yet arrived, gone home, off the bus)
have NaN positions, so every distance to them is NaN and compares False.
"""

from __future__ import annotations

import math

import numpy as np

from bluezone.sim.channel import _crosses
from bluezone.sim.scenario import POSTURES, Group, Scenario, Wall, bus_seat_columns


def _presence(group: Group, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    arrive = rng.uniform(*group.arrive_min, n) * 60.0
    stay = rng.uniform(*group.stay_min, n) * 60.0
    return arrive, arrive + stay


class Waypoint:
    """Random waypoint in a region; people in one social group walk together around a leader."""

    def __init__(self, group: Group, scenario: Scenario, rng: np.random.Generator) -> None:
        self.rng = rng
        self.group = group
        n = group.people
        x0, y0, x1, y1 = group.region or (0.0, 0.0, scenario.space.width_m, scenario.space.depth_m)
        self.box = np.array([x0, y0]), np.array([x1, y1])
        sizes: list[int] = []
        while sum(sizes) < n:
            sizes.append(int(rng.integers(group.group_size[0], group.group_size[1] + 1)))
        sizes[-1] -= sum(sizes) - n
        sizes = [s for s in sizes if s > 0]
        self.leader_of = np.repeat(np.arange(len(sizes)), sizes)
        g = len(sizes)
        angle = rng.uniform(0, 2 * math.pi, n)
        radius = np.where(np.r_[True, np.diff(self.leader_of) != 0], 0.0, rng.uniform(0.4, 0.9, n))
        self.offset = np.c_[radius * np.cos(angle), radius * np.sin(angle)]
        self.pos = self._random_points(g)
        self.target = self._random_points(g)
        self.speed = rng.uniform(*group.speed_mps, g)
        self.pause_until = rng.uniform(*group.pause_s, g) * rng.integers(0, 2, g)
        self.heading = rng.uniform(0, 2 * math.pi, g)
        arrive, leave = _presence(group, g, rng)
        self.arrive, self.leave = arrive[self.leader_of], leave[self.leader_of]
        self.last_t = 0.0

    def _random_points(self, k: int) -> np.ndarray:
        lo, hi = self.box
        return lo + self.rng.random((k, 2)) * (hi - lo)

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dt, self.last_t = t - self.last_t, t
        moving = self.pause_until <= t
        delta = self.target - self.pos
        dist = np.hypot(delta[:, 0], delta[:, 1])
        reach = self.speed * dt
        arrived = moving & (dist <= reach)
        walk = moving & ~arrived
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = delta / dist[:, None]
        self.pos[walk] += unit[walk] * reach[walk, None]
        self.heading[walk] = np.arctan2(delta[walk, 1], delta[walk, 0])
        if arrived.any():
            k = int(arrived.sum())
            self.pos[arrived] = self.target[arrived]
            self.target[arrived] = self._random_points(k)
            self.pause_until[arrived] = t + self.rng.uniform(*self.group.pause_s, k)
        lo, hi = self.box
        pos = np.clip(self.pos[self.leader_of] + self.offset, lo, hi)
        present = (self.arrive <= t) & (t < self.leave)
        pos[~present] = np.nan
        return pos, self.heading[self.leader_of].copy(), present


def seat_positions(group: Group) -> tuple[np.ndarray, np.ndarray | None]:
    """Seats of a seated group, and for tables the centre each seat faces."""
    ox, oy = group.origin
    sx, sy = group.spacing_m
    if group.layout == "grid":
        r, c = np.divmod(np.arange(group.rows * group.columns), group.columns)
        return np.c_[ox + c * sx, oy + r * sy], None
    if group.layout == "line":
        i = np.arange(group.rows * group.columns)
        a = math.radians(group.direction_deg)
        return np.c_[ox + i * sx * math.cos(a), oy + i * sx * math.sin(a)], None
    tables = max(group.rows * group.columns, 1)
    r, c = np.divmod(np.arange(tables), max(group.columns, 1))
    centres = np.c_[ox + c * sx, oy + r * sy]
    k = group.seats_per_table
    angles = 2 * math.pi * np.arange(k) / k
    seats = centres[:, None, :] + group.table_radius_m * np.stack([np.cos(angles), np.sin(angles)], -1)[None]
    return seats.reshape(-1, 2), np.repeat(centres, k, axis=0)


class Seated:
    """People on assigned seats (rows, round tables, a line of chairs), swaying a little."""

    def __init__(self, group: Group, scenario: Scenario, rng: np.random.Generator) -> None:
        self.rng = rng
        self.group = group
        seats, centres = seat_positions(group)
        if len(seats) < group.people:
            raise ValueError(f"group {group.name or group.kind}: {group.people} people, {len(seats)} seats")
        chosen = rng.permutation(len(seats))[: group.people]
        self.seat = seats[chosen]
        if group.facing_deg == "table" and centres is not None:
            d = centres[chosen] - self.seat
            self.heading = np.arctan2(d[:, 1], d[:, 0])
        else:
            facing = 90.0 if group.facing_deg == "table" else float(group.facing_deg)
            self.heading = np.full(group.people, math.radians(facing)) + rng.normal(0, 0.3, group.people)
        self.sway = np.zeros((group.people, 2))
        self.arrive, self.leave = _presence(group, group.people, rng)

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.group.sway_m
        if s > 0:
            self.sway = 0.95 * self.sway + self.rng.normal(0, s * math.sqrt(1 - 0.95**2), self.sway.shape)
        pos = self.seat + self.sway
        present = (self.arrive <= t) & (t < self.leave)
        pos[~present] = np.nan
        return pos, self.heading.copy(), present


class Queue:
    """A first-come-first-served line: people join at the tail, the head is served, then leaves."""

    def __init__(self, group: Group, scenario: Scenario, rng: np.random.Generator) -> None:
        n = group.people
        self.group = group
        self.join = np.sort(rng.uniform(*group.arrive_min, n) * 60.0)
        service = rng.uniform(*group.service_s, n)
        self.start = np.empty(n)
        self.end = np.empty(n)
        self.desk = np.zeros(n, np.int64)
        free = np.full(group.desks, -np.inf)
        for i in range(n):  # one pass over people at set-up, not per step: the first free desk serves
            desk = int(np.argmin(free))
            self.desk[i] = desk
            self.start[i] = max(self.join[i], free[desk])
            self.end[i] = free[desk] = self.start[i] + service[i]
        a = math.radians(group.direction_deg)
        self.unit = np.array([math.cos(a), math.sin(a)])
        across = np.array([-math.sin(a), math.cos(a)])
        # desks side by side across the head of the line, centred on ``origin`` (one desk: at it)
        self.desk_offset = (np.arange(group.desks) - (group.desks - 1) / 2)[:, None] * group.desk_spacing_m * across
        self.heading = np.full(n, a + math.pi)
        self.rng = rng

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        waiting = (self.join <= t) & (t < self.start)
        served = (self.start <= t) & (t < self.end)
        place = np.cumsum(waiting) * waiting  # 1 for the first in line
        spacing = self.group.spacing_m[0]
        pos = np.asarray(self.group.origin) + (place * spacing)[:, None] * self.unit
        if self.group.desks > 1:
            pos = pos + served[:, None] * self.desk_offset[self.desk]
        pos = pos + self.rng.normal(0, self.group.sway_m, pos.shape)
        present = waiting | served
        pos[~present] = np.nan
        return pos, self.heading.copy(), present


class Bus:
    """Passengers board at stops, sit on a free seat or stand in the aisle, and alight later."""

    def __init__(self, group: Group, scenario: Scenario, rng: np.random.Generator) -> None:
        n = group.people
        self.group = group
        self.rng = rng
        seats, _ = seat_positions(
            Group(kind="seated", people=0, origin=group.origin, rows=group.rows, columns=group.columns, spacing_m=group.spacing_m)
        )
        ox, oy = group.origin
        sx, sy = group.spacing_m
        seats[:, 0] = np.tile(bus_seat_columns(group), group.rows)  # an aisle between the halves
        aisle_x = ox + (group.columns / 2 - 0.5) * sx + 0.25 * sx
        if group.standing_areas:
            standing = np.concatenate([hex_spots(area, group.standing_spacing_m) for area in group.standing_areas])
        else:
            standing = np.c_[np.full(4 * group.rows, aisle_x + 0.5 * sx), oy + np.arange(4 * group.rows) * sy / 4]
        spots = np.r_[seats, standing]
        n_seats = len(seats)
        stop_at = stop_times(group, scenario.duration_min * 60.0, rng)
        stops = max(int(np.searchsorted(stop_at, scenario.duration_min * 60.0, "right")) - 1, 1)
        board = rng.integers(0, stops, n)
        ride = rng.integers(group.ride_stops[0], group.ride_stops[1] + 1, n)
        alight = board + ride
        self.on, self.off = stop_at[board], stop_at[alight]
        self.spot = np.full(n, -1)
        occupied = np.full(len(spots), -1)
        for stop in range(stops + 1):  # event simulation at set-up; steps only look it up
            leaving = occupied >= 0
            leaving[leaving] = alight[occupied[leaving]] == stop
            occupied[leaving] = -1
            for person in rng.permutation(np.flatnonzero(board == stop)):
                free_seats = np.flatnonzero(occupied[:n_seats] < 0)
                free = free_seats if len(free_seats) else np.flatnonzero(occupied < 0)
                if len(free) == 0:
                    alight[person] = board[person]  # bus full: waits for the next one (gone)
                    continue
                choice = int(rng.choice(free))
                occupied[choice] = person
                self.spot[person] = choice
        self.off = stop_at[alight]
        self.pos = spots[np.maximum(self.spot, 0)]
        self.heading = np.where(self.spot < n_seats, math.pi / 2, rng.uniform(0, 2 * math.pi, n))
        self.seated = self.spot < n_seats  # the rest stand

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        present = (self.on <= t) & (t < self.off) & (self.spot >= 0)
        pos = self.pos + self.rng.normal(0, self.group.sway_m, self.pos.shape)
        pos[~present] = np.nan
        return pos, self.heading.copy(), present


def stop_times(group: Group, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Seconds from the start at which the bus stops: 0 first, then enough stops for the last boarding
    passenger's longest ride.

    With one ``stop_interval_s`` every ride of k stops lasts exactly k intervals, so every pair riding
    together was together a whole number of intervals: in generated carriages most verdicts then
    turned on which side of 15 minutes those multiples fell.  A range draws each gap (traffic, lights,
    a long boarding), so rides of one number of stops differ in length, as on a real line.
    """
    low, high = group.stop_interval_s
    gaps = int(duration_s // low) + group.ride_stops[1] + 1
    if high > low:
        return np.r_[0.0, np.cumsum(rng.uniform(low, high, gaps))]
    return np.arange(gaps + 1) * low


def hex_spots(area: tuple[float, float, float, float], spacing: float) -> np.ndarray:
    """Standing spots filling a rectangle on a hexagonal grid, ``spacing`` apart (at least one)."""
    x0, y0, x1, y1 = area
    row_gap = spacing * math.sqrt(3) / 2
    rows = [y0 + spacing / 2 + i * row_gap for i in range(max(int((y1 - y0 - spacing) // row_gap) + 1, 1))]
    spots: list[tuple[float, float]] = []
    for i, y in enumerate(rows):
        xs = np.arange(x0 + spacing / 2 + (spacing / 2 if i % 2 else 0.0), x1 - spacing / 2 + 1e-9, spacing)
        spots.extend((x, min(y, y1)) for x in xs)
    return np.array(spots or [((x0 + x1) / 2, (y0 + y1) / 2)], float)


class Passing:
    """Passers-by: each walks once straight along ``path`` (either way), at a steady pace, and is gone."""

    def __init__(self, group: Group, scenario: Scenario, rng: np.random.Generator) -> None:
        n = group.people
        self.group = group
        self.rng = rng
        w, d = scenario.space.width_m, scenario.space.depth_m
        a, b = (np.asarray(p, float) for p in (group.path or ((0.0, d / 2), (w, d / 2))))
        length = float(np.hypot(*(b - a)))
        unit = (b - a) / length
        lateral = rng.uniform(-group.lane_m / 2, group.lane_m / 2, n)[:, None] * np.array([-unit[1], unit[0]])
        backwards = rng.random(n) < 0.5 if group.both_ways else np.zeros(n, bool)
        self.begin = np.where(backwards[:, None], b, a) + lateral
        self.direction = np.where(backwards[:, None], -unit, unit)
        self.enter = rng.uniform(*group.arrive_min, n) * 60.0
        self.speed = rng.uniform(*group.speed_mps, n)
        self.leave = self.enter + length / self.speed
        self.heading = np.arctan2(self.direction[:, 1], self.direction[:, 0])

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        present = (self.enter <= t) & (t < self.leave)
        walked = (t - self.enter) * self.speed
        pos = self.begin + walked[:, None] * self.direction
        pos[~present] = np.nan
        return pos, self.heading.copy(), present


KINDS: dict[str, type[Waypoint | Seated | Queue | Bus | Passing]] = {
    "waypoint": Waypoint,
    "seated": Seated,
    "queue": Queue,
    "bus": Bus,
    "passing": Passing,
}
#: A group's posture when it states none (or "auto") in a scenario with heights.
KIND_POSTURE = {"waypoint": "standing", "seated": "seated", "queue": "standing", "bus": "seated", "passing": "standing"}


class Crowd:
    """Everyone in a scenario: ``step(t)`` gives all positions, headings and presence at once."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator) -> None:
        self.scenario = scenario
        # each group draws from a child stream of its own: one more walker, or a group added at the
        # end, leaves every other group's movements as they were (keep_apart's pushes aside)
        self.groups = [KINDS[g.kind](g, scenario, r) for g, r in zip(scenario.groups, rng.spawn(len(scenario.groups)))]
        self.group_of = np.repeat(np.arange(len(scenario.groups)), [g.people for g in scenario.groups])
        self.n = len(self.group_of)
        self.posture = np.concatenate([_postures(g, m) for g, m in zip(scenario.groups, self.groups)] or [np.empty(0, int)])
        self.storey = np.repeat([g.storey for g in scenario.groups], [g.people for g in scenario.groups]).astype(np.int64)
        # who may be pushed aside to keep the minimum spacing: everyone not on a seat
        fixed = [g.kind == "seated" for g in scenario.groups]
        self.movable = ~np.repeat(fixed, [g.people for g in scenario.groups]).astype(bool)
        for g, m, lo in zip(scenario.groups, self.groups, np.r_[0, np.cumsum([g.people for g in scenario.groups])]):
            if isinstance(m, Bus):
                self.movable[lo : lo + g.people] = ~m.seated

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [g.step(t) for g in self.groups]
        pos = np.concatenate([p[0] for p in parts])
        space = self.scenario.space
        if space.min_spacing_m > 0:
            pos = keep_apart(pos, self.movable, self.storey, space.min_spacing_m, space.walls)
            # a push never leaves the space (walkers at the edge of a square were pushed up to 0.15 m out of it)
            pos = np.clip(pos, 0.0, (space.width_m, space.depth_m))
        return (
            pos,
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )


def _postures(group: Group, mover: object) -> np.ndarray:
    """Per member, an index into POSTURES (or the kind's own; a bus passenger's by seat or standing)."""
    if group.posture not in ("", "auto"):
        return np.full(group.people, POSTURES.index(group.posture))
    if isinstance(mover, Bus):
        return np.where(mover.seated, POSTURES.index("seated"), POSTURES.index("standing"))
    return np.full(group.people, POSTURES.index(KIND_POSTURE[group.kind]))


def keep_apart(
    pos: np.ndarray, movable: np.ndarray, storey: np.ndarray, spacing: float, walls: tuple[Wall, ...] = (), rounds: int = 4
) -> np.ndarray:
    """Push people on one storey apart until (nearly) ``spacing`` separates everyone.

    A pair too close moves apart along the line between them, each movable person by half the
    overlap (all of it if the other sits); pushes that would cross a wall are dropped.  Pairwise
    over the people present, so it costs O(n^2) per step: meant for rooms and carriages.
    """
    present = np.flatnonzero(np.isfinite(pos[:, 0]))
    if len(present) < 2 or not movable[present].any():
        return pos
    out = pos.copy()
    p = out[present]
    can = movable[present].astype(float)
    same = storey[present][:, None] == storey[present][None, :]
    np.fill_diagonal(same, False)
    # two people on one spot have no line between them: the later one steps +x, the earlier -x
    # (one direction for both moved them together and left them on one spot)
    order = np.arange(len(present))
    tie = np.sign(order[:, None] - order[None, :])[..., None] * np.array([1.0, 0.0])
    for _ in range(rounds):
        delta = p[:, None, :] - p[None, :, :]
        dist = np.hypot(delta[..., 0], delta[..., 1])
        close = same & (dist < spacing)
        if not close.any():
            break
        share = np.where(can[None, :] > 0, 0.5, 1.0) * can[:, None]  # my part of the overlap
        overlap = np.where(close, spacing - dist, 0.0) * share
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(dist[..., None] > 1e-9, delta / dist[..., None], tie)
        p = p + (overlap[..., None] * unit).sum(axis=1)
    moved = p
    for wall in walls:  # never through a wall
        cross = _crosses(out[present][:, None, :], moved[:, None, :], wall)[:, 0]
        moved[cross] = out[present][cross]
    out[present] = moved
    return out
