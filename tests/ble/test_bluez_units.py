"""Pieces of the BlueZ radio that BlueZoo cannot reach: scan-mode choice, advert conversion."""

from __future__ import annotations

import asyncio
import logging

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from bluezone.clock import VirtualClock
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import RadioUnavailableError
from bluezone.proximity.backends.bluez import BluezRadio
from bluezone.proximity.backends.bluez_dbus import AdapterInfo
from bluezone.proximity.radio import Advert

BATTERY = "0000180f-0000-1000-8000-00805f9b34fb"


def adapter(monitor: bool) -> AdapterInfo:
    return AdapterInfo(
        name="hci0", path="/org/bluez/hci0", address="00:11:22:33:44:55", powered=True,
        discovering=False, can_advertise=True, can_monitor=monitor, properties={},
        advertising={"SupportedInstances": 5, "ActiveInstances": 0},
        monitor={"SupportedMonitorTypes": ["or_patterns"]} if monitor else {},
    )


@pytest.mark.parametrize(
    ("requested", "monitor", "chosen"),
    [("auto", True, "active"), ("auto", False, "active"), ("active", True, "active"), ("passive", True, "passive")],
)
def test_scan_mode_choice(requested: str, monitor: bool, chosen: str) -> None:
    radio = BluezRadio("hci0", scan_mode=requested)  # type: ignore[arg-type]
    assert radio._pick_scan_mode(adapter(monitor)) == chosen


def test_passive_asked_for_but_unavailable_says_what_is_needed() -> None:
    radio = BluezRadio("hci0", scan_mode="passive")
    with pytest.raises(RadioUnavailableError, match="--experimental") as exc:
        radio._pick_scan_mode(adapter(False))
    assert exc.value.reason == "no-passive-scan"


def test_active_scan_is_said_once_and_not_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """It warned "passive scanning unavailable (start bluetoothd with --experimental)": since the active scan asks
    for every advert (0092903) that advice took away the scan that hears enough (user31's walk)."""
    radio = BluezRadio("hci0")
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            radio._pick_scan_mode(adapter(False))
    said = [r for r in caplog.records if "scanning actively" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert not any("--experimental" in r.getMessage() for r in caplog.records)


def test_auto_scans_actively_beside_an_advertisement_monitor(caplog: pytest.LogCaptureFixture) -> None:
    """`auto` scanned passively wherever bluetoothd ran with --experimental, and through BlueZ that scan is told a
    steady phone about once per RPI and 8 dB swing (docs/bluetooth.md): too few sightings for a verdict, while the
    active scan asks for every advert (0092903). The monitor is now left unused unless passive is asked for."""
    radio = BluezRadio("hci0")
    with caplog.at_level(logging.INFO):
        assert radio._pick_scan_mode(adapter(True)) == "active"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    asked = BluezRadio("hci0", scan_mode="passive")  # asked for by name in Python: the monitor is used
    assert asked._pick_scan_mode(adapter(True)) == "passive"


def advert(service_data: dict[str, bytes], uuids: list[str], rssi: int = -61, tx: int | None = None) -> AdvertisementData:
    return AdvertisementData(None, {}, service_data, uuids, tx, rssi, ())


def test_a_callback_without_rssi_is_no_packet() -> None:
    """When discovery stops BlueZ drops every device's RSSI and bleak calls back with the cached
    service data and a made-up -127 dBm: that would store an old RPI as seen now."""
    clock = VirtualClock(1_700_000_000.0)
    radio = BluezRadio("hci0", clock=clock)
    got: list[Advert] = []
    radio._on_advert = got.append
    device = BLEDevice("5A:11:22:33:44:55", None, None)
    props = {"Address": device.address, "ServiceData": {SERVICE_UUID: b"r" * 20}, "UUIDs": [SERVICE_UUID]}
    fresh = AdvertisementData(None, {}, {SERVICE_UUID: b"r" * 20}, [SERVICE_UUID], None, -60, ("/dev", {**props, "RSSI": -60}))
    stale = AdvertisementData(None, {}, {SERVICE_UUID: b"r" * 20}, [SERVICE_UUID], None, -127, ("/dev", props))

    async def feed() -> None:
        radio._detected(device, fresh)
        radio._detected(device, stale)

    clock.run(feed())
    assert [a.rssi for a in got] == [-60] and radio.health()["adverts_ignored"] == 1


def test_detected_adverts_become_adverts_on_the_clock() -> None:
    clock = VirtualClock(1_700_000_000.0)
    radio = BluezRadio("hci0", clock=clock)
    got: list[Advert] = []
    radio._on_advert = got.append
    device = BLEDevice("5A:11:22:33:44:55", None, None)

    async def feed() -> None:
        await asyncio.sleep(30)
        radio._detected(device, advert({SERVICE_UUID: b"r" * 20}, [SERVICE_UUID], tx=-8))
        radio._detected(device, advert({}, [SERVICE_UUID]))  # listed, no data: passed as empty
        radio._detected(device, advert({BATTERY: b"\x64"}, [BATTERY]))  # someone's headphones
        radio._detected(device, advert({}, []))

    clock.run(feed())
    assert [(a.service_data, a.rssi, a.tx_power, a.address) for a in got] == [
        (b"r" * 20, -61, -8, "5A:11:22:33:44:55"),
        (b"", -61, None, "5A:11:22:33:44:55"),
    ]
    assert all(a.time == 1_700_000_030.0 and a.service_uuid == SERVICE_UUID for a in got)
    health = radio.health()
    assert health["adverts_received"] == 4 and health["adverts_ignored"] == 2


def test_the_supervisor_outlives_an_error_nobody_foresaw(caplog: pytest.LogCaptureFixture) -> None:
    """bleak and dbus-fast raise more kinds than they document; recovery must go on after one."""
    clock = VirtualClock(1_700_000_000.0)
    radio = BluezRadio("hci0", clock=clock, backoff=(1.0, 4.0))
    radio.state = "up"
    troubles = iter([ValueError("empty reply"), "powered-off"])
    recovered: list[bool] = []

    async def next_trouble() -> str:
        item = next(troubles, None)
        if item is None:
            await asyncio.sleep(3600)
        if isinstance(item, Exception):
            raise item
        return str(item)

    async def recover(gone: bool) -> None:
        recovered.append(gone)

    radio._next_trouble = next_trouble  # type: ignore[method-assign]
    radio._recover = recover  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.create_task(radio._supervise())
        await asyncio.sleep(10)
        assert not task.done()
        task.cancel()

    with caplog.at_level(logging.WARNING):
        clock.run(main())
    assert recovered == [False] and radio.counts["errors"] == 1
    assert "unexpected ValueError while recovering (empty reply)" in caplog.text
