"""The simulator's radio model as a channel for the emulated Air, so real daemons can use it.

``bluezone.proximity.backends.emulated.Air`` asks its channel for the RSSI of each packet
of a tick.  This adapter applies the same model as the vectorised engine (path loss,
carriage with its fade, walls, a static and an AR(1) slow offset per link, fast noise);
only body loss by heading is left out, since the Air knows positions but not headings, and so
are heights, storeys and radio zones (the flat model: the benchmarks run the flat scenes).
Used for small crowds where every phone runs the real asyncio daemon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bluezone.proximity.backends.emulated import Links
from bluezone.sim.channel import _crosses
from bluezone.sim.scenario import CARRIAGES, RadioModel, Wall


class ScenarioChannel:
    """Channel for the Air: ``carriage[i]`` is where radio number i (in attach order) is carried."""

    def __init__(
        self,
        radio: RadioModel = RadioModel(),
        carriage: Sequence[str] = (),
        walls: Sequence[Wall] = (),
        seed: int = 0,
        errors_db: Sequence[float] = (),
    ) -> None:
        unknown = set(carriage) - set(CARRIAGES)
        if unknown:
            raise ValueError(f"unknown carriage {sorted(unknown)}; use {', '.join(CARRIAGES)}")
        self.radio = radio
        loss = dict(radio.carriage_loss_db)
        self.carriage_loss = np.array([loss.get(c, 0.0) for c in carriage] or [0.0])
        self.errors = np.array(list(errors_db) or [0.0])
        self.walls = tuple(walls)
        self.rng = np.random.default_rng(seed)
        self.static: dict[tuple[int, int], float] = {}
        self.slow: dict[tuple[int, int], tuple[float, float]] = {}  # link -> (time, value)

    def _loss(self, index: np.ndarray) -> np.ndarray:
        return self.carriage_loss[np.minimum(index, len(self.carriage_loss) - 1)]

    def _link_offsets(self, links: Links) -> np.ndarray:
        """Static + slow offset per packet; the AR(1) state advances per link in time order."""
        r = self.radio
        out = np.empty(len(links.time))
        for i, (tx, rx, t) in enumerate(zip(links.tx.tolist(), links.rx.tolist(), links.time.tolist())):
            key = (min(tx, rx), max(tx, rx))  # reciprocal channel
            static = self.static.get(key)
            if static is None:
                static = self.static[key] = float(self.rng.normal(0, r.link_sd_db))
            last = self.slow.get(key)
            if last is None:
                value = float(self.rng.normal(0, r.slow_sd_db))
            else:
                rho = math.exp(-max(t - last[0], 0.0) / r.slow_tau_s)
                value = rho * last[1] + math.sqrt(1 - rho * rho) * float(self.rng.normal(0, r.slow_sd_db))
            self.slow[key] = (t, value)
            out[i] = static + value
        return out

    def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray:
        r = self.radio
        d = np.maximum(links.distance, 0.1)
        fade = np.clip(1.0 - r.carriage_fade * np.log10(d), 0.0, 1.0)
        att = r.attenuation_1m_db + 10 * r.exponent * np.log10(d) + (self._loss(links.tx) + self._loss(links.rx)) * fade
        for wall in self.walls:
            att = att + _crosses(links.tx_pos, links.rx_pos, wall) * wall.loss_db
        err = self.errors[np.minimum(links.tx, len(self.errors) - 1)]
        return links.tx_power - att + err + self._link_offsets(links) + rng.normal(0, r.fast_sd_db, len(d))
