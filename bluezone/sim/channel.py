"""The simulated radio between phones: which adverts are received, and at what RSSI.

RSSI = TX power (advertised) - attenuation - RSSI correction (receiver) + calibration
residuals of both phones, where the true attenuation is
A(1 m) + 10 n log10(d) + carriage losses (fading with distance: a body next to the phone
matters less when multipath fills in) + body loss (by angle) + wall losses
- per-link static offset - slow per-link shadowing (AR(1)) - fast per-packet noise.
So the attenuation the matcher computes (TX power - (RSSI + correction)) is the true one
minus the residuals: a perfectly calibrated pair sees the path loss itself.
Adverts arrive at ``advert_rate_hz`` (Poisson), survive ``packet_loss``, count only inside
the receiver's scan windows and above its sensitivity.  All work is numpy over the
(transmitters x receivers) links of one time step.  Parameters: docs/radio-model.md.

With heights (``Scenario.heights``) distances are in three dimensions, between phones for
the radio and between heads for the truth, and every floor slab between two storeys adds
``slab_loss_db``.  Zones give a part of the space its own radio (``Scenario.space.zones``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bluezone.sim.scenario import (
    CARRIAGES,
    HEAD_HEIGHT_M,
    PHONE_HEIGHT_M,
    POSTURES,
    ZONE_RADIO,
    RadioModel,
    Scenario,
    Wall,
    Zone,
)

#: How much of the carrier's body loss applies, by where the phone is (a phone lying on a table
#: has its owner beside it, not around it: an assumption, no recording has phones on tables).
_BODY_FACTOR = {"hand": 0.6, "pocket": 1.0, "bag": 0.8, "table": 0.3}


@dataclass(frozen=True)
class Packets:
    """Adverts received in one step: one entry per packet."""

    tx: np.ndarray  # device index of the sender
    rx: np.ndarray  # device index of the receiver
    time: np.ndarray  # Unix seconds
    rssi: np.ndarray  # dBm, int16
    distance: np.ndarray  # metres (for plots; never shown to a scorer)

    def __len__(self) -> int:
        return len(self.tx)


@dataclass(frozen=True)
class DeviceTable:
    """Per-device radio facts (index = device number)."""

    person: np.ndarray  # which person carries it
    model: np.ndarray  # index into scenario.devices.models
    carriage: np.ndarray  # index into CARRIAGES
    tx_power: np.ndarray  # advertised in the AEM metadata, dBm
    rssi_correction: np.ndarray  # the receiver's own calibration, dB
    tx_error: np.ndarray  # true deviation from calibration, dB (model + unit)
    rx_error: np.ndarray
    scan_phase: np.ndarray  # seconds
    storey: np.ndarray | None = None  # with heights: the storey of the carrier
    phone_z: np.ndarray | None = None  # with heights: metres above the ground floor
    head_z: np.ndarray | None = None  # with heights: the carrier's mouth and nose


def _draw(shares: tuple[tuple[str, float], ...], index: list[str], k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` indices into ``index`` drawn by named shares (each name's first place: found once, not compared with
    every name before it, as list.index did: 60 groups choosing among 10,000 models took 238 s)."""
    p = np.array([s for _, s in shares], float)
    place: dict[str, int] = {}
    for i, name in enumerate(index):
        place.setdefault(name, i)
    return np.array([place[name] for name, _ in shares])[rng.choice(len(shares), k, p=p / p.sum())]


