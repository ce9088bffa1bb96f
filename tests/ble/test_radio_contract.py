"""What every radio backend owes the daemon, checked on each backend that runs in CI.

A new backend joins ``BACKENDS`` with a bench: two radios of its own kind, a third that sends a
wrong-length 0xFD6F payload, and a way to put another service's advert on the air.  The
checks are the same for all:

* two nodes hear each other's payloads, under 0xFD6F, never their own;
* a payload is always heard from one address, and a radio that says it ``rotates_address``
  shows a new address with each new payload (one that cannot says so in ``health()``);
* a short 0xFD6F payload is passed on as heard (the daemon validates and counts it), and
  another service's advert never arrives as a GAEN advert.

Emulated and bumble (two controllers on a LocalLink) run in virtual time; BlueZ runs through
real D-Bus against BlueZoo (``tests/ble/conftest.py``).  Backend-specific behaviour stays in
each backend's own test file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from bluezone.clock import Clock, SystemClock, VirtualClock
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.proximity.radio import Advert, Radio

T0 = 1_700_000_000.0
SHORT = b"\x01\x02\x03"  # a wrong-length 0xFD6F payload
BATTERY_UUID = "0000180f-0000-1000-8000-00805f9b34fb"


def payloads(seed: int, count: int) -> list[bytes]:
    return [bytes([seed, i]) * 10 for i in range(count)]


@dataclass
class Bench:
    """Two radios under test, what they heard, and the backend's ways to wait and to send junk."""

    a: Radio
    b: Radio
    send_short: Callable[[], Awaitable[None]]
    send_foreign: Callable[[], Awaitable[None]]
    settle: float  # seconds after which a sent advert has surely been heard
    heard_a: list[Advert] = field(default_factory=list)
    heard_b: list[Advert] = field(default_factory=list)

    async def until(self, check: Callable[[], bool], what: str) -> None:
        """Wait up to ``settle`` seconds (polling, so a real backend moves on as soon as it can)."""
        async with asyncio.timeout(self.settle):
            while not check():
                await asyncio.sleep(0.05)
        assert check(), what


BenchFactory = Callable[[Clock], contextlib.AbstractAsyncContextManager[Bench]]


@contextlib.asynccontextmanager
async def emulated_bench(clock: Clock) -> AsyncIterator[Bench]:
    from bluezone.proximity.backends.emulated import Air

    air = Air(clock, 3)
    a, b = air.radio("a", (0.0, 0.0)), air.radio("b", (1.0, 0.0))
    junk, foreign = air.radio("junk", (0.5, 0.5)), air.radio("other", (0.5, -0.5), service_uuid=BATTERY_UUID)
    async with a, b, junk, foreign:
        yield Bench(a, b, lambda: junk.advertise(SHORT, -24), lambda: foreign.advertise(b"\x64", -24), settle=5.0)


@contextlib.asynccontextmanager
async def bumble_bench(clock: Clock) -> AsyncIterator[Bench]:
    from bumble.core import AdvertisingData
    from bumble.device import AdvertisingType
    from bumble.link import LocalLink

    from bluezone.proximity.backends.bumble_radio import gaen_advertising_data

    from .test_bumble_radio import node, other_device

    link = LocalLink()
    a, b = node(link, "A", "F0:00:00:00:00:0A", clock), node(link, "B", "F0:00:00:00:00:0B", clock)
    junk = other_device(link)

    async def send(data: bytes) -> None:
        await junk.start_advertising(AdvertisingType.UNDIRECTED, advertising_data=data)

    battery = bytes(AdvertisingData([(AdvertisingData.SERVICE_DATA_16_BIT_UUID, b"\x0f\x18\x64")]))
    async with a, b:
        await junk.power_on()
        yield Bench(a, b, lambda: send(gaen_advertising_data(SHORT)), lambda: send(battery), settle=5.0)


@contextlib.asynccontextmanager
async def bluez_bench(clock: Clock) -> AsyncIterator[Bench]:
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    from .test_bluez_radio import OtherAdvert, radio

    a, b, junk = radio("hci0"), radio("hci1"), radio("hci2")
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()

    async def send_foreign() -> None:
        bus.export("/test/other", OtherAdvert())
        await bus.call(Message(destination="org.bluez", path="/org/bluez/hci3",
                               interface="org.bluez.LEAdvertisingManager1", member="RegisterAdvertisement",
                               signature="oa{sv}", body=["/test/other", {}]))

    try:
        async with a, b, junk:
            yield Bench(a, b, lambda: junk.advertise(SHORT, -10), send_foreign, settle=15.0)
    finally:
        bus.disconnect()


