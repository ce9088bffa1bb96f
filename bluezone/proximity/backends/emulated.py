"""The emulated radio: nodes in one process share an :class:`Air` instead of a Bluetooth chip.

A first-class backend (as bumble's emulated link is), not a test mock: the daemon runs the
same code on it as on BlueZ.  Each advertising radio sends its payload every 200-270 ms
(GAEN's advertising interval, uniformly random); every scanning radio hears it with an RSSI
from a pluggable :class:`Channel`, and packets below the sensitivity are lost.

For speed the air works in ticks (default 1 s of the injected clock): at each tick it
schedules the adverts that fell in it, computes all RSSIs in one numpy call, and hands each
receiver its adverts in time order, each stamped with its own send time.  Positions are
evaluated once per tick, so moving nodes are sampled at the tick rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bluezone.clock import Clock
from bluezone.crypto.bluezone3 import SERVICE_UUID as BLUEZONE3_UUID
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import RadioError
from bluezone.proximity.radio import Advert, AdvertCallback, Radio

log = logging.getLogger(__name__)

Position = tuple[float, float]
PositionLike = Position | Callable[[float], Position]

ADVERT_INTERVAL = (0.200, 0.270)  # seconds, GAEN Bluetooth specification v1.2
SENSITIVITY_DBM = -100.0
# a tick this much later than due, or one back in time: the clock stepped or the machine slept, nothing was on air
STEPPED_SECONDS = 60.0


@dataclass(frozen=True)
class Links:
    """The packets of one tick, one entry per (advert, receiver) pair, for a channel model."""

    time: np.ndarray  # Unix seconds of each packet
    tx: np.ndarray  # sender's node index in the air (stable for a radio's life)
    rx: np.ndarray  # receiver's index
    tx_pos: np.ndarray  # (n, 2) metres
    rx_pos: np.ndarray  # (n, 2) metres
    tx_power: np.ndarray  # dBm the sender transmits with (what it advertises in its AEM)

    @property
    def distance(self) -> np.ndarray:
        return np.hypot(*(self.tx_pos - self.rx_pos).T)


class Channel(Protocol):
    """Maps packets to received RSSI (dBm, float); NaN or values below sensitivity are lost.

    The simulator can plug in a richer model (walls, body loss, correlated shadowing) using
    the links' indices, positions and times.
    """

    def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class LogDistanceChannel:
    """RSSI = TX power - A(1 m) - 10 n log10(d) + N(0, sd): log-distance path loss, seeded shadowing.

    Defaults from the Ng smartphone data (RADIO.md): RSSI at 1 m about -74 dBm with the
    daemon's default TX power of -24 dBm (so A(1 m) = 50 dB), exponent about 2.1, per-packet
    spread about 5 dB.  Distances below ``min_distance`` are clamped (near field).
    """

    attenuation_1m: float = 50.0
    exponent: float = 2.1
    shadowing_sd: float = 5.0
    min_distance: float = 0.1

    def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray:
        d = np.maximum(links.distance, self.min_distance)
        mean = links.tx_power - self.attenuation_1m - 10.0 * self.exponent * np.log10(d)
        if self.shadowing_sd > 0:
            return mean + rng.normal(0.0, self.shadowing_sd, len(d))
        return mean


def _keep_last(radio: EmulatedRadio) -> None:
    """After a tick only the payload in force goes on; a radio stopped in it is silent (its next advert is set
    afresh when it advertises again, as a controller started anew)."""
    del radio._segments[:-1]
    if radio._segments and radio._segments[0][1] is None:
        radio._segments.clear()


def fake_adapter_address(label: str) -> str:
    """An emulated adapter's own address: the same for the same label in every run, as a real adapter's is (a
    public address: its first byte's top bits are no random address's 11)."""
    raw = bytearray(hashlib.sha256(label.encode()).digest()[:6])
    raw[0] &= 0x3F
    return ":".join(f"{b:02X}" for b in raw)


class EmulatedRadio(Radio):
    """A radio in an :class:`Air`; made by :meth:`Air.radio`.

    ``position`` is ``(x, y)`` in metres or a function of time returning one; assign it at
    run time to move the node.  ``service_uuid`` lets a test emulate a foreign device.
    :meth:`advertise_bluezone3` adds a second advert set (a Bluezone v3 ID) on the same node.
    """

    rotates_address = True

    @property
    def adapter_address(self) -> str:
        """A fake of the adapter's own address: stable for a label (``fake_adapter_address``), or the one given."""
        return self._adapter_address

    def __init__(
        self,
        air: Air,
        label: str,
        position: PositionLike,
        service_uuid: str = SERVICE_UUID,
        owner: EmulatedRadio | None = None,
        adapter_address: str | None = None,
    ) -> None:
        self.air = air
        self._adapter_address = adapter_address or fake_adapter_address(label)
        self.owner = owner  # the radio this one sends a second advert for (never heard by it)
        self._bluezone3: EmulatedRadio | None = None
        self.label = label
        self.name = f"emulated:{label}"
        self.position = position
        self.service_uuid = service_uuid
        self.index = -1
        self.node = -1  # the node it belongs to: its own index, or its owner's
        self.address: str | None = None
        self.on_advert: AdvertCallback | None = None
        self.sent = 0
        self.heard = 0
        # payload segments within the current tick: (from time, payload or None from a stop, tx_power, address)
        self._segments: list[tuple[float, bytes | None, int, str]] = []
        self._next_send = 0.0
        self._open = False

    def position_at(self, t: float) -> Position:
        p = self.position
        return p(t) if callable(p) else p

    async def open(self) -> None:
        if self._open:
            return
        self.air._attach(self)
        self._open = True

    async def advertise(self, service_data: bytes, tx_power: int) -> None:
        if not self._open:
            raise RadioError(f"{self.name}: advertise() before open()")
        self.address = self.air._new_address()
        self.air._set_payload(self, bytes(service_data), int(tx_power), self.address)

    async def advertise_as(self, service_uuid: str, service_data: bytes, tx_power: int) -> None:
        """Only under the UUID this radio was made with (``air.radio(..., service_uuid=...)``)."""
        if service_uuid.lower() != self.service_uuid.lower():
            raise RadioError(f"{self.name} sends under {self.service_uuid}; make it with service_uuid={service_uuid!r}")
        await self.advertise(service_data, tx_power)

    async def advertise_bluezone3(self, bzid: bytes, tx_power: int) -> None:
        """A second advert set on the same node, as a phone running both apps would send."""
        if not self._open:
            raise RadioError(f"{self.name}: advertise_bluezone3() before open()")
        if self._bluezone3 is None:
            self._bluezone3 = EmulatedRadio(
                self.air, f"{self.label}/bluezone3", self.position_at, BLUEZONE3_UUID, owner=self
            )
            await self._bluezone3.open()
        await self._bluezone3.advertise(bzid, tx_power)

    async def stop_advertising(self) -> None:
        """Silent from now: what it sent since the last tick is still on air (the tick hands it out), not lost
        with the stop; a burst shorter than a tick and ended before it was never heard."""
        for radio in (self, self._bluezone3):
            if radio is not None and radio._segments:
                radio._segments.append((self.air.clock.now(), None, 0, ""))

    async def start_scanning(self, on_advert: AdvertCallback) -> None:
        if not self._open:
            raise RadioError(f"{self.name}: start_scanning() before open()")
        self.on_advert = on_advert

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self.on_advert = None
        self._segments.clear()
        if self._bluezone3 is not None:
            await self._bluezone3.close()
            self._bluezone3 = None
        await self.air._detach(self)

    def health(self) -> dict[str, int | str | bool]:
        # foreign adverts are passed on under their own UUID for the daemon to count: none ignored here
        return {
            "backend": "emulated",
            "state": "up" if self._open else "closed",
            "rotates_address": self.rotates_address,
            "adverts_sent": self.sent,
            "adverts_received": self.heard,
            "adverts_ignored": 0,
        }


