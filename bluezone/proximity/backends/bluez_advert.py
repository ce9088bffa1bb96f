"""Broadcast the GAEN payload through BlueZ: an exported ``org.bluez.LEAdvertisement1`` object.

bleak cannot advertise, so bluezone exports the advertisement object itself with dbus-fast
and registers it with ``org.bluez.LEAdvertisingManager1``.  Each new payload is a fresh object
registered after the old one is unregistered: BlueZ reads the properties only at registration,
and a new registration lets the kernel pick a new private address for a non-connectable set.
"""

import itertools
import logging
from collections.abc import Callable
from typing import Annotated

from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from bluezone.errors import BluezCallError
from bluezone.proximity.backends.bluez_dbus import ADV_MANAGER, call

log = logging.getLogger(__name__)

SERVICE_UUID16 = "fd6f"
#: GAEN asks for an advertising interval of 200-270 ms
MIN_INTERVAL_MS = 200
MAX_INTERVAL_MS = 270

_Str = Annotated[str, DBusSignature("s")]
_StrList = Annotated[list[str], DBusSignature("as")]
_Dict = Annotated[dict[str, Variant], DBusSignature("a{sv}")]
_U32 = Annotated[int, DBusSignature("u")]
_paths = itertools.count()


class LEAdvertisement(ServiceInterface):
    """The properties BlueZ reads when the advertisement is registered.

    No ``Discoverable`` property: BlueZ refuses a broadcast advertisement that sets the
    discoverable flags ("Broadcast cannot set flags", Core spec Vol 3 Part C), so the advert
    goes out without a Flags field, exactly like Android's GAEN adverts.
    """

    def __init__(self, service_data: bytes, on_release: Callable[[], None], uuid16: str = SERVICE_UUID16) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self._service_data = bytes(service_data)
        self._uuid16 = uuid16  # 0xFD6F, or 0x4256 for a venue beacon (bluezone.venues.beacon)
        self._on_release = on_release

    @method()
    def Release(self) -> None:  # noqa: N802 - D-Bus name
        """BlueZ dropped the advertisement (adapter gone or reset): the radio re-registers."""
        self._on_release()

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> _Str:  # noqa: N802
        return "broadcast"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> _StrList:  # noqa: N802
        return [self._uuid16]

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> _Dict:  # noqa: N802
        return {self._uuid16: Variant("ay", self._service_data)}

    @dbus_property(access=PropertyAccess.READ)
    def MinInterval(self) -> _U32:  # noqa: N802
        return MIN_INTERVAL_MS

    @dbus_property(access=PropertyAccess.READ)
    def MaxInterval(self) -> _U32:  # noqa: N802
        return MAX_INTERVAL_MS


class Advertiser:
    """Keeps at most one bluezone advertisement registered on one adapter."""

    def __init__(
        self, bus: MessageBus, adapter_path: str, on_release: Callable[[], None] = lambda: None
    ) -> None:
        self.bus = bus
        self.adapter_path = adapter_path
        self.registrations = 0
        self.on_release = on_release
        self._path: str | None = None

    @property
    def registered(self) -> bool:
        return self._path is not None

    async def register(self, service_data: bytes, uuid16: str = SERVICE_UUID16) -> None:
        """Replace the current advertisement (if any) with one carrying ``service_data`` under ``uuid16``."""
        await self.unregister()
        path = f"/org/bluezone/advertisement{next(_paths)}"
        self.bus.export(path, LEAdvertisement(service_data, self._released, uuid16))
        try:
            await call(
                self.bus, self.adapter_path, ADV_MANAGER, "RegisterAdvertisement", "oa{sv}", [path, {}]
            )
        except BaseException:
            self.bus.unexport(path)
            raise
        self._path = path
        self.registrations += 1

    async def unregister(self, quiet: bool = True) -> None:
        """Withdraw the advertisement; with ``quiet`` errors (adapter already gone) are ignored."""
        path, self._path = self._path, None
        if path is None:
            return
        try:
            await call(self.bus, self.adapter_path, ADV_MANAGER, "UnregisterAdvertisement", "o", [path])
        except (BluezCallError, OSError, EOFError) as exc:
            if not quiet:
                raise
            log.debug("unregistering %s: %s", path, exc)
        finally:
            self.bus.unexport(path)

    def forget(self) -> None:
        """Drop the registration without telling BlueZ (it is gone or restarted)."""
        if self._path is not None:
            self.bus.unexport(self._path)
            self._path = None

    def _released(self) -> None:
        # The radio's supervisor re-registers; unregistering first is harmless if BlueZ
        # already dropped it (DoesNotExist is ignored).
        log.info("BlueZ released the advertisement on %s", self.adapter_path)
        self.on_release()
