"""The BlueZ radio end to end through real D-Bus: bleak scanning and LEAdvertisement1 on BlueZoo.

BlueZoo re-reports a peer only when its advert changes and always with RSSI 0, so these tests
look for each new payload once; duplicates and RSSI realism are the emulated radio's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

import pytest
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property

from bluezone.crypto.bluezone3 import SERVICE_UUID as BLUEZONE3_UUID
from bluezone.crypto.keys import DailyKey, aem_key, rpi_key
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.crypto.derivation import aem, rpi
from bluezone.errors import RadioUnavailableError
from bluezone.proximity.backends.bluez import BluezRadio
from bluezone.proximity.backends.fd6f import VENUE_BEACON_UUID
from bluezone.proximity.radio import Advert

from .conftest import BlueZoo

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000.0
WAIT = 15.0  # generous upper bound; the usual wait is one BlueZoo scan interval


def payloads(seed: int, count: int) -> list[bytes]:
    """Real GAEN service data (RPI + AEM) for ``count`` consecutive intervals of one key."""
    key = DailyKey(bytes([seed]) * 16, 2_833_344, 144)
    rpik, aemk = rpi_key(key.key), aem_key(key.key)
    meta = bytes([0x40, 0xF6, 0, 0])
    rpis = [rpi(rpik, key.rolling_start + i) for i in range(count)]
    return [r + aem(aemk, r, meta) for r in rpis]


def radio(adapter: str) -> BluezRadio:
    return BluezRadio(adapter, stall_seconds=600, backoff=(0.2, 1.0))


async def until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait (polling) for ``check``; fail naming ``what`` if it never holds."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


def heard(adverts: list[Advert]) -> set[bytes]:
    return {a.service_data for a in adverts if a.service_uuid == SERVICE_UUID}


async def test_adapter_removed_and_readded_recovers(bluezoo: BlueZoo) -> None:
    a, b = radio("hci0"), radio("hci1")
    got_b: list[Advert] = []
    pa = payloads(3, 3)
    async with a, b:
        await a.start_scanning(lambda ad: None)
        await b.start_scanning(got_b.append)
        await a.advertise(pa[0], -10)
        await until(lambda: pa[0] in heard(got_b), "first payload")

        await bluezoo.remove_adapter(0)
        # the removal is counted when flagged and the state set when the supervisor takes it up: under
        # load the first can be seen alone for a moment
        await until(lambda: a.health()["adapter_removed"] == 1, "removal noticed")
        await until(lambda: a.health()["state"].startswith("recovering"), "recovery under way")
        await bluezoo.add_adapter(0, bluezoo.adapters[0])
        await until(lambda: a.health()["state"] == "up", "advertiser back up")
        assert a.health()["recoveries"] == 1

        await a.advertise(pa[1], -10)  # the daemon's next rotation
        await until(lambda: pa[1] in heard(got_b), "payload after re-add")

        # the scanning side loses its adapter too, and hears again once it is back
        await bluezoo.remove_adapter(1)
        await until(lambda: b.health()["adapter_removed"] == 1, "scanner removal noticed")
        await bluezoo.add_adapter(1, bluezoo.adapters[1])
        await until(lambda: b.health()["state"] == "up", "scanner back up")
        await a.advertise(pa[2], -10)
        await until(lambda: pa[2] in heard(got_b), "scan resumed after re-add")
        assert b.health()["recoveries"] == 1


async def test_bluetoothd_restart_and_power_cycle(bluezoo: BlueZoo) -> None:
    a, b = radio("hci0"), radio("hci1")
    got_b: list[Advert] = []
    pa = payloads(4, 3)
    async with a, b:
        await b.start_scanning(got_b.append)
        await a.advertise(pa[0], -10)
        await until(lambda: pa[0] in heard(got_b), "first payload")

        await asyncio.to_thread(bluezoo.stop_zoo)
        await until(lambda: a.health()["bluetoothd_restarts"] == 1, "bluetoothd loss noticed")
        await until(lambda: b.health()["bluetoothd_restarts"] == 1, "bluetoothd loss noticed (b)")
        await asyncio.to_thread(bluezoo.start_zoo)
        await until(lambda: a.health()["state"] == "up" and b.health()["state"] == "up", "both up")
        # the advert was re-registered by the supervisor without a call from the daemon
        await until(lambda: a.health()["advert_registrations"] >= 2, "advert re-registered")
        mark = len(got_b)
        await a.advertise(pa[1], -10)
        await until(lambda: pa[1] in heard(got_b[mark:]), "payload after bluetoothd restart")

        await bluezoo.set_powered(0, False)
        await until(lambda: a.health()["adapter_powered_off"] == 1, "power-off noticed")
        await bluezoo.set_powered(0, True)
        await until(lambda: a.health()["state"] == "up", "powered back on")
        await a.advertise(pa[2], -10)
        await until(lambda: pa[2] in heard(got_b), "payload after power cycle")


class OtherAdvert(ServiceInterface):
    """A nearby non-GAEN device: battery service data under 0x180F."""

    def __init__(self) -> None:
        super().__init__("org.bluez.LEAdvertisement1")

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> Annotated[str, DBusSignature("s")]:  # noqa: N802
        return "broadcast"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> Annotated[list[str], DBusSignature("as")]:  # noqa: N802
        return ["180f"]

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> Annotated[dict[str, Variant], DBusSignature("a{sv}")]:  # noqa: N802
        return {"180f": Variant("ay", b"\x64")}

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> Annotated[bool, DBusSignature("b")]:  # noqa: N802
        return True


async def test_unavailable_reasons(bluezoo: BlueZoo) -> None:
    with pytest.raises(RadioUnavailableError) as missing:
        await radio("hci7").open()
    assert missing.value.reason == "no-adapter" and "hci0" in str(missing.value)

    await bluezoo.power_off(1)
    with pytest.raises(RadioUnavailableError) as off:
        await radio("hci1").open()
    assert off.value.reason == "powered-off" and "power on" in str(off.value)

    await asyncio.to_thread(bluezoo.stop_zoo)
    with pytest.raises(RadioUnavailableError) as stopped:
        await radio("hci0").open()
    assert stopped.value.reason == "bluetoothd-not-running"
    assert "systemctl" in str(stopped.value)


async def test_no_system_bus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/nothing-here")
    with pytest.raises(RadioUnavailableError) as exc:
        await radio("hci0").open()
    assert exc.value.reason == "no-dbus"


async def test_permission_denied_is_named(locked_bluezoo: BlueZoo) -> None:
    with pytest.raises(RadioUnavailableError) as denied:
        await radio("hci0").open()
    assert denied.value.reason == "permission" and "bluetooth" in str(denied.value)


@pytest.mark.slow
async def test_quiet_scan_is_restarted(bluezoo: BlueZoo) -> None:
    """No advert for stall_seconds while one was heard before: restart the scan, then wait longer."""
    a, b = radio("hci0"), BluezRadio("hci1", stall_seconds=2.0, backoff=(0.2, 1.0))
    got_b: list[Advert] = []
    pa = payloads(5, 2)
    async with a, b:
        await b.start_scanning(got_b.append)
        await a.advertise(pa[0], -10)
        await until(lambda: pa[0] in heard(got_b), "first payload")
        # BlueZoo re-reports nothing while the payload stays the same: the scan looks dead
        await until(lambda: b.health()["scan_stalls"] >= 1, "stall noticed")
        assert b.health()["state"] == "up"
        await a.advertise(pa[1], -10)
        await until(lambda: pa[1] in heard(got_b), "payload after scan restart")


async def test_discovery_stopped_behind_our_back_is_restarted(bluezoo: BlueZoo) -> None:
    a, b = radio("hci0"), radio("hci1")
    got_b: list[Advert] = []
    pa = payloads(6, 2)
    async with a, b:
        await b.start_scanning(got_b.append)
        await a.advertise(pa[0], -10)
        await until(lambda: pa[0] in heard(got_b), "first payload")
        await bluezoo.call("/org/bluez/hci1", "org.bluez.Adapter1", "StopDiscovery")
        await until(lambda: b.health()["scan_restarts"] >= 1, "stop noticed")
        await a.advertise(pa[1], -10)
        await until(lambda: pa[1] in heard(got_b), "payload after restart")
        assert b.health()["recoveries"] == 0  # only the scan was restarted


async def test_released_advert_is_registered_again(bluezoo: BlueZoo) -> None:
    """BlueZ calls Release() when it drops an advert on its own; the node registers it again."""
    a, b = radio("hci0"), radio("hci1")
    got_b: list[Advert] = []
    pa = payloads(7, 2)
    async with a, b:
        await b.start_scanning(got_b.append)
        await a.advertise(pa[0], -10)
        await until(lambda: pa[0] in heard(got_b), "first payload")
        assert a._bus is not None and a._advertiser is not None
        path = a._advertiser._path
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:  # what bluetoothd does when it drops an advertisement
            reply = await bus.call(Message(destination=a._bus.unique_name, path=path,
                                           interface="org.bluez.LEAdvertisement1", member="Release"))
            assert reply is not None and reply.message_type != MessageType.ERROR, reply
        finally:
            bus.disconnect()
        await until(lambda: a.health()["advert_released"] == 1 and a.health()["recoveries"] == 1,
                    "release handled")
        assert a.health()["advert_registrations"] >= 2
        await a.advertise(pa[1], -10)
        await until(lambda: pa[1] in heard(got_b), "payload after release")


async def test_no_free_advertising_slot_keeps_scanning_and_retries(bluezoo: BlueZoo) -> None:
    """Another program holds every advertising instance: the node still listens, says so
    once, and advertises as soon as a slot frees up."""
    hog = await MessageBus(bus_type=BusType.SYSTEM).connect()
    for i in range(15):  # BlueZoo's SupportedInstances
        hog.export(f"/hog/{i}", OtherAdvert())
        reply = await hog.call(Message(destination="org.bluez", path="/org/bluez/hci0",
                                       interface="org.bluez.LEAdvertisingManager1",
                                       member="RegisterAdvertisement", signature="oa{sv}",
                                       body=[f"/hog/{i}", {}]))
        assert reply is not None and reply.message_type != MessageType.ERROR
    a = BluezRadio("hci0", stall_seconds=4.0, backoff=(0.2, 1.0))
    b = radio("hci1")
    got_a: list[Advert] = []
    got_b: list[Advert] = []
    pa, pb = payloads(8, 1), payloads(9, 1)
    async with a, b:
        await a.start_scanning(got_a.append)
        await b.start_scanning(got_b.append)
        await a.advertise(pa[0], -10)
        assert a.health()["advertise_failures"] >= 1 and a.health()["state"] == "up"
        await b.advertise(pb[0], -10)
        await until(lambda: pb[0] in heard(got_a), "a still hears b")
        hog.disconnect()  # BlueZoo frees the hog's adverts when it leaves the bus
        await until(lambda: pa[0] in heard(got_b), "a advertises once a slot is free")
        assert a.health()["recoveries"] == 0


async def test_the_active_scan_asks_bluez_for_every_advert(bluezoo: BlueZoo) -> None:
    """The discovery filter bleak sends with SetDiscoveryFilter, as the adapter took it: our UUIDs, and
    DuplicateData true with an RSSI floor, without which bluetoothd signals a repeat only when its data
    changed or its RSSI moved 8 dB (docs/bluetooth.md; the effect: test_bluez_cached_service_data.py)."""
    b = BluezRadio("hci1", scan_mode="active", stall_seconds=600, backoff=(0.2, 1.0))
    async with b:
        await b.start_scanning(lambda advert: None)
        assert b.scan_mode == "active" and b._scanner is not None
        sent = b._scanner._backend._filters  # type: ignore[attr-defined]
        assert (sent["DuplicateData"].signature, sent["DuplicateData"].value) == ("b", True)
        assert (sent["RSSI"].signature, sent["RSSI"].value) == ("n", -127)
        assert set(sent["UUIDs"].value) == {SERVICE_UUID, BLUEZONE3_UUID, VENUE_BEACON_UUID}
