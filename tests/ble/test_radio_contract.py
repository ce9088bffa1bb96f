"""What every radio backend owes the daemon: one suite, run on each backend that runs in CI.

A new backend adds a ``Bench`` below (how to make two of its radios hear each other and how
to put a foreign device next to them) and states its :class:`Capabilities` honestly; then it
must pass every test here.  Benches: the emulated radio, bumble on two in-process controllers
sharing a LocalLink (both in virtual time), and the BlueZ backend on BlueZoo (BlueZ's D-Bus
mock, real time, conftest.py; skipped without dbus-daemon and bluezoo, except under CI=true).
What only one backend does stays in that backend's own test file.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from dbus_fast import Variant
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property

from bluezone.clock import SystemClock, VirtualClock
from bluezone.crypto.bluezone3 import SERVICE_UUID as BLUEZONE3_UUID
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import ConfigError, RadioError
from bluezone.proximity.backends import open_radio, radio_names, register_radio
from bluezone.proximity.backends.fd6f import VENUE_BEACON_UUID
from bluezone.proximity.ingest import adverts_to_sightings
from bluezone.proximity.radio import Advert, AdvertCallback, Radio

T0 = 1_700_000_000.0
BATTERY = 0x180F
BZID = bytes(range(12))


@dataclass(frozen=True)
class Capabilities:
    """What a backend truly cannot do is said here, and in its ``health()``, not skipped quietly."""

    #: a new non-resolvable private address with each payload (BlueZ: bluetoothd picks the
    #: address; ``health()["rotates_address"]`` is False and the address stays the adapter's)
    rotates_address: bool
    #: ``advertise_bluezone3`` sends a second advert set; otherwise it raises RadioError
    sends_bluezone3: bool
    #: adverts under other UUIDs are dropped and counted in ``health()["adverts_ignored"]``;
    #: otherwise passed on under their own ``service_uuid`` for the daemon to count as drops
    filters_foreign: bool
    #: the RSSI the backend reports when it cannot measure one (BlueZoo says 0), else None
    fixed_rssi: int | None = None


class Bench(ABC):
    """Two radios of one backend within range, and foreign devices beside them."""

    caps: Capabilities
    #: ``health()`` items radio ``a`` reports after advertising three payloads
    health_after_three: dict[str, Any] = {}
    #: seconds to wait for a payload to be heard
    wait = 15.0
    #: whether the bench can put manufacturer data on the air (a limit of the bench, not the backend)
    carries_manufacturer_data = True

    def __init__(self) -> None:
        self.start = T0
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    @abstractmethod
    def run(self, scenario: Callable[[Bench], Awaitable[None]]) -> None:
        """Run ``scenario(self)`` on the backend's event loop and clock."""

    @abstractmethod
    def pair(self) -> tuple[Radio, Radio]:
        """Two radios in range of each other, not yet open (called inside ``run``)."""

    @abstractmethod
    def address_of(self, radio: Radio) -> str | None:
        """The address ``radio``'s adverts should come from now."""

    @abstractmethod
    async def foreign(self, uuid16: int, data: bytes, *, manufacturer: int | None = None) -> str | None:
        """A nearby non-bluezone device advertising ``data`` as service data under ``uuid16``, or as
        manufacturer data of ``manufacturer`` with ``uuid16`` listed; returns its address if known."""

    def check_setup(self, radio: Radio) -> None:
        """Backend-specific facts about an open radio the suite relies on."""

    async def cleanup(self) -> None:
        for step in reversed(self._cleanups):
            await step()

    async def until(self, check: Callable[[], bool], what: str) -> None:
        """Wait (polling, on the bench's clock) until ``check`` holds; fail naming ``what``."""
        try:
            async with asyncio.timeout(self.wait):
                while not check():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"{type(self).__name__}: {what} within {self.wait:g} s")


class EmulatedBench(Bench):
    caps = Capabilities(rotates_address=True, sends_bluezone3=True, filters_foreign=False)
    health_after_three = {"backend": "emulated", "state": "up", "rotates_address": True}

    def run(self, scenario: Callable[[Bench], Awaitable[None]]) -> None:
        from bluezone.proximity.backends.emulated import Air

        clock = VirtualClock(T0)
        self.air = Air(clock, 3)

        async def main() -> None:
            try:
                await scenario(self)
            finally:
                await self.cleanup()

        clock.run(main())

    def pair(self) -> tuple[Radio, Radio]:
        return self.air.radio("a", (0, 0)), self.air.radio("b", (1, 0))

    def address_of(self, radio: Radio) -> str | None:
        return radio.address  # type: ignore[attr-defined]

    async def foreign(self, uuid16: int, data: bytes, *, manufacturer: int | None = None) -> str | None:
        uuid = f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"
        other = self.air.radio(f"other-{uuid16:04x}", (0.5, 0), service_uuid=uuid)
        await other.open()
        await other.advertise(data, -24)  # the air carries (uuid, payload): manufacturer data as the payload
        self._cleanups.append(other.close)
        return other.address


