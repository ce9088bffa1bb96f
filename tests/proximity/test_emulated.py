"""The emulated radio and its air: rate, RSSI by distance, addresses, payload changes, seeds."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import ConfigError, RadioError
from bluezone.proximity.backends import open_radio
from bluezone.proximity.backends.emulated import Air, EmulatedRadio, Links, LogDistanceChannel
from bluezone.proximity.radio import Advert

from .clock_helpers import SteppedWall
from .conftest import NOON

PAYLOAD_A = bytes(range(20))
PAYLOAD_B = bytes(range(100, 120))


def listen(air: Air, seconds: float, senders: dict[str, tuple], receivers: dict[str, tuple]) -> dict[str, list[Advert]]:
    """Open radios on ``air``; senders advertise a payload each; return what each receiver heard."""
    heard: dict[str, list[Advert]] = {name: [] for name in receivers}

    async def main() -> None:
        radios: list[EmulatedRadio] = []
        for name, (pos, payload) in senders.items():
            r = air.radio(name, pos)
            await r.open()
            await r.advertise(payload, -24)
            radios.append(r)
        for name, pos in receivers.items():
            r = air.radio(name, pos)
            await r.open()
            await r.start_scanning(heard[name].append)
            radios.append(r)
        await asyncio.sleep(seconds)
        for r in radios:
            await r.close()

    air.clock.run(main())  # type: ignore[attr-defined]
    return heard


def test_advert_rate_is_gaen_interval() -> None:
    clock = VirtualClock(NOON)
    heard = listen(Air(clock, 1, LogDistanceChannel(shadowing_sd=0)), 600, {"a": ((0, 0), PAYLOAD_A)}, {"b": (1, 0)})
    t = np.array([a.time for a in heard["b"]])
    gaps = np.diff(t)
    assert gaps.min() >= 0.2 - 1e-9 and gaps.max() <= 0.27 + 1e-9
    assert 600 / 0.27 - 5 <= len(t) <= 600 / 0.2 + 5  # about 4 Hz
    assert all(a.service_data == PAYLOAD_A and a.service_uuid == SERVICE_UUID for a in heard["b"])
    assert np.all(t >= NOON) and np.all(t <= NOON + 600)


def test_rssi_falls_with_distance_and_weak_packets_are_lost() -> None:
    clock = VirtualClock(NOON)
    heard = listen(
        Air(clock, 2),
        300,
        {"a": ((0, 0), PAYLOAD_A)},
        {"near": (1, 0), "mid": (5, 0), "far": (10, 0), "gone": (200, 0)},
    )
    median = {k: np.median([a.rssi for a in v]) for k, v in heard.items() if v}
    assert abs(median["near"] - (-74)) <= 2  # -24 dBm TX, 50 dB at 1 m
    assert median["near"] > median["mid"] > median["far"]
    assert len(heard["far"]) < len(heard["near"])  # some fall below -100 dBm
    assert heard["gone"] == []
    assert all(a.rssi >= -100 for v in heard.values() for a in v)


def test_a_payload_changed_mid_tick_applies_from_that_moment() -> None:
    """Hearing each other, not hearing oneself and rotating addresses are the radio contract
    (tests/ble/test_radio_contract.py); here the emulated air's own promise: the air delivers a tick's
    adverts at once, yet each carries the payload current at its own send time."""
    clock = VirtualClock(NOON)
    air = Air(clock, 3)
    heard: list[Advert] = []

    async def main() -> None:
        a, b = air.radio("a", (0, 0)), air.radio("b", (1, 0))
        async with a, b:
            await b.start_scanning(heard.append)
            await a.advertise(PAYLOAD_A, -24)
            await asyncio.sleep(10.5)
            await a.advertise(PAYLOAD_B, -24)  # mid-tick: older adverts keep the old payload
            await asyncio.sleep(10)

    clock.run(main())
    change = NOON + 10.5
    assert {a.service_data for a in heard if a.time < change} == {PAYLOAD_A}
    assert {a.service_data for a in heard if a.time >= change} == {PAYLOAD_B}


@pytest.mark.parametrize("phase", [0.05, 0.5, 0.91])
def test_a_burst_stopped_between_ticks_is_on_air_until_its_stop(phase: float) -> None:
    """A 1-s burst begun ``phase`` into a tick and stopped before the next but one: its adverts up to the stop
    are heard (about 4 at GAEN's 200-270 ms), none after it; the stop dropped those since the last tick, so a
    burst begun at 0.91 was heard once at most (research/reference_attack.py's attacker, by its phase)."""
    clock = VirtualClock(NOON)
    air = Air(clock, 5)
    heard: list[Advert] = []

    async def main() -> None:
        a, b = air.radio("a", (0, 0)), air.radio("b", (1, 0))
        async with a, b:
            await b.start_scanning(heard.append)
            for burst in range(20):
                await asyncio.sleep(max(NOON + 10 * burst + phase - clock.now(), 0.0))
                await a.advertise(PAYLOAD_A, -24)
                await asyncio.sleep(1.0)
                await a.stop_advertising()
            await asyncio.sleep(5)

    clock.run(main())
    per_burst = np.bincount([int((x.time - NOON) // 10) for x in heard], minlength=20)
    assert all(NOON + 10 * k + phase <= x.time <= NOON + 10 * k + phase + 1.0 for x in heard for k in [int((x.time - NOON) // 10)])
    assert per_burst.min() >= 3 and per_burst.max() <= 6  # 1 s / 200-270 ms: 4-5 sends, a first one up to 200 ms late


def test_positions_move_at_run_time() -> None:
    clock = VirtualClock(NOON)
    air = Air(clock, 4, LogDistanceChannel(shadowing_sd=0))
    heard: list[Advert] = []

    async def main() -> None:
        a = air.radio("a", lambda t: (0.0, 0.0) if t < NOON + 60 else (11.0, 0.0))
        b = air.radio("b", (1, 0))
        async with a, b:
            await b.start_scanning(heard.append)
            await a.advertise(PAYLOAD_A, -24)
            await asyncio.sleep(120)
            a.position = (2.0, 0.0)
            await asyncio.sleep(60)

    clock.run(main())
    by_phase = [
        [x.rssi for x in heard if lo <= x.time - NOON < hi] for lo, hi in ((1, 59), (62, 119), (122, 179))
    ]
    assert set(by_phase[0]) == {-74} and set(by_phase[2]) == {-74}  # 1 m apart
    assert set(by_phase[1]) == {-95}  # 10 m apart: 21 dB more


def test_channel_is_pluggable() -> None:
    class Fixed:
        def __init__(self) -> None:
            self.seen: list[Links] = []

        def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray:
            self.seen.append(links)
            return np.where(links.rx == links.rx.min(), -40.0, np.nan)

    channel = Fixed()
    heard = listen(Air(VirtualClock(NOON), 5, channel), 5, {"a": ((0, 0), PAYLOAD_A)}, {"b": (1, 0), "c": (2, 0)})
    assert heard["b"] and {a.rssi for a in heard["b"]} == {-40}
    assert heard["c"] == []  # NaN: lost
    links = channel.seen[0]
    assert links.tx_power.tolist() == [-24.0] * len(links.time)
    assert np.allclose(links.distance[links.rx == links.rx.max()], 2.0)


class _AskedChannel:
    """The default channel, counting how often the air asks it."""

    def __init__(self) -> None:
        self.asked = 0

    def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray:
        self.asked += 1
        return LogDistanceChannel().rssi(links, rng)


def test_a_device_alone_costs_the_air_no_channel_and_still_counts_what_it_sends() -> None:
    """A device alone on the air never hears itself, yet each tick the air worked out every advert's links to no
    one and asked the channel about them: a daemon alone for 26 virtual hours (the clock and full-disk tests) spent
    most of its time there (93,600 empty deliveries).  Now nothing is asked; the adverts sent are still counted, and
    with a second device the channel is asked as before."""
    channel, heard = _AskedChannel(), list[Advert]()
    air = Air(VirtualClock(NOON), 1, channel)
    sent = []

    async def alone() -> None:
        me = air.radio("me", (0, 0))
        await me.open()
        await me.advertise(PAYLOAD_A, -24)
        await me.start_scanning(heard.append)
        await asyncio.sleep(600)
        sent.append(me.sent)
        await me.close()

    air.clock.run(alone())  # type: ignore[attr-defined]
    assert channel.asked == 0 and heard == []
    assert 600 / 0.27 - 5 <= sent[0] <= 600 / 0.2 + 5
    together = _AskedChannel()
    assert listen(Air(VirtualClock(NOON), 1, together), 60, {"a": ((0, 0), PAYLOAD_A)}, {"b": (1, 0)})["b"]
    assert together.asked >= 59


@pytest.mark.parametrize("step", [2 * DAY_SECONDS, -3600.0])
def test_a_clock_step_is_no_time_on_the_air(step: float) -> None:
    """The air's clock steps (a paused virtual machine's clock believed two days ahead, as the daemon's CheckedClock
    does; one set back an hour): the radios send on from the new time, a minute's adverts in the next minute.  Was:
    two days of adverts worked out at once, stamped in the gap (2.1 million in the clock tests, 6 s of CPU; a month
    would fill the memory), and after a step back nothing at all for the hour."""
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    air = Air(wall, 1, LogDistanceChannel(shadowing_sd=0))
    heard: list[Advert] = []
    before: list[int] = []

    async def main() -> None:
        a, b = air.radio("a", (0, 0)), air.radio("b", (1, 0))
        for r in (a, b):
            await r.open()
        await a.advertise(PAYLOAD_A, -24)
        await b.start_scanning(heard.append)
        await asyncio.sleep(60)
        before.append(len(heard))
        wall.step = step
        await asyncio.sleep(60)
        for r in (a, b):
            await r.close()

    virtual.run(main())
    after = np.array([a.time for a in heard[before[0]:]])
    assert 60 / 0.27 - 5 <= before[0] <= 60 / 0.2 + 5
    assert 60 / 0.27 - 5 <= len(after) <= 60 / 0.2 + 5
    assert after.min() >= NOON + 60 + step and after.max() <= NOON + 120 + step


def test_same_seed_same_air() -> None:
    def once(seed: int) -> list[tuple[float, int]]:
        heard = listen(Air(VirtualClock(NOON), seed), 30, {"a": ((0, 0), PAYLOAD_A)}, {"b": (3, 0)})
        return [(a.time, a.rssi) for a in heard["b"]]

    assert once(7) == once(7)
    assert once(7) != once(8)


def test_radio_misuse_is_a_radio_error() -> None:
    r = Air(VirtualClock(NOON)).radio("a")
    with pytest.raises(RadioError):
        VirtualClock(NOON).run(r.advertise(PAYLOAD_A, -24))


def test_open_radio_dispatch() -> None:
    clock = VirtualClock(NOON)
    air = Air(clock)
    radio = open_radio("emulated", air=air, label="me", position=(1, 2))
    assert isinstance(radio, EmulatedRadio) and radio.air is air and radio.name == "emulated:me"
    alone = open_radio("emulated:3", clock=clock)
    assert isinstance(alone, EmulatedRadio) and alone.air is not air
    with pytest.raises(ConfigError, match="unknown radio backend"):
        open_radio("carrier-pigeon")
    with pytest.raises(ConfigError, match="neighbours"):
        open_radio("emulated:lots")
    with pytest.raises(ConfigError, match="takes no"):
        open_radio("emulated", bogus=1)