def make_devices(
    scenario: Scenario, rng: np.random.Generator, posture: np.ndarray | None = None, storey: np.ndarray | None = None
) -> DeviceTable:
    """Decide who carries a phone, which model, where on the body (per group where it says so).

    ``posture``/``storey`` per person (``Crowd.posture``, ``Crowd.storey``) place phones and
    heads in height when the scenario has heights.  Draws for the scenario-wide shares come
    first and in a fixed order, so a scenario without per-group phones runs as it always did.
    """
    people = scenario.people
    groups = scenario.groups
    sizes = [g.people for g in groups]
    share = np.repeat([scenario.devices.share if g.phone_share is None else g.phone_share for g in groups], sizes)
    carries = np.flatnonzero(rng.random(people) < share)
    n = len(carries)
    models = scenario.devices.models
    shares = np.array([m.share for m in models], float)
    model = rng.choice(len(models), n, p=shares / shares.sum())
    carriage = _draw(scenario.devices.carriage, list(CARRIAGES), n, rng).astype(np.int64)
    tx_unit = rng.normal(0, 1, n)
    rx_unit = rng.normal(0, 1, n)
    scan_phase = rng.uniform(0, scenario.scanning.interval_s, n)
    group_of = np.repeat(np.arange(len(groups)), sizes)[carries]
    names = [m.name for m in models]
    for g, group in enumerate(groups):  # per-group phones: drawn after, so only such scenarios change
        mine = np.flatnonzero(group_of == g)
        if group.models is not None:
            model[mine] = _draw(group.models, names, len(mine), rng)
        if group.carriage is not None:
            carriage[mine] = _draw(group.carriage, list(CARRIAGES), len(mine), rng)
    _off_the_table(scenario, group_of, carriage, rng)
    attr = lambda f: np.array([getattr(models[m], f) for m in model], float)  # noqa: E731
    unit = attr("unit_sd_db")
    heights: dict[str, np.ndarray] = {}
    if scenario.heights:
        where = (storey if storey is not None else np.zeros(people, np.int64))[carries]
        how = (posture if posture is not None else np.zeros(people, np.int64))[carries]
        floor = where * scenario.space.storey_height_m
        phone = np.array([[PHONE_HEIGHT_M[p][c] for c in CARRIAGES] for p in POSTURES])
        heights = {
            "storey": where.astype(np.int64),
            "phone_z": floor + phone[how, carriage],
            "head_z": floor + np.array([HEAD_HEIGHT_M[p] for p in POSTURES])[how],
        }
    return DeviceTable(
        person=carries,
        model=model,
        carriage=carriage,
        tx_power=attr("tx_power_dbm").astype(np.int16),
        rssi_correction=attr("rssi_correction_db").astype(np.int16),
        tx_error=attr("tx_error_db") + tx_unit * unit,
        rx_error=attr("rx_error_db") + rx_unit * unit,
        scan_phase=scan_phase,
        **heights,
    )


def _off_the_table(scenario: Scenario, group_of: np.ndarray, carriage: np.ndarray, rng: np.random.Generator) -> None:
    """Give the phones "on a table" of people who move the scene's other carriages instead (in place).

    Scene-wide carriage shares reach walkers, queues, passers-by and bus passengers too, and a table
    phone then walked with its owner with a table's radio (no carriage loss, little body loss): in
    generated room 45 one walker's was in 11 of bluezone's 19 false alarms.  Only seated groups keep
    a phone on a table (a group's own ``carriage`` cannot put one on a mover: the scenario refuses
    it).  Drawn last, so every other phone's draws are as before.
    """
    moves = np.array([g.kind != "seated" for g in scenario.groups], bool)[group_of]
    stray = np.flatnonzero(moves & (carriage == CARRIAGES.index("table")))
    if len(stray):
        carried = tuple((c, s) for c, s in scenario.devices.carriage if c != "table" and s > 0) or (("hand", 1.0),)
        carriage[stray] = _draw(carried, list(CARRIAGES), len(stray), rng)


