"""The bumble radio: GAEN advertising and scanning straight over HCI, for a controller of our own.

With a dedicated controller (``bumble:usb:0``, or ``bumble:hci-socket:0`` with bluetoothd kept
off it) bluezone owns the link layer, so unlike BlueZ it sets a fresh non-resolvable private
address exactly when the RPI changes, as GAEN asks.  Scanning is passive with duplicate
filtering off, so every advert is reported.  Module named so it does not shadow ``bumble``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import struct
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from bumble import hci
from bumble.core import AdvertisingData, BaseBumbleError
from bumble.device import Advertisement, AdvertisingType, Device

from bluezone.clock import Clock, SystemClock
from bluezone.crypto.payload import SERVICE_UUID16
from bluezone.errors import ConfigError, RadioError, RadioUnavailableError, RadioUnavailableReason
from bluezone.proximity.backends.fd6f import heard_payload, uuid16_to_str
from bluezone.proximity.radio import Advert, AdvertCallback, Radio

log = logging.getLogger(__name__)

#: GAEN: flags 0x1A as iOS sends them (Android omits flags; both are accepted on receive)
FLAGS = 0x1A
INTERVAL_MS = (200.0, 270.0)


def gaen_advertising_data(service_data: bytes) -> bytes:
    """Flags + 16-bit UUID list [0xFD6F] + service data 0xFD6F, as GAEN broadcasts them."""
    uuid = struct.pack("<H", SERVICE_UUID16)
    return bytes(
        AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([FLAGS])),
                (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, uuid),
                (AdvertisingData.SERVICE_DATA_16_BIT_UUID, uuid + bytes(service_data)),
            ]
        )
    )


def _transport_hint(spec: str, exc: Exception) -> str:
    """What to check, by transport and by what went wrong."""
    text = str(exc).lower()
    if spec.startswith("hci-socket"):
        if "busy" in text:
            return "bluetoothd holds this controller: `sudo btmgmt --index N power off` first"
        return "needs Linux's Bluetooth HCI sockets and CAP_NET_RAW + CAP_NET_ADMIN (see docs/bluetooth.md)"
    if spec.startswith("usb"):
        return "is the dongle plugged in (`lsusb`) and readable by this user (udev rule)?"
    return "check the transport spec (bumble's transport names: usb:0, hci-socket:0, serial:...)"


#: Seconds a controller has to answer its power-on (a real one answers in well under one): a transport with no
#: controller behind it, or a silent one, is no usable radio, not a wait without end.
POWER_ON_SECONDS = 10.0


#: bumble's transports whose argument may be left out (``vhci:`` opens /dev/vhci); the others need one
_ARGUMENT_OPTIONAL = frozenset({"pty", "vhci", "hci-socket", "android-emulator", "android-netsim"})


def _check_argument(spec: str) -> None:
    """Refuse a transport whose argument is missing (``usb:``) as the radio is made, before a store is opened or
    a run's ``--duration`` counts: bumble asserted one (an AssertionError, no words: 'cannot open bumble transport
    usb:: ', exit 1) or called the scheme unknown (``serial:``)."""
    scheme, colon, argument = spec.partition(":")
    if colon and not argument and scheme not in _ARGUMENT_OPTIONAL:
        raise ConfigError(f"bumble transport {spec!r}: nothing after {scheme}: names what to open"
                          " (bumble's transports: usb:0, hci-socket:0, serial:/dev/ttyUSB0, ...)")


@contextlib.contextmanager
def _waitable_file(spec: str) -> Iterator[None]:
    """Refuse a ``file:`` transport asyncio cannot wait on (/dev/null, /dev/zero, a regular file) before bumble
    opens it: its reader failed in a callback (asyncio's traceback logged) and a power-on nothing can answer was
    waited for 10 s.  Checked with the selector asyncio uses, on a descriptor of our own held open until bumble has
    opened the file (a serial port closed by its last holder drops DTR, which resets some boards)."""
    scheme, _, path = spec.partition(":")
    if scheme != "file" or not path:
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:  # bumble's own open says what is wrong with it
        yield
        return
    try:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(fd, selectors.EVENT_READ)
        except OSError as exc:
            raise ConfigError(
                f"bumble transport {spec!r}: {path} cannot be waited on for a controller's answer ({exc.strerror}): file:"
                " takes a serial port or pty with an HCI controller behind it (bumble's transports: usb:0,"
                " hci-socket:0, serial:/dev/ttyUSB0, ...)"
            ) from None
        yield
    finally:
        os.close(fd)