class BumbleBench(Bench):
    caps = Capabilities(rotates_address=True, sends_bluezone3=False, filters_foreign=True)
    health_after_three = {"backend": "bumble", "state": "up", "rotates_address": True, "address_rotations": 3}

    def run(self, scenario: Callable[[Bench], Awaitable[None]]) -> None:
        from bumble.link import LocalLink

        clock = VirtualClock(T0)
        self.clock = clock

        async def main() -> None:
            self.link = LocalLink()
            try:
                await scenario(self)
            finally:
                await self.cleanup()

        clock.run(main())

    def _device(self, name: str, public: str) -> Any:
        from bumble import hci
        from bumble.controller import Controller
        from bumble.device import Device

        controller = Controller(name, link=self.link, public_address=public)
        return Device.with_hci(name, hci.Address(public), controller, controller)

    def pair(self) -> tuple[Radio, Radio]:
        from bluezone.proximity.backends.bumble_radio import BumbleRadio

        a, b = (
            BumbleRadio.on_device(self._device(n, f"F0:00:00:00:00:0{n}"), clock=self.clock, name=f"bumble:{n}")
            for n in "AB"
        )
        return a, b

    def check_setup(self, radio: Radio) -> None:
        # the in-process controller is a Bluetooth 5 one (test_bumble_radio.py covers legacy ones)
        assert radio.device is not None and radio.device.supports_le_extended_advertising  # type: ignore[attr-defined]

    def address_of(self, radio: Radio) -> str | None:
        return radio.address  # type: ignore[attr-defined]

    async def foreign(self, uuid16: int, data: bytes, *, manufacturer: int | None = None) -> str | None:
        from bumble.core import AdvertisingData
        from bumble.device import AdvertisingType

        uuid = struct.pack("<H", uuid16)
        fields = [(AdvertisingData.FLAGS, b"\x02"), (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, uuid)]
        if manufacturer is None:
            fields.append((AdvertisingData.SERVICE_DATA_16_BIT_UUID, uuid + data))
        else:  # as Android's AdvertiseData.Builder lays out a Bluezone v3 advert
            fields.append((AdvertisingData.MANUFACTURER_SPECIFIC_DATA, struct.pack("<H", manufacturer) + data))
        device = self._device("J", "F0:00:00:00:00:0C")
        await device.power_on()
        await device.start_advertising(AdvertisingType.UNDIRECTED, advertising_data=bytes(AdvertisingData(fields)))
        self._cleanups.append(device.stop_advertising)
        return None  # bumble's emulated controller sends from the public address; not asserted


class BluezBench(Bench):
    """BlueZoo re-reports a peer only when its advert changes, always with RSSI 0.

    BlueZoo types ManufacturerData ``a{sv}`` (BlueZ: ``a{qv}``), so bleak never sees a mock
    device's manufacturer data: the BlueZ parser of Bluezone v3 adverts is tested on bleak's own
    records instead (tests/proximity/test_bluezone3_scan.py::test_bluez_parses_bluezone3_adverts).
    """

    carries_manufacturer_data = False

    caps = Capabilities(rotates_address=False, sends_bluezone3=False, filters_foreign=True, fixed_rssi=0)
    health_after_three = {
        "backend": "bluez",
        "state": "up",
        "scan_mode": "active",
        "rotates_address": False,
        "advert_registrations": 3,
    }

    def __init__(self, zoo: Any) -> None:
        super().__init__()
        self.zoo = zoo

    def run(self, scenario: Callable[[Bench], Awaitable[None]]) -> None:
        self.start = time.time()  # BlueZoo runs in real time: adverts are stamped by the system clock

        async def main() -> None:
            try:
                await scenario(self)
            finally:
                await self.cleanup()

        SystemClock().run(main())

    def pair(self) -> tuple[Radio, Radio]:
        from bluezone.proximity.backends.bluez import BluezRadio

        return tuple(BluezRadio(f"hci{i}", stall_seconds=600, backoff=(0.2, 1.0)) for i in (0, 1))  # type: ignore[return-value]

    def address_of(self, radio: Radio) -> str | None:
        return self.zoo.adapters[int(radio.adapter[3:])]  # type: ignore[attr-defined]

    async def foreign(self, uuid16: int, data: bytes, *, manufacturer: int | None = None) -> str | None:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus

        assert manufacturer is None, "BlueZoo carries no manufacturer data (see the class docstring)"
        address = "00:00:00:0C:00:0C"
        await self.zoo.add_adapter(2, address)
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        bus.export("/test/other", _ForeignAdvert(uuid16, data))
        reply = await bus.call(Message(destination="org.bluez", path="/org/bluez/hci2",
                                       interface="org.bluez.LEAdvertisingManager1", member="RegisterAdvertisement",
                                       signature="oa{sv}", body=["/test/other", {}]))
        assert reply is not None and reply.message_type != MessageType.ERROR, reply

        async def disconnect() -> None:
            bus.disconnect()

        self._cleanups.append(disconnect)
        return address