class Air:
    """The shared medium of emulated radios in one process, on the injected clock.

    ``Air(clock, seed, channel=LogDistanceChannel())``; ``air.radio("a", position=(0, 0))``.
    The air runs while at least one of its radios is open.
    """

    def __init__(
        self,
        clock: Clock,
        seed: int = 0,
        channel: Channel | None = None,
        *,
        sensitivity: float = SENSITIVITY_DBM,
        tick: float = 1.0,
        interval: tuple[float, float] = ADVERT_INTERVAL,
    ) -> None:
        if tick <= 0 or not 0 < interval[0] <= interval[1]:
            raise ValueError("air: tick must be positive and 0 < interval min <= max")
        self.clock = clock
        self.channel: Channel = channel or LogDistanceChannel()
        self.sensitivity = sensitivity
        self.tick = tick
        self.interval = interval
        self.rng = np.random.default_rng(seed)
        self.radios: list[EmulatedRadio] = []  # open radios
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0
        self.packets = 0  # delivered
        self.lost = 0  # below sensitivity

    def radio(
        self, label: str, position: PositionLike = (0.0, 0.0), service_uuid: str = SERVICE_UUID,
        adapter_address: str | None = None,
    ) -> EmulatedRadio:
        return EmulatedRadio(self, label, position, service_uuid, adapter_address=adapter_address)

    # --- called by the radios -----------------------------------------------------------------

    def _attach(self, radio: EmulatedRadio) -> None:
        radio.index = self._count
        radio.node = radio.owner.index if radio.owner is not None else radio.index
        self._count += 1
        self.radios.append(radio)
        if self._task is None:
            self._last = self.clock.now()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bluezone-air")

    async def _detach(self, radio: EmulatedRadio) -> None:
        if radio in self.radios:
            self.radios.remove(radio)
        if not self.radios and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _new_address(self) -> str:
        raw = bytearray(self.rng.bytes(6))
        raw[0] &= 0x3F  # non-resolvable private address: top two bits 00
        return ":".join(f"{b:02X}" for b in raw)

    def _set_payload(self, radio: EmulatedRadio, data: bytes, tx_power: int, address: str) -> None:
        now = self.clock.now()
        if not radio._segments:
            # first advert a random fraction of an interval from now, as a real controller would
            radio._next_send = now + float(self.rng.uniform(0.0, self.interval[0]))
        radio._segments.append((now, data, tx_power, address))

    # --- the medium ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            now = self.clock.now()
            try:
                self.deliver(now)
            except Exception:  # noqa: BLE001 - a faulty receiver callback must not stop the air
                log.exception("emulated air: delivery failed")

    def deliver(self, now: float) -> int:
        """Send every advert due up to ``now`` and hand them to the scanners; returns packets."""
        if not 0 <= now - self._last <= self.tick + STEPPED_SECONDS:
            # the radios send from now on: a clock believed two days ahead (a paused virtual machine, CheckedClock)
            # had the air work out two days of adverts at once (2.1 million, 6 s) and a month's would fill the
            # memory; one stepped back fell silent until the clock came round again
            for r in self.radios:
                r._next_send = now
        senders = [r for r in self.radios if r._segments]
        scanners = [r for r in self.radios if r.on_advert is not None]
        self._last = now
        if not senders or not scanners:
            for r in senders:
                self._schedule(r, now)
                _keep_last(r)
            return 0
        if len({r.node for r in senders} | {r.node for r in scanners}) == 1:
            # one device alone never hears itself: its adverts are counted and nothing else is worked out (a daemon
            # alone for 26 virtual hours spent most of its time on 93,600 deliveries to no one); the channel asked
            # about no links draws nothing from the seeded generator, so seeded runs are unchanged
            for r in senders:
                r.sent += int(self._on_air(r, self._schedule(r, now)).sum())
                _keep_last(r)
            return 0
        times, tx_idx, payload_ref = [], [], []
        payloads: list[tuple[bytes, int, str]] = []
        for s_i, r in enumerate(senders):
            t = self._schedule(r, now)
            which = self._segment_of(r, t)
            on = self._on_air(r, t, which)
            t, which = t[on], which[on]
            if len(t) == 0:
                _keep_last(r)
                continue
            base = len(payloads)
            payloads.extend((seg[1] or b"", seg[2], seg[3]) for seg in r._segments)
            times.append(t)
            tx_idx.append(np.full(len(t), s_i))
            payload_ref.append(which + base)
            r.sent += len(t)
            _keep_last(r)
        if not times:
            return 0
        t_all = np.concatenate(times)
        s_all = np.concatenate(tx_idx)
        p_all = np.concatenate(payload_ref)
        n_rx = len(scanners)
        pos_tx = np.array([r.position_at(now) for r in senders], dtype=float)
        pos_rx = np.array([r.position_at(now) for r in scanners], dtype=float)
        rx_air = np.array([r.index for r in scanners])
        tx_node = np.array([r.node for r in senders])
        rx_node = np.array([r.node for r in scanners])
        # every (packet, receiver) pair except a node hearing itself
        pk = np.repeat(np.arange(len(t_all)), n_rx)
        rx = np.tile(np.arange(n_rx), len(t_all))
        keep = tx_node[s_all[pk]] != rx_node[rx]
        pk, rx = pk[keep], rx[keep]
        tx_power = np.array([p[1] for p in payloads], dtype=float)[p_all[pk]]
        links = Links(
            time=t_all[pk],
            tx=tx_node[s_all[pk]],  # a second advert set of a node is the same phone to the channel
            rx=rx_air[rx],
            tx_pos=pos_tx[s_all[pk]],
            rx_pos=pos_rx[rx],
            tx_power=tx_power,
        )
        rssi = np.asarray(self.channel.rssi(links, self.rng), dtype=float)
        heard = np.isfinite(rssi) & (rssi >= self.sensitivity)
        self.lost += int((~heard).sum())
        order = np.lexsort((links.time[heard], rx[heard]))
        pk, rx, rssi_h = pk[heard][order], rx[heard][order], np.round(rssi[heard][order]).astype(int)
        t_l, p_l, s_l, rx_l, rssi_l = (
            t_all[pk].tolist(),
            p_all[pk].tolist(),
            s_all[pk].tolist(),
            rx.tolist(),
            rssi_h.tolist(),
        )
        for i in range(len(t_l)):
            receiver = scanners[rx_l[i]]
            cb = receiver.on_advert
            if cb is None:
                continue
            data, _, address = payloads[p_l[i]]
            receiver.heard += 1
            cb(Advert(t_l[i], data, rssi_l[i], senders[s_l[i]].service_uuid, None, address))
        self.packets += len(t_l)
        return len(t_l)

    @staticmethod
    def _segment_of(radio: EmulatedRadio, times: np.ndarray) -> np.ndarray:
        """The index of the segment each send time falls in."""
        starts = np.array([seg[0] for seg in radio._segments])
        return np.maximum(np.searchsorted(starts, times, "right") - 1, 0)

    def _on_air(self, radio: EmulatedRadio, times: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """Which send times fall while it advertised (not after a stop in this tick)."""
        which = self._segment_of(radio, times) if which is None else which
        silent = np.array([seg[1] is None for seg in radio._segments], dtype=bool)
        return ~silent[which] if len(times) else np.zeros(0, dtype=bool)

    def _schedule(self, radio: EmulatedRadio, now: float) -> np.ndarray:
        """Send times of ``radio`` in ``[next_send, now]``, advancing its schedule."""
        first = radio._next_send
        if first > now:
            return np.empty(0)
        lo, hi = self.interval
        k = int(math.ceil((now - first) / lo)) + 1
        steps = self.rng.uniform(lo, hi, k)
        t = first + np.concatenate(([0.0], np.cumsum(steps[:-1])))
        due = t[t <= now]
        radio._next_send = float(due[-1] + steps[len(due) - 1])
        return due