def gaen(adverts: list[Advert]) -> set[bytes]:
    return {ad.service_data for ad in adverts if ad.service_uuid == SERVICE_UUID}


async def hear_each_other(bench: Bench) -> None:
    await bench.a.start_scanning(bench.heard_a.append)
    await bench.b.start_scanning(bench.heard_b.append)
    pa, pb = payloads(1, 1)[0], payloads(2, 1)[0]
    await bench.a.advertise(pa, -10)
    await bench.b.advertise(pb, -10)
    await bench.until(lambda: pa in gaen(bench.heard_b) and pb in gaen(bench.heard_a), "payload exchange")
    assert pa not in gaen(bench.heard_a) and pb not in gaen(bench.heard_b), "a node must not hear itself"
    assert all(ad.rssi <= 20 and len(ad.service_data) == 20 for ad in bench.heard_b if ad.service_data == pa)


async def address_rotates_with_payload(bench: Bench) -> None:
    await bench.b.start_scanning(bench.heard_b.append)
    sent = payloads(3, 3)
    for p in sent:
        await bench.a.advertise(p, -10)
        await bench.until(lambda p=p: p in gaen(bench.heard_b), "each new payload heard")
    senders = {p: {ad.address for ad in bench.heard_b if ad.service_data == p} for p in sent}
    assert all(len(addresses) == 1 for addresses in senders.values()), senders
    rotates = bool(bench.a.health().get("rotates_address", bench.a.rotates_address))
    if rotates:
        assert len({next(iter(addresses)) for addresses in senders.values()}) == len(sent), senders
    else:
        assert bench.a.health().get("rotates_address") is False, "a radio that cannot rotate must say so"


async def malformed_passed_on_foreign_kept_out(bench: Bench) -> None:
    await bench.b.start_scanning(bench.heard_b.append)
    await bench.send_foreign()
    await bench.send_short()
    await bench.until(lambda: SHORT in gaen(bench.heard_b), "short 0xFD6F payload passed on")
    assert gaen(bench.heard_b) == {SHORT}, "another service's advert arrived as a GAEN advert"


CONTRACT = [hear_each_other, address_rotates_with_payload, malformed_passed_on_foreign_kept_out]


def _run(factory: BenchFactory, clock: Clock, check: Callable[[Bench], Awaitable[None]]) -> None:
    async def main() -> None:
        async with factory(clock) as bench:
            await check(bench)

    clock.run(main())


@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
@pytest.mark.parametrize("factory", [emulated_bench, bumble_bench], ids=["emulated", "bumble"])
def test_virtual_time_backends(factory: BenchFactory, check: Callable[[Bench], Awaitable[None]]) -> None:
    _run(factory, VirtualClock(T0), check)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("check", CONTRACT, ids=lambda c: c.__name__)
def test_bluez_on_bluezoo(bluezoo: object, check: Callable[[Bench], Awaitable[None]]) -> None:
    async def main() -> None:
        await bluezoo.add_adapter(2, "00:00:00:0C:00:0C")  # type: ignore[attr-defined]  # the junk sender
        await bluezoo.add_adapter(3, "00:00:00:0D:00:0D")  # type: ignore[attr-defined]  # another service
        async with bluez_bench(SystemClock()) as bench:
            await check(bench)

    SystemClock().run(main())


def test_a_registered_backend_opens_by_its_moniker(monkeypatch: pytest.MonkeyPatch) -> None:
    from bluezone.errors import ConfigError
    from bluezone.proximity import backends
    from bluezone.proximity.backends import registry
    from bluezone.proximity.backends.emulated import Air

    monkeypatch.setattr(registry, "_RADIOS", {})
    air = Air(VirtualClock(T0), 1)
    opened: list[tuple[str, dict[str, object]]] = []

    def factory(spec: str, **kwargs: object) -> Radio:
        opened.append((spec, kwargs))
        return air.radio("mine")

    backends.register_radio("mine", factory)
    assert isinstance(backends.open_radio("mine:x", clock=None), Radio)
    assert opened == [("mine:x", {"clock": None})] and "mine" in backends.radio_names()
    with pytest.raises(ConfigError, match="built-in"):
        backends.register_radio("bluez", factory)
    with pytest.raises(ConfigError, match="mine"):
        backends.open_radio("nothere")