class _ForeignAdvert(ServiceInterface):
    """A nearby non-bluezone device's LEAdvertisement1 (for BlueZoo)."""

    def __init__(self, uuid16: int, data: bytes) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self.uuid = f"{uuid16:04x}"
        self.data = data

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> Annotated[str, DBusSignature("s")]:  # noqa: N802
        return "broadcast"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> Annotated[list[str], DBusSignature("as")]:  # noqa: N802
        return [self.uuid]

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> Annotated[dict[str, Variant], DBusSignature("a{sv}")]:  # noqa: N802
        return {self.uuid: Variant("ay", self.data)}

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> Annotated[bool, DBusSignature("b")]:  # noqa: N802
        return True


@pytest.fixture(params=["emulated", "bumble", pytest.param("bluez", marks=pytest.mark.timeout(60))])
def bench(request: pytest.FixtureRequest) -> Bench:
    if request.param == "emulated":
        return EmulatedBench()
    if request.param == "bumble":
        return BumbleBench()
    return BluezBench(request.getfixturevalue("bluezoo"))  # a private system bus with BlueZoo (conftest.py)


def payloads(seed: int, count: int) -> list[bytes]:
    """Real GAEN service data (RPI + AEM) for ``count`` consecutive intervals of one key."""
    from bluezone.crypto.keys import DailyKey, aem_key, rpi_key
    from bluezone.crypto.derivation import aem, rpi

    key = DailyKey(bytes([seed]) * 16, 2_833_344, 144)
    rpik, aemk = rpi_key(key.key), aem_key(key.key)
    meta = bytes([0x40, 0xF6, 0, 0])
    return [r + aem(aemk, r, meta) for r in (rpi(rpik, key.rolling_start + i) for i in range(count))]


def gaen(adverts: list[Advert]) -> list[Advert]:
    return [ad for ad in adverts if ad.service_uuid == SERVICE_UUID]


# --- the contract ---------------------------------------------------------------------------------


def test_two_nodes_hear_each_others_payloads_and_not_their_own(bench: Bench) -> None:
    """Each new payload is heard by the other node, whole, from the sender's current address,
    stamped by the daemon's clock; a node never reports its own adverts."""

    async def scenario(bench: Bench) -> None:
        a, b = bench.pair()
        assert isinstance(a, Radio) and a.name and a.name != b.name
        got_a: list[Advert] = []
        got_b: list[Advert] = []
        pa, pb = payloads(1, 3), payloads(2, 3)
        async with a, b:
            await a.start_scanning(got_a.append)
            await b.start_scanning(got_b.append)
            for i, (x, y) in enumerate(zip(pa, pb, strict=True)):
                await a.advertise(x, -10)
                await b.advertise(y, -10)
                await bench.until(lambda x=x, y=y: any(ad.service_data == x for ad in got_b)
                                  and any(ad.service_data == y for ad in got_a), f"payload exchange {i}")
                heard_by_b = [ad for ad in got_b if ad.service_data == x]
                heard_by_a = [ad for ad in got_a if ad.service_data == y]
                # the payload arrives from the address set together with it
                assert {ad.address for ad in heard_by_b} == {bench.address_of(a)}, f"round {i}"
                assert {ad.address for ad in heard_by_a} == {bench.address_of(b)}, f"round {i}"
            assert {ad.service_data for ad in gaen(got_b)} == set(pa)
            assert {ad.service_data for ad in gaen(got_a)} == set(pb)  # nothing of a's own
            for ad in got_a + got_b:
                assert ad.service_uuid == SERVICE_UUID and len(ad.service_data) == 20
                assert -127 <= ad.rssi <= 20 and bench.start <= ad.time
                if bench.caps.fixed_rssi is None:
                    assert ad.rssi < 0
                else:
                    assert ad.rssi == bench.caps.fixed_rssi
            bench.check_setup(a)
            health = a.health()
            assert health.items() >= bench.health_after_three.items(), health
            assert b.health()["adverts_received"] >= 3
            assert isinstance(health["adverts_ignored"], int)

    bench.run(scenario)


