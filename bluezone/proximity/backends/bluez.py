"""The BlueZ radio: bleak scans, a D-Bus ``LEAdvertisement1`` object broadcasts, a supervisor heals.

A node on a Raspberry Pi must keep working for weeks, so after ``open()`` nothing here gives
up: bluetoothd restarting, the adapter being removed or powered off, the advertisement being
released and scanning going quiet are each logged once, counted in :meth:`health`, and
followed by a backed-off re-registration of the advertisement and a fresh scan.  Adverts
already handed to ``on_advert`` are the daemon's; nothing here buffers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from bleak import BleakScanner
from bleak.args.bluez import OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from bluezone.clock import Clock, SystemClock
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import BluezCallError, RadioError, RadioUnavailableError
from bluezone.errors import RadioUnavailableReason as Reason
from bluezone.proximity.backends.bluez_advert import Advertiser
from bluezone.proximity.backends.bluez_dbus import (
    ADAPTER,
    BLUEZ,
    DBUS,
    PERMISSION,
    AdapterInfo,
    call,
    connect_system_bus,
    find_adapter,
    is_gone,
    is_retryable,
)
from bluezone.crypto.bluezone3 import SERVICE_UUID as BLUEZONE3_UUID
from bluezone.proximity.backends.bluez_cache import CachedPayloads
from bluezone.proximity.backends.fd6f import BASE_UUID_TAIL, VENUE_BEACON_UUID, heard_payloads
from bluezone.proximity.radio import Advert, AdvertCallback, Radio

log = logging.getLogger(__name__)

ScanMode = Literal["auto", "active", "passive"]

#: adverts carrying 0xFD6F as service data or in a 16-bit service UUID list (passive scanning)
FD6F_PATTERNS = [
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\x6f\xfd"),
    OrPattern(0, AdvertisementDataType.COMPLETE_LIST_SERVICE_UUID16, b"\x6f\xfd"),
    OrPattern(0, AdvertisementDataType.INCOMPLETE_LIST_SERVICE_UUID16, b"\x6f\xfd"),
    # Bluezone v3 phones list 0x4E56 (their ID travels as manufacturer data of company 0x22B5)
    OrPattern(0, AdvertisementDataType.COMPLETE_LIST_SERVICE_UUID16, b"\x56\x4e"),
    OrPattern(0, AdvertisementDataType.INCOMPLETE_LIST_SERVICE_UUID16, b"\x56\x4e"),
    # venue beacons (bluezone.venues.beacon): 0x4256 service data
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\x56\x42"),
]
#: the active scan's discovery filter (BlueZ doc/org.bluez.Adapter.rst, SetDiscoveryFilter): BlueZ drops
#: other adverts for us (0xFD6F, Bluezone v3 0x4E56, venue beacons 0x4256) and signals every advert of
#: ours. bleak sets DuplicateData false, which in BlueZ means duplicate *detection*: a repeat signalled only
#: when its data changed or its RSSI moved >= 8 dB. True: each packet's service data is signalled, and
#: holds only that packet's (src/device.c device_set_service_data). An RSSI set: each packet's RSSI is
#: signalled (src/adapter.c device_found_callback: no delta threshold with a proximity filter); -127, the
#: lowest BlueZ takes, passes every advert that has an RSSI at all (docs/bluetooth.md).
ACTIVE_SCAN_FILTERS: dict[str, Any] = {
    "UUIDs": [SERVICE_UUID, BLUEZONE3_UUID, VENUE_BEACON_UUID],
    "DuplicateData": True,
    "RSSI": -127,
}
#: what each trouble is counted as in health()
_COUNTERS = {
    "bluetoothd-stopped": "bluetoothd_restarts",
    "bluetoothd-replaced": "bluetoothd_restarts",
    "adapter-removed": "adapter_removed",
    "powered-off": "adapter_powered_off",
    "advert-released": "advert_released",
    "dbus-lost": "dbus_reconnects",
    "scan-stopped": "scan_restarts",
    "scan-stalled": "scan_stalls",
    "error": "errors",
}
_SCAN_ONLY = frozenset({"scan-stopped", "scan-stalled"})
_BUS_ERRORS = (BluezCallError, BleakError, OSError, EOFError, TimeoutError)


class BluezRadio(Radio):
    """GAEN advertising and scanning on one BlueZ adapter (``bluez`` or ``bluez:hci1``)."""

    rotates_address = False

    def __init__(
        self,
        adapter: str | None = None,
        *,
        clock: Clock | None = None,
        scan_mode: ScanMode = "auto",
        stall_seconds: float = 300.0,
        backoff: tuple[float, float] = (1.0, 60.0),
        unavailable_hint: str = "",
    ) -> None:
        self.adapter = adapter
        self.name = f"bluez:{adapter}" if adapter else "bluez"
        self.clock: Clock = clock or SystemClock()
        self.scan_mode_requested: ScanMode = scan_mode
        self.scan_mode: str = "none"
        self.stall_seconds = stall_seconds
        self.backoff = backoff
        self.unavailable_hint = unavailable_hint
        self.counts: Counter[str] = Counter()
        self.state = "closed"

        self._bus: MessageBus | None = None
        self._advertiser: Advertiser | None = None
        self._info: AdapterInfo | None = None
        self._scanner: BleakScanner | None = None
        self._payload: bytes | None = None
        self._uuid16 = "fd6f"  # what the payload goes under (advertise_as changes it)
        self._on_advert: AdvertCallback | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._trouble: str | None = None
        self._incident: set[str] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._last_advert = 0.0
        self._stall_after = stall_seconds
        self._quiet_scan_change = False
        self._warned: set[str] = set()
        self._cached = CachedPayloads()

    # -- the Radio interface -------------------------------------------------------------

    @property
    def adapter_address(self) -> str | None:
        return (self._info.address or None) if self._info is not None else None

    async def open(self) -> None:
        """Find the adapter and fail with a reason if it cannot be used right now."""
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        try:
            await self._connect()
        except RadioUnavailableError as exc:
            if self._bus is not None:
                self._bus.disconnect()
                self._bus = None
            if not self.unavailable_hint:
                raise
            fix = f"{exc.fix}; {self.unavailable_hint}" if exc.fix else self.unavailable_hint
            raise RadioUnavailableError(f"no usable Bluetooth: {exc.what}", exc.reason, fix) from exc
        self.state = "up"
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name} supervisor")

    async def advertise(self, service_data: bytes, tx_power: int) -> None:
        """Broadcast ``service_data`` (tx_power travels in the AEM; BlueZ picks the radio power)."""
        self._payload = bytes(service_data)
        async with self._lock:
            if self.state == "up":
                try:
                    await self._register_or_note()
                except _BUS_ERRORS as exc:
                    self._flag("error", f"advertising failed: {exc}")

    async def advertise_as(self, service_uuid: str, service_data: bytes, tx_power: int) -> None:
        """Broadcast ``service_data`` under another 16-bit UUID (``0000xxxx-0000-1000-8000-...``)."""
        uuid16 = service_uuid.lower()[4:8]
        if len(service_uuid) != 36 or not service_uuid.lower().endswith(BASE_UUID_TAIL) or not uuid16.isalnum():
            raise RadioError(f"{self.name}: {service_uuid} is not a 16-bit service UUID")
        self._uuid16 = uuid16
        await self.advertise(service_data, tx_power)

    async def start_scanning(self, on_advert: AdvertCallback) -> None:
        self._on_advert = on_advert
        async with self._lock:
            if self.state == "up":
                try:
                    await self._retrying(self._start_scan)
                except _BUS_ERRORS as exc:
                    self._flag("error", f"scanning failed: {exc}")

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._teardown(gone=False)
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
        self.state = "closed"

    def health(self) -> dict[str, int | str | bool]:
        report: dict[str, int | str | bool] = {
            "backend": "bluez",
            "adapter": self._info.name if self._info else (self.adapter or ""),
            "state": self.state,
            "scan_mode": self.scan_mode,
            "rotates_address": self.rotates_address,
            "address_note": "BlueZ chooses the advertising address; bluezone re-registers the "
            "advert at each RPI change but cannot set or check the address (see docs/bluetooth.md)",
        }
        for key in (
            "adverts_received",
            "adverts_ignored",
            "adverts_unattributed",
            "advert_registrations",
            "advertise_failures",
            "recoveries",
            "retries",
            *sorted(set(_COUNTERS.values())),
        ):
            report[key] = self.counts[key]
        return report

    # -- connecting, registering, scanning -----------------------------------------------

    async def _connect(self) -> None:
        """(Re)connect to the bus if needed and check the adapter; raise RadioUnavailableError."""
        if self._bus is None or not self._bus.connected:
            if self._bus is not None:
                self._bus.disconnect()
            self._bus = await connect_system_bus()
            await self._watch_signals(self._bus)
            self._advertiser = None
        try:
            info = await find_adapter(self._bus, self.adapter)
        except BluezCallError as exc:
            if exc.name in PERMISSION:
                raise RadioUnavailableError(f"BlueZ refused access ({exc.name})", Reason.PERMISSION) from exc
            raise
        self._info = info
        if not info.can_advertise:
            self._warn_once(
                "no-adv",
                "adapter %s offers no LEAdvertisingManager1: scanning only, not advertising",
                info.name,
            )
        if self._advertiser is None or self._advertiser.adapter_path != info.path:
            self._advertiser = Advertiser(self._bus, info.path, self._on_release)
        self.scan_mode = self._pick_scan_mode(info)

    def _pick_scan_mode(self, info: AdapterInfo) -> str:
        """``auto`` scans actively, monitor or not: through BlueZ only the active scan hears every advert
        (ACTIVE_SCAN_FILTERS), while the passive one (bluetoothd's advertisement monitor, ``--experimental``)
        is signalled a steady phone about once per RPI and 8 dB swing (docs/bluetooth.md, "Which scan")."""
        if self.scan_mode_requested == "passive":
            if info.can_monitor and "or_patterns" in info.monitor.get("SupportedMonitorTypes", []):
                return "passive"
            raise RadioUnavailableError(
                f"passive scanning needs BlueZ >= 5.56 started with --experimental and a kernel "
                f">= 5.10 (adapter {info.name} has no advertisement monitor)",
                Reason.NO_PASSIVE_SCAN,
            )
        if "active" not in self._warned:
            self._warned.add("active")
            log.info("%s: scanning actively (every advert)", info.name)
        return "active"

    async def _register(self) -> None:
        if self._payload is None or self._advertiser is None or not self._info:
            return
        if not self._info.can_advertise:
            return
        await self._advertiser.register(self._payload, self._uuid16)
        self.counts["advert_registrations"] += 1
        self._warn_once(
            "address",
            "BlueZ chooses the advertising address: bluezone re-registers the advert at each "
            "RPI change but cannot rotate or check the address itself (rotates_address=False)",
        )

    async def _register_or_note(self) -> None:
        """Register the current payload; if BlueZ refuses it (no free slot, bad data) keep
        scanning, count it and try again at the next check or rotation.  Errors that mean the
        adapter or bluetoothd is gone propagate, so the supervisor recovers."""
        try:
            await self._retrying(self._register)
        except BluezCallError as exc:
            if is_gone(exc):
                raise
            self.counts["advertise_failures"] += 1
            self._warn_once(
                f"adv:{exc.name}",
                "%s: BlueZ refused the advertisement (%s); still scanning, will try again",
                self.name,
                exc,
            )
        else:
            self._warned = {w for w in self._warned if not w.startswith("adv:")}

    async def _start_scan(self) -> None:
        if self._on_advert is None or self._scanner is not None or self._info is None:
            return
        bluez: dict[str, Any] = {"adapter": self._info.name}
        if self.scan_mode == "passive":
            bluez["or_patterns"] = FD6F_PATTERNS
        else:
            bluez["filters"] = dict(ACTIVE_SCAN_FILTERS)  # ours only, and every advert of ours
        scanner = BleakScanner(self._detected, scanning_mode=self.scan_mode, bluez=bluez)  # type: ignore[arg-type]
        self._quiet_scan_change = True
        try:
            await scanner.start()
        finally:
            self._quiet_scan_change = False
        self._scanner = scanner
        self._last_advert = asyncio.get_running_loop().time()

    async def _stop_scan(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is None:
            return
        self._quiet_scan_change = True
        try:
            async with asyncio.timeout(5):
                await scanner.stop()
        except (*_BUS_ERRORS, AssertionError) as exc:
            log.debug("stopping the scan on %s: %s", self.name, exc)
        finally:
            self._quiet_scan_change = False

    async def _teardown(self, gone: bool) -> None:
        """Best effort: stop scanning and withdraw the advert; ``gone`` = BlueZ no longer knows them."""
        await self._stop_scan()
        if self._advertiser is not None:
            if gone:
                self._advertiser.forget()
            else:
                with contextlib.suppress(*_BUS_ERRORS):
                    async with asyncio.timeout(5):
                        await self._advertiser.unregister()

    async def _retrying(self, step: Callable[[], Awaitable[None]], attempts: int = 5) -> None:
        """Run ``step``, retrying InProgress / NotReady / Busy with a short backoff."""
        delay = 0.25
        error: Exception | None = None
        for attempt in range(attempts):
            try:
                await step()
                return
            except BluezCallError as exc:
                if not is_retryable(exc) or attempt == attempts - 1:
                    raise
                error = exc
            except BleakError as exc:
                dbus_error = getattr(exc, "dbus_error", "")
                if dbus_error not in {"org.bluez.Error.InProgress", "org.bluez.Error.NotReady"}:
                    raise
                if attempt == attempts - 1:
                    raise
                error = exc
            self.counts["retries"] += 1
            log.debug("%s: %s, retrying in %.2f s", self.name, error, delay)
            await asyncio.sleep(delay)
            delay *= 2

    # -- adverts in ------------------------------------------------------------------------

    def _detected(self, device: BLEDevice, data: AdvertisementData) -> None:
        """bleak's callback: GAEN, Bluezone v3 and venue-beacon payloads go straight to the daemon, nothing is
        buffered here; only those the packet carried, not all BlueZ still holds for the address (bluez_cache)."""
        self.counts["adverts_received"] += 1
        self._last_advert = asyncio.get_running_loop().time()
        self._stall_after = self.stall_seconds
        cached = heard_payloads(data.service_uuids, data.service_data, data.manufacturer_data)
        if not cached or not _heard_now(data):
            # BlueZ's UUID filter keeps most of these out; BlueZoo and passive scans let some in
            self.counts["adverts_ignored"] += 1
            return
        heard = self._cached.carried(device.address, cached)
        if not heard:
            # a repeat from an address that sends several of our kinds: which one is unknown
            self.counts["adverts_unattributed"] += 1
            return
        if self._on_advert is not None:
            now = self.clock.now()
            for uuid, payload in heard.items():
                self._on_advert(Advert(now, payload, data.rssi, uuid, data.tx_power, device.address))

    # -- supervision -------------------------------------------------------------------------

    async def _watch_signals(self, bus: MessageBus) -> None:
        rules = [
            f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',arg0='{BLUEZ}'",
            f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.ObjectManager'",
            f"type='signal',sender='{BLUEZ}',interface='org.freedesktop.DBus.Properties',"
            f"member='PropertiesChanged',arg0='{ADAPTER}'",
        ]
        for rule in rules:
            await call(bus, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule], destination=DBUS)
        bus.add_message_handler(self._on_signal)

    def _on_signal(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        path = self._info.path if self._info else None
        if msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == BLUEZ:
            _, old, new = msg.body
            if old and not new:
                self._flag("bluetoothd-stopped", "bluetoothd left the bus")
            elif old and new:
                self._flag("bluetoothd-replaced", "bluetoothd was replaced")
            else:
                self._wake.set()
        elif msg.member == "InterfacesRemoved" and msg.body[0] == path and ADAPTER in msg.body[1]:
            self._flag("adapter-removed", f"adapter {self._info.name if self._info else ''} was removed")
        elif msg.member == "InterfacesAdded" and ADAPTER in msg.body[1]:
            self._wake.set()
        elif msg.member == "PropertiesChanged" and msg.path == path and msg.body[0] == ADAPTER:
            changed = msg.body[1]
            if "Powered" in changed:
                if changed["Powered"].value:
                    self._wake.set()
                else:
                    self._flag("powered-off", f"adapter {self._info.name if self._info else ''} was powered off")
            if "Discovering" in changed and not changed["Discovering"].value:
                if self._scanner is not None and not self._quiet_scan_change and self.scan_mode == "active":
                    self._flag("scan-stopped", "discovery stopped without us asking")
        return None

    def _wants_registration(self) -> bool:
        adv = self._advertiser
        return (
            self.state == "up"
            and self._payload is not None
            and adv is not None
            and not adv.registered
            and self._info is not None
            and self._info.can_advertise
        )

    def _on_release(self) -> None:
        self._flag("advert-released", "BlueZ released the advertisement")

    def _flag(self, reason: str, detail: str) -> None:
        """Note trouble for the supervisor; each kind is logged and counted once per incident."""
        if self.state == "closed":
            return
        if reason not in self._incident:
            self._incident.add(reason)
            self.counts[_COUNTERS.get(reason, "errors")] += 1
            log.warning("%s: %s", self.name, detail)
        if self._trouble is None or (self._trouble in _SCAN_ONLY and reason not in _SCAN_ONLY):
            self._trouble = reason
        self._wake.set()

    async def _supervise(self) -> None:
        """Handle each flagged problem; an error nobody foresaw (bleak and dbus-fast raise more kinds
        than they document) is logged and handled as a problem of its own, so recovery never stops."""
        delay = self.backoff[0]
        while True:
            try:
                await self._handle_trouble()
                delay = self.backoff[0]
            except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any one failure
                log.debug("%s: supervisor error", self.name, exc_info=True)
                self._flag("error", f"unexpected {type(exc).__name__} while recovering ({exc}); trying again")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])

    async def _handle_trouble(self) -> None:
        reason = await self._next_trouble()
        if reason in _SCAN_ONLY:
            async with self._lock:
                await self._stop_scan()
                try:
                    await self._retrying(self._start_scan)
                except _BUS_ERRORS as exc:
                    log.warning("%s: restarting the scan failed (%s); recovering", self.name, exc)
                else:
                    log.info("%s: scan restarted", self.name)
                    self._incident.clear()
                    return
        self.state = f"recovering: {reason}"
        await self._recover(gone=reason in {"bluetoothd-stopped", "bluetoothd-replaced", "adapter-removed"})

    async def _next_trouble(self) -> str:
        """Wait for a flagged problem, checking meanwhile that scanning has not gone quiet."""
        loop = asyncio.get_running_loop()
        while self._trouble is None:
            self._wake.clear()
            check = max(1.0, min(self._stall_after / 4, 60.0))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check):
                    await self._wake.wait()
            if self._bus is not None and not self._bus.connected:
                self._flag("dbus-lost", "lost the connection to the system D-Bus")
            elif self._trouble is None and self._wants_registration():
                async with self._lock:
                    try:
                        await self._register_or_note()
                    except _BUS_ERRORS as exc:
                        self._flag("error", f"advertising failed: {exc}")
            quiet = loop.time() - self._last_advert
            if self._scanner is not None and self._trouble is None and quiet > self._stall_after:
                # nothing heard for a long time: restart once, then wait twice as long
                self._stall_after = min(self._stall_after * 2, 3600.0 * 6)
                self._flag("scan-stalled", f"no advert for {quiet:.0f} s")
        reason, self._trouble = self._trouble, None
        return reason

    async def _recover(self, gone: bool) -> None:
        """Tear down, then bring the adapter, the advert and the scan back with backoff."""
        started = asyncio.get_running_loop().time()
        async with self._lock:
            await self._teardown(gone=gone)
        delay, longest = self.backoff
        attempts = 0
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            await asyncio.sleep(0.1)  # let BlueZ settle after the event that woke us
            attempts += 1
            try:
                async with self._lock:
                    await self._connect()
                    await self._retrying(self._start_scan)
                    await self._register_or_note()
            except RadioUnavailableError as exc:
                self._warn_once(f"down:{exc.reason}", "%s: still unavailable: %s", self.name, exc)
            except _BUS_ERRORS as exc:
                log.debug("%s: recovery attempt %d failed: %s", self.name, attempts, exc)
                async with self._lock:
                    await self._teardown(gone=True)
            else:
                self._trouble = None
                self._incident.clear()
                self.state = "up"
                self.counts["recoveries"] += 1
                self._warned = {w for w in self._warned if not w.startswith("down:")}
                log.warning(
                    "%s: recovered after %.1f s (%d attempts)",
                    self.name,
                    asyncio.get_running_loop().time() - started,
                    attempts,
                )
                return
            delay = min(delay * 2, longest)

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)


def _heard_now(data: AdvertisementData) -> bool:
    """False for a callback that is no packet: when discovery stops, BlueZ drops the RSSI of every
    device it knows and bleak calls back with the cached service data and a made-up -127 dBm;
    stored, that would be a sighting of an old RPI at the current time."""
    platform = getattr(data, "platform_data", None)
    props = platform[1] if isinstance(platform, tuple) and len(platform) > 1 else None
    return not isinstance(props, dict) or "RSSI" in props