class BumbleRadio(Radio):
    """A bluezone node on one HCI controller driven by bumble.

    ``BumbleRadio("usb:0")`` opens that transport; ``BumbleRadio.on_device(device)`` uses a
    bumble ``Device`` the caller built (tests put two on an in-process ``LocalLink``).
    """

    rotates_address = True

    def __init__(
        self, transport: str | None = None, *, clock: Clock | None = None, power_on_seconds: float = POWER_ON_SECONDS
    ) -> None:
        if transport:
            _check_argument(transport)
        self.transport_spec = transport
        self.power_on_seconds = power_on_seconds
        self.name = f"bumble:{transport}" if transport else "bumble"
        self.clock: Clock = clock or SystemClock()
        self.device: Device | None = None
        self.address: str | None = None
        self.counts: Counter[str] = Counter()
        self._transport: Any = None
        self._on_advert: AdvertCallback | None = None
        self._lock = asyncio.Lock()
        self._owns_device = True

    @classmethod
    def on_device(cls, device: Device, *, clock: Clock | None = None, name: str = "bumble") -> BumbleRadio:
        radio = cls(clock=clock)
        radio.device = device
        radio.name = name
        radio._owns_device = False
        return radio

    @property
    def adapter_address(self) -> str | None:
        """The controller's public address (read at power-on); None for one that has none."""
        if self.device is None or self.device.public_address == hci.Address.ANY:
            return None
        return str(self.device.public_address.to_string(False))

    async def open(self) -> None:
        self._lock = asyncio.Lock()
        if self.device is None:
            self.device = await self._open_transport()
        self.device.on(Device.EVENT_ADVERTISEMENT, self._heard)
        if not self.device.powered_on:
            try:
                async with asyncio.timeout(self.power_on_seconds):  # bumble waits for the controller's answer without end
                    await self.device.power_on()
            except TimeoutError:
                await self.close()
                raise RadioUnavailableError(
                    f"the controller at bumble transport {self.transport_spec or 'in-process'} did not answer its "
                    f"power-on within {self.power_on_seconds:g} s",
                    RadioUnavailableReason.NO_ADAPTER,
                    fix="is a Bluetooth controller (HCI) at the other end of that transport, powered and not held by another program?",
                ) from None

    async def _open_transport(self) -> Device:
        from bumble.transport import open_transport
        from bumble.transport.common import TransportSpecError

        spec = self.transport_spec or "usb:0"
        with _waitable_file(spec):  # (a file: nothing can answer through, refused here: a usage error)
            try:
                self._transport = await open_transport(spec)
            except (TransportSpecError, ValueError, OverflowError) as exc:
                if type(exc).__name__ == "NoBackendError":  # pyusb's (a ValueError) with no libusb found: no radio, no typo
                    raise RadioUnavailableError(
                        f"cannot open bumble transport {spec}: {exc}", RadioUnavailableReason.NO_ADAPTER,
                        fix="pyusb found no libusb: install it (Debian: libusb-1.0-0), or try bumble:usb:0 (bumble's libusb1 transport)",
                    ) from exc
                # a typo in --backend: a usage error, exit 2, not a missing radio: bumble:usbb:0 (TransportSpecError), a
                # port that is no number or none (tcp-client:127.0.0.1:, ValueError) or over 65535 (OverflowError), a host
                # no lookup can take (tcp-client:a..b:9, UnicodeError, a ValueError)
                raise ConfigError(
                    f"bumble transport {spec!r}: {exc} (bumble's transports: usb:0, hci-socket:0, serial:/dev/ttyUSB0, ...)"
                ) from None
            except PermissionError as exc:
                raise RadioUnavailableError(
                    f"no permission to open {spec} ({exc})",
                    RadioUnavailableReason.PERMISSION,
                    fix="add a udev rule or run as the bluezone service user (see docs/bluetooth.md)",
                ) from exc
            except Exception as exc:  # bumble raises several types for a missing device
                raise RadioUnavailableError(
                    f"cannot open bumble transport {spec}: {str(exc) or f'bumble gave no reason ({type(exc).__name__})'}",
                    RadioUnavailableReason.NO_ADAPTER,
                    fix=_transport_hint(spec, exc),
                ) from exc
        return Device.with_hci(
            "bluezone", hci.Address("F0:F1:F2:F3:F4:F5"), self._transport.source, self._transport.sink
        )

    async def advertise(self, service_data: bytes, tx_power: int) -> None:
        """New payload, new non-resolvable private address, at the same moment."""
        device = self._device()
        async with self._lock, self._controller_errors("advertising"):
            extended = device.supports_le_extended_advertising
            rescan = device.is_scanning and not extended
            if rescan:  # legacy controllers refuse a new random address while scanning
                await device.stop_scanning()
            await device.stop_advertising()
            address = hci.Address.generate_private_address()
            device.random_address = address
            # bumble keeps a record per address ever heard until scanning restarts (once a run on extended
            # controllers): weeks in a busy place would grow without bound. Passive scanning pairs no
            # scan responses, so nothing is lost; RPIs and addresses rotate at this pace anyway.
            device.advertisement_accumulators.clear()
            if not extended:
                await device.send_sync_command(hci.HCI_LE_Set_Random_Address_Command(random_address=address))
            await device.start_advertising(
                advertising_type=AdvertisingType.UNDIRECTED,
                own_address_type=hci.OwnAddressType.RANDOM,
                advertising_data=gaen_advertising_data(service_data),
                advertising_interval_min=INTERVAL_MS[0],
                advertising_interval_max=INTERVAL_MS[1],
            )
            self.address = address.to_string(False)
            self.counts["address_rotations"] += 1
            if rescan:
                await self._scan(device)

    async def start_scanning(self, on_advert: AdvertCallback) -> None:
        self._on_advert = on_advert
        device = self._device()
        async with self._lock, self._controller_errors("scanning"):
            if not device.is_scanning:
                await self._scan(device)

    async def _scan(self, device: Device) -> None:
        # passive: we never need scan responses, and nothing is sent from our address
        await device.start_scanning(active=False, filter_duplicates=False)

    async def close(self) -> None:
        device = self.device
        if device is None:
            return
        with contextlib.suppress(Exception):
            if device.is_scanning:
                await device.stop_scanning()
            await device.stop_advertising()
        device.remove_listener(Device.EVENT_ADVERTISEMENT, self._heard)
        if self._owns_device:
            with contextlib.suppress(Exception):
                await device.power_off()
            if self._transport is not None:
                await self._transport.close()
                self._transport = None
            self.device = None

    def health(self) -> dict[str, int | str | bool]:
        return {
            "backend": "bumble",
            "transport": self.transport_spec or "in-process",
            "state": "up" if self.device is not None else "closed",
            "scan_mode": "passive",
            "rotates_address": True,
            "adverts_received": self.counts["adverts_received"],
            "adverts_ignored": self.counts["adverts_ignored"],
            "address_rotations": self.counts["address_rotations"],
        }

    @contextlib.asynccontextmanager
    async def _controller_errors(self, doing: str) -> AsyncIterator[None]:
        """A controller that stops answering (unplugged, reset) ends the run with a RadioError;
        under systemd, Restart=on-failure brings the node back when the controller returns."""
        try:
            yield
        except (BaseBumbleError, OSError, TimeoutError) as exc:
            raise RadioError(f"{self.name}: {doing} failed: {type(exc).__name__} {exc}".rstrip()) from exc

    def _device(self) -> Device:
        if self.device is None:
            raise RuntimeError("open the radio first (async with radio: ...)")
        return self.device

    def _heard(self, advertisement: Advertisement) -> None:
        self.counts["adverts_received"] += 1
        try:
            advert = self._advert(advertisement)
        except Exception:  # noqa: BLE001 - anyone's packet: raising here would lose the rest of the HCI event
            log.debug("unreadable advertisement dropped", exc_info=True)
            advert = None
        if advert is None:
            self.counts["adverts_ignored"] += 1
        elif self._on_advert is not None:
            self._on_advert(advert)

    def _advert(self, advertisement: Advertisement) -> Advert | None:
        """The GAEN or Bluezone v3 advert in ``advertisement``, or None when it carries neither."""
        data = advertisement.data
        uuids = [
            uuid16_to_str(v)
            for ad_type in (
                AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            )
            for raw in data.get_all(ad_type, raw=True)
            for (v,) in struct.iter_unpack("<H", raw[: len(raw) // 2 * 2])
        ]
        service_data = {
            uuid16_to_str(int.from_bytes(raw[:2], "little")): raw[2:]
            for raw in data.get_all(AdvertisingData.SERVICE_DATA_16_BIT_UUID, raw=True)
            if len(raw) >= 2
        }
        manufacturer_data = {
            int.from_bytes(raw[:2], "little"): raw[2:]
            for raw in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA, raw=True)
            if len(raw) >= 2
        }
        heard = heard_payload(uuids, service_data, manufacturer_data)
        if heard is None:
            return None
        uuid, payload = heard
        # bumble decodes this field unsigned (-8 dBm as 248); it is one signed byte, and anything else is no value
        raw_tx = data.get(AdvertisingData.TX_POWER_LEVEL, raw=True)
        tx = int.from_bytes(raw_tx, "little", signed=True) if isinstance(raw_tx, bytes) and len(raw_tx) == 1 else None
        return Advert(self.clock.now(), payload, advertisement.rssi, uuid, tx, advertisement.address.to_string(False))