def _crosses(p: np.ndarray, q: np.ndarray, wall: Wall) -> np.ndarray:
    """Whether the segments p[i]-q[j] (broadcast) cross the wall."""
    a, b = np.asarray(wall.start), np.asarray(wall.end)

    def orient(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.sign((v[..., 0] - u[..., 0]) * (w[..., 1] - u[..., 1]) - (v[..., 1] - u[..., 1]) * (w[..., 0] - u[..., 0]))

    o1 = orient(p, q, a)
    o2 = orient(p, q, b)
    o3 = orient(a, b, p) * np.ones_like(o1)
    o4 = orient(a, b, q) * np.ones_like(o1)
    return (o1 * o2 < 0) & (o3 * o4 < 0)


def wall_matrix(scenario: Scenario, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(wall loss dB, separated by a wall that stops contact) for every pair p[:, None] - q[None, :]."""
    shape = (len(p), len(q))
    loss = np.zeros(shape)
    separated = np.zeros(shape, bool)
    if not scenario.space.walls:
        return loss, separated
    pp, qq = p[:, None, :], q[None, :, :]
    for wall in scenario.space.walls:
        cross = _crosses(pp, qq, wall)
        loss += cross * wall.loss_db
        if wall.separates:
            separated |= cross
    return loss, separated


@dataclass
class LinkRadio:
    """The radio parameters of every link this step: the scenario's, or per link inside zones.

    Fields are floats (no zones: exactly the scenario's ``[radio]``) or (senders x devices)
    arrays where a zone gives links their own value.
    """

    attenuation_1m_db: float | np.ndarray
    exponent: float | np.ndarray
    fast_sd_db: float | np.ndarray
    slow_sd_db: float | np.ndarray
    slow_tau_s: float | np.ndarray
    link_sd_db: float | np.ndarray
    body_loss_db: float | np.ndarray
    carriage_fade: float | np.ndarray

    @classmethod
    def of(cls, radio: RadioModel, zones: tuple[Zone, ...] = (), link_zone: np.ndarray | None = None) -> LinkRadio:
        values: dict[str, float | np.ndarray] = {}
        for key in ZONE_RADIO:
            value = getattr(radio, key)
            if link_zone is not None and any(getattr(z, key) is not None for z in zones):
                table = np.array([value] + [value if getattr(z, key) is None else getattr(z, key) for z in zones])
                value = table[link_zone + 1]
            values[key] = value
        return cls(**values)


def zone_of(scenario: Scenario, pos: np.ndarray, storey: np.ndarray | None) -> np.ndarray:
    """(zones x devices) whether each phone is inside each zone."""
    inside = np.zeros((len(scenario.space.zones), len(pos)), bool)
    with np.errstate(invalid="ignore"):
        for k, zone in enumerate(scenario.space.zones):
            x0, y0, x1, y1 = zone.region
            inside[k] = (pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1)
            if zone.storey is not None and storey is not None:
                inside[k] &= storey == zone.storey
    return inside


class LinkShadowing:
    """State of every (transmitter, receiver) link between steps: static and slow shadowing.

    Without zones the static and slow offsets are kept in dB; with zones they are kept as
    standard normals and scaled by each link's zone every step (a person walking into a metal
    carriage takes on its stronger shadowing).
    """

    def __init__(
        self,
        scenario: Scenario,
        devices: DeviceTable,
        senders: np.ndarray,
        rng: np.random.Generator,
        packets: np.random.Generator,
    ) -> None:
        self.radio = scenario.radio
        self.scenario = scenario
        self.devices = devices
        self.senders = senders
        self.rng = rng  # shadowing: the same number of draws every step, whatever is audible
        self.packets = packets  # as many draws as links are audible: apart, so the shadowing stays put
        self.zones = scenario.space.zones
        n = len(devices.person)
        shape = (len(senders), n)
        unit = 1.0 if self.zones else None
        self.static = rng.normal(0, unit or self.radio.link_sd_db, shape)
        self.slow = rng.normal(0, unit or self.radio.slow_sd_db, shape)
        loss = dict(self.radio.carriage_loss_db)
        self.carriage_loss = np.array([loss.get(c, 0.0) for c in CARRIAGES])[devices.carriage]
        self.body_factor = np.array([_BODY_FACTOR[c] for c in CARRIAGES])[devices.carriage]
        self.link = LinkRadio.of(self.radio)

    def mean_attenuation(
        self, d: np.ndarray, angle_tx: np.ndarray, angle_rx: np.ndarray, wall_loss: np.ndarray
    ) -> np.ndarray:
        """True attenuation without the fast and slow parts, per link (senders x devices)."""
        r = self.radio
        k = self.link  # the scenario's radio, or per link within zones
        dd = np.maximum(d, 0.1)
        path = k.attenuation_1m_db + 10 * k.exponent * np.log10(dd)
        if r.breakpoint_m > 0:
            far = dd > r.breakpoint_m
            path = np.where(
                far,
                k.attenuation_1m_db
                + 10 * k.exponent * math.log10(r.breakpoint_m)
                + 10 * r.far_exponent * np.log10(np.maximum(dd / r.breakpoint_m, 1.0)),
                path,
            )
        s = self.senders
        body = k.body_loss_db * (
            self.body_factor[s, None] * (1 - np.cos(angle_tx)) / 2 + self.body_factor[None, :] * (1 - np.cos(angle_rx)) / 2
        )
        fade = np.clip(1.0 - k.carriage_fade * np.log10(dd), 0.0, 1.0)
        carriage = (self.carriage_loss[s, None] + self.carriage_loss[None, :]) * fade
        static = self.static if not self.zones else self.static * k.link_sd_db
        return path + carriage + body + wall_loss - static

    def _zones(self, pos: np.ndarray) -> np.ndarray:
        """Each link's zone (-1: none, both ends not in one zone) and the shell losses it crosses."""
        inside = zone_of(self.scenario, pos, self.devices.storey)
        s = self.senders
        shell = np.zeros((len(s), len(pos)))
        link_zone = np.full((len(s), len(pos)), -1)
        for k, zone in enumerate(self.zones):
            both = inside[k][s, None] & inside[k][None, :]
            link_zone[both] = k
            if zone.shell_loss_db:
                shell += (inside[k][s, None] != inside[k][None, :]) * zone.shell_loss_db
        self.link = LinkRadio.of(self.radio, self.zones, link_zone)
        return shell

    def step(
        self, t: float, dt: float, pos: np.ndarray, heading: np.ndarray, start: float
    ) -> tuple[Packets, np.ndarray, np.ndarray]:
        """Packets received during [t, t + dt), plus the (truth) distance and separation matrices.

        ``pos``/``heading`` are per device (NaN when absent); ``start`` is the scenario's Unix start.
        With heights the radio's distance is between phones and the returned one between heads;
        people on different storeys are separated (never in contact).
        """
        r = self.radio
        dev = self.devices
        extra = self._zones(pos) if self.zones else 0.0
        k = self.link
        if self.zones:
            rho = np.exp(-dt / k.slow_tau_s) if isinstance(k.slow_tau_s, np.ndarray) else math.exp(-dt / k.slow_tau_s)
            self.slow = rho * self.slow + np.sqrt(1 - rho * rho) * self.rng.normal(0, 1.0, self.slow.shape)
            slow = self.slow * k.slow_sd_db
        else:
            rho = math.exp(-dt / r.slow_tau_s)
            self.slow = rho * self.slow + math.sqrt(1 - rho * rho) * self.rng.normal(0, r.slow_sd_db, self.slow.shape)
            slow = self.slow
        s = self.senders
        ps = pos[s]
        delta = pos[None, :, :] - ps[:, None, :]
        d = np.hypot(delta[..., 0], delta[..., 1])
        d[np.arange(len(s)), s] = np.nan  # nobody hears themselves
        wall_loss, separated = wall_matrix(self.scenario, ps, pos)
        d_truth = d
        if dev.phone_z is not None and dev.head_z is not None and dev.storey is not None:
            d_truth = np.hypot(d, dev.head_z[None, :] - dev.head_z[s, None])
            d = np.hypot(d, dev.phone_z[None, :] - dev.phone_z[s, None])
            floors = np.abs(dev.storey[None, :] - dev.storey[s, None])
            wall_loss = wall_loss + floors * self.scenario.space.slab_loss_db
            separated = separated | (floors > 0)
        bearing = np.arctan2(delta[..., 1], delta[..., 0])
        angle_tx = bearing - heading[s, None]
        angle_rx = bearing + math.pi - heading[None, :]
        mean_rssi = (
            dev.tx_power[s, None]
            - self.mean_attenuation(d, angle_tx, angle_rx, wall_loss + extra)
            - dev.rssi_correction[None, :]
            + dev.tx_error[s, None]
            + dev.rx_error[None, :]
            + slow
        )
        fast_sd = k.fast_sd_db
        margin = 3 * (np.max(fast_sd) if isinstance(fast_sd, np.ndarray) else fast_sd)
        audible = np.isfinite(d) & (mean_rssi > r.sensitivity_dbm - margin)
        li, lj = np.nonzero(audible)
        lam = r.advert_rate_hz * dt * (1 - r.packet_loss)
        n_packets = self.packets.poisson(lam, len(li))
        li, lj = np.repeat(li, n_packets), np.repeat(lj, n_packets)
        offset = self.packets.random(len(li)) * dt
        sc = self.scenario.scanning
        if sc.window_s < sc.interval_s:
            in_scan = np.mod(t + offset - dev.scan_phase[lj], sc.interval_s) < sc.window_s
            li, lj, offset = li[in_scan], lj[in_scan], offset[in_scan]
        if isinstance(fast_sd, np.ndarray):
            rssi = mean_rssi[li, lj] + self.packets.normal(0, 1.0, len(li)) * fast_sd[li, lj]
        else:
            rssi = mean_rssi[li, lj] + self.packets.normal(0, r.fast_sd_db, len(li))
        heard = rssi >= r.sensitivity_dbm
        li, lj, offset, rssi = li[heard], lj[heard], offset[heard], rssi[heard]
        packets = Packets(
            tx=s[li],
            rx=lj,
            time=start + t + offset,
            rssi=np.clip(np.round(rssi), -127, 20).astype(np.int16),
            distance=d[li, lj],
        )
        return packets, d_truth, separated
