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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bluezone.sim.scenario import CARRIAGES, Scenario, Wall

#: How much of the carrier's body loss applies, by where the phone is.
_BODY_FACTOR = {"hand": 0.6, "pocket": 1.0, "bag": 0.8}


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


def make_devices(scenario: Scenario, rng: np.random.Generator) -> DeviceTable:
    """Decide who carries a phone, which model, where on the body."""
    people = scenario.people
    carries = np.flatnonzero(rng.random(people) < scenario.devices.share)
    n = len(carries)
    models = scenario.devices.models
    shares = np.array([m.share for m in models], float)
    model = rng.choice(len(models), n, p=shares / shares.sum())
    names = [c for c, _ in scenario.devices.carriage]
    cshares = np.array([s for _, s in scenario.devices.carriage], float)
    carriage = np.array([CARRIAGES.index(c) for c in names])[rng.choice(len(names), n, p=cshares / cshares.sum())]
    attr = lambda f: np.array([getattr(models[m], f) for m in model], float)  # noqa: E731
    unit = attr("unit_sd_db")
    return DeviceTable(
        person=carries,
        model=model,
        carriage=carriage.astype(np.int64),
        tx_power=attr("tx_power_dbm").astype(np.int16),
        rssi_correction=attr("rssi_correction_db").astype(np.int16),
        tx_error=attr("tx_error_db") + rng.normal(0, 1, n) * unit,
        rx_error=attr("rx_error_db") + rng.normal(0, 1, n) * unit,
        scan_phase=rng.uniform(0, scenario.scanning.interval_s, n),
    )


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


class Channel:
    """State of every (transmitter, receiver) link between steps: static and slow shadowing."""

    def __init__(
        self, scenario: Scenario, devices: DeviceTable, senders: np.ndarray, rng: np.random.Generator
    ) -> None:
        self.radio = scenario.radio
        self.scenario = scenario
        self.devices = devices
        self.senders = senders
        self.rng = rng
        n = len(devices.person)
        shape = (len(senders), n)
        self.static = rng.normal(0, self.radio.link_sd_db, shape)
        self.slow = rng.normal(0, self.radio.slow_sd_db, shape)
        loss = dict(self.radio.carriage_loss_db)
        self.carriage_loss = np.array([loss.get(c, 0.0) for c in CARRIAGES])[devices.carriage]
        self.body_factor = np.array([_BODY_FACTOR[c] for c in CARRIAGES])[devices.carriage]

    def mean_attenuation(
        self, d: np.ndarray, angle_tx: np.ndarray, angle_rx: np.ndarray, wall_loss: np.ndarray
    ) -> np.ndarray:
        """True attenuation without the fast and slow parts, per link (senders x devices)."""
        r = self.radio
        dd = np.maximum(d, 0.1)
        path = r.attenuation_1m_db + 10 * r.exponent * np.log10(dd)
        if r.breakpoint_m > 0:
            far = dd > r.breakpoint_m
            path = np.where(
                far,
                r.attenuation_1m_db
                + 10 * r.exponent * math.log10(r.breakpoint_m)
                + 10 * r.far_exponent * np.log10(np.maximum(dd / r.breakpoint_m, 1.0)),
                path,
            )
        s = self.senders
        body = r.body_loss_db * (
            self.body_factor[s, None] * (1 - np.cos(angle_tx)) / 2 + self.body_factor[None, :] * (1 - np.cos(angle_rx)) / 2
        )
        fade = np.clip(1.0 - r.carriage_fade * np.log10(dd), 0.0, 1.0)
        carriage = (self.carriage_loss[s, None] + self.carriage_loss[None, :]) * fade
        return path + carriage + body + wall_loss - self.static

    def step(
        self, t: float, dt: float, pos: np.ndarray, heading: np.ndarray, start: float
    ) -> tuple[Packets, np.ndarray, np.ndarray]:
        """Packets received during [t, t + dt), plus the distance and wall-separation matrices.

        ``pos``/``heading`` are per device (NaN when absent); ``start`` is the scenario's Unix start.
        """
        r = self.radio
        rho = math.exp(-dt / r.slow_tau_s)
        self.slow = rho * self.slow + math.sqrt(1 - rho * rho) * self.rng.normal(0, r.slow_sd_db, self.slow.shape)
        s = self.senders
        ps = pos[s]
        delta = pos[None, :, :] - ps[:, None, :]
        d = np.hypot(delta[..., 0], delta[..., 1])
        d[np.arange(len(s)), s] = np.nan  # nobody hears themselves
        wall_loss, separated = wall_matrix(self.scenario, ps, pos)
        bearing = np.arctan2(delta[..., 1], delta[..., 0])
        angle_tx = bearing - heading[s, None]
        angle_rx = bearing + math.pi - heading[None, :]
        dev = self.devices
        mean_rssi = (
            dev.tx_power[s, None]
            - self.mean_attenuation(d, angle_tx, angle_rx, wall_loss)
            - dev.rssi_correction[None, :]
            + dev.tx_error[s, None]
            + dev.rx_error[None, :]
            + self.slow
        )
        audible = np.isfinite(d) & (mean_rssi > r.sensitivity_dbm - 3 * r.fast_sd_db)
        li, lj = np.nonzero(audible)
        lam = r.advert_rate_hz * dt * (1 - r.packet_loss)
        k = self.rng.poisson(lam, len(li))
        li, lj = np.repeat(li, k), np.repeat(lj, k)
        offset = self.rng.random(len(li)) * dt
        sc = self.scenario.scanning
        if sc.window_s < sc.interval_s:
            in_scan = np.mod(t + offset - dev.scan_phase[lj], sc.interval_s) < sc.window_s
            li, lj, offset = li[in_scan], lj[in_scan], offset[in_scan]
        rssi = mean_rssi[li, lj] + self.rng.normal(0, r.fast_sd_db, len(li))
        heard = rssi >= r.sensitivity_dbm
        li, lj, offset, rssi = li[heard], lj[heard], offset[heard], rssi[heard]
        packets = Packets(
            tx=s[li],
            rx=lj,
            time=start + t + offset,
            rssi=np.clip(np.round(rssi), -127, 20).astype(np.int16),
            distance=d[li, lj],
        )
        return packets, d, separated