def test_address_rotates_with_the_payload_where_the_backend_can(bench: Bench) -> None:
    """Rotating backends send each payload from a fresh non-resolvable private address (top two
    bits 00); the others say in health() that they do not, and keep one address."""

    async def scenario(bench: Bench) -> None:
        a, b = bench.pair()
        got_b: list[Advert] = []
        pa = payloads(3, 3)
        async with a, b:
            await b.start_scanning(got_b.append)
            for x in pa:
                await a.advertise(x, -10)
                await bench.until(lambda x=x: any(ad.service_data == x for ad in got_b), "payload heard")
            by_payload = {x: {ad.address for ad in got_b if ad.service_data == x} for x in pa}
            assert all(len(v) == 1 for v in by_payload.values()), by_payload
            addresses = [next(iter(v)) for v in by_payload.values()]
            assert a.rotates_address is bench.caps.rotates_address
            assert a.health()["rotates_address"] is bench.caps.rotates_address
            if bench.caps.rotates_address:
                assert len(set(addresses)) == 3
                assert all(x is not None and int(x.split(":")[0], 16) < 0x40 for x in addresses)  # NRPA
            else:
                assert len(set(addresses)) == 1

    bench.run(scenario)


def test_each_radio_says_its_adapters_own_address_which_no_rotation_changes(bench: Bench) -> None:
    """What a calibration is tied to (docs/calibration.md): the adapter's own address, not its name and not the
    advertising address a rotating backend changes with each payload."""

    async def scenario(bench: Bench) -> None:
        a, b = bench.pair()
        async with a, b:
            before = (a.adapter_address, b.adapter_address)
            for x in payloads(4, 2):
                await a.advertise(x, -10)
            assert (a.adapter_address, b.adapter_address) == before
        assert all(x is not None and re.fullmatch(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}", x) for x in before), before
        assert before[0] != before[1]
        if isinstance(bench, BluezBench):
            assert list(before) == [bench.zoo.adapters[0], bench.zoo.adapters[1]]

    bench.run(scenario)


def test_malformed_and_foreign_adverts_reach_the_count_not_the_store(bench: Bench) -> None:
    """A wrong-length 0xFD6F payload is passed on (the daemon validates it and counts it
    malformed); a foreign device's advert never arrives as GAEN: the backend drops and counts it
    in ``adverts_ignored``, or passes it under its own UUID for the daemon to count."""

    async def scenario(bench: Bench) -> None:
        a, b = bench.pair()
        got: list[Advert] = []
        async with a, b:
            await b.start_scanning(got.append)
            await a.advertise(b"\x01\x02\x03", -10)
            await bench.until(lambda: any(ad.service_data == b"\x01\x02\x03" for ad in got), "short payload passed on")
            foreign_address = await bench.foreign(BATTERY, b"\x64")
            if bench.caps.filters_foreign:
                await bench.until(lambda: int(b.health()["adverts_ignored"]) >= 1, "foreign advert counted")
            else:
                await bench.until(lambda: any(ad.service_uuid != SERVICE_UUID for ad in got), "foreign passed on")
        assert {ad.service_data for ad in gaen(got)} == {b"\x01\x02\x03"}
        foreign = [ad for ad in got if ad.service_uuid != SERVICE_UUID]
        if bench.caps.filters_foreign:
            assert not foreign
        else:
            assert {ad.service_data for ad in foreign} == {b"\x64"}
        if foreign_address is not None:
            assert foreign_address not in {ad.address for ad in gaen(got)}
        ingested = adverts_to_sightings(got)
        assert len(ingested.sightings) == 0 and len(ingested.bluezone3) == 0
        assert ingested.malformed == len(got) > 0

    bench.run(scenario)


def test_bluezone3_adverts_are_heard_and_sent_where_the_backend_can(bench: Bench) -> None:
    """Every backend hears a Bluezone v3 phone (0x4E56 listed, the ID as manufacturer data of
    0x22B5) as ``service_uuid`` 0x4E56 with the 12-byte ID; backends that cannot send a second
    advert set say so with a RadioError."""

    async def scenario(bench: Bench) -> None:
        a, b = bench.pair()
        got: list[Advert] = []
        async with a, b:
            await b.start_scanning(got.append)
            if bench.carries_manufacturer_data:
                await bench.foreign(0x4E56, BZID, manufacturer=0x22B5)
                await bench.until(lambda: any(ad.service_uuid == BLUEZONE3_UUID for ad in got), "v3 phone heard")
                assert {(ad.service_uuid, ad.service_data) for ad in got} == {(BLUEZONE3_UUID, BZID)}
                assert len(adverts_to_sightings(got).bluezone3) == len(got)
            if bench.caps.sends_bluezone3:
                mine = bytes(range(100, 112))
                await a.advertise(payloads(4, 1)[0], -10)
                await a.advertise_bluezone3(mine, -10)
                await bench.until(lambda: any(ad.service_data == mine for ad in got), "v3 advert sent")
                assert {ad.service_uuid for ad in got if ad.service_data == mine} == {BLUEZONE3_UUID}
            else:
                with pytest.raises(RadioError, match="Bluezone v3"):
                    await a.advertise_bluezone3(BZID, -10)

    bench.run(scenario)


def test_venue_beacons_are_passed_on_under_their_own_uuid(bench: Bench) -> None:
    """A venue beacon's 0x4256 service data reaches the daemon (it hands it to the venue listener,
    bluezone.venues.nearby), under its own UUID, never as a GAEN advert."""
    frame = bytes(range(40, 60))

    async def scenario(bench: Bench) -> None:
        a, b = bench.pair()
        got: list[Advert] = []
        async with a, b:
            await b.start_scanning(got.append)
            await bench.foreign(0x4256, frame)
            await bench.until(lambda: any(ad.service_uuid == VENUE_BEACON_UUID for ad in got), "venue beacon heard")
        assert {(ad.service_uuid, ad.service_data) for ad in got} == {(VENUE_BEACON_UUID, frame)}

    bench.run(scenario)


# --- the registry a new backend joins -------------------------------------------------------------


class _Toy(Radio):
    """A backend in a dozen lines: hears back a fixed list of adverts."""

    def __init__(self, spec: str, adverts: list[Advert]) -> None:
        self.name = spec
        self.adverts = adverts
        self.sent: list[bytes] = []

    async def advertise(self, service_data: bytes, tx_power: int) -> None:
        self.sent.append(service_data)

    async def start_scanning(self, on_advert: AdvertCallback) -> None:
        for ad in self.adverts:
            on_advert(ad)


def test_register_radio_adds_a_backend_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from bluezone.proximity.backends import registry

    monkeypatch.setattr(registry, "_RADIOS", dict(registry._RADIOS))
    assert set(radio_names()) == {"emulated", "auto", "bluez", "bumble"}
    seen: list[dict[str, Any]] = []

    def toy(spec: str, **options: Any) -> Radio:
        seen.append(options)
        return _Toy(spec, [Advert(T0, b"r" * 20, -60)])

    register_radio("toy", toy)
    assert "toy" in radio_names()
    radio = open_radio("toy:17", clock=None, adapter=None)
    assert isinstance(radio, _Toy) and radio.name == "toy:17" and seen == [{"clock": None, "adapter": None}]
    got: list[Advert] = []

    async def main() -> None:
        async with radio:
            await radio.advertise(b"x" * 20, -10)
            await radio.start_scanning(got.append)

    VirtualClock(T0).run(main())
    assert radio.sent == [b"x" * 20] and len(adverts_to_sightings(got).sightings) == 1
    with pytest.raises(RadioError, match="Bluezone v3"):  # what a backend inherits unless it can
        VirtualClock(T0).run(radio.advertise_bluezone3(BZID, -10))
    with pytest.raises(ConfigError, match="unknown radio backend.*toy"):
        open_radio("carrier-pigeon")
    with pytest.raises(ConfigError, match="letters, digits"):
        register_radio("bad:name", toy)
    with pytest.raises(ConfigError, match="built-in"):  # the built-ins registered themselves first
        register_radio("bluez", toy)
    assert radio_names()[:4] == ["emulated", "auto", "bluez", "bumble"]

