"""Small helpers over BlueZ's D-Bus API (dbus-fast): connect, call, map errors, read adapters.

Shared by the BlueZ radio and ``bluezone doctor`` so both explain a missing adapter,
a powered-off one, a permission problem or a stopped bluetoothd in the same words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.auth import AuthError

from bluezone.errors import BluezCallError, RadioUnavailableError
from bluezone.errors import RadioUnavailableReason as Reason

log = logging.getLogger(__name__)

BLUEZ = "org.bluez"
ADAPTER = "org.bluez.Adapter1"
ADV_MANAGER = "org.bluez.LEAdvertisingManager1"
MONITOR_MANAGER = "org.bluez.AdvertisementMonitorManager1"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"

#: BlueZ errors that mean "try again in a moment", not "give up"
RETRYABLE = frozenset(
    {
        "org.bluez.Error.InProgress",
        "org.bluez.Error.NotReady",
        "org.bluez.Error.Busy",
        "org.bluez.Error.Failed",
    }
)
#: errors that mean the caller may not use BlueZ at all
PERMISSION = frozenset(
    {
        "org.freedesktop.DBus.Error.AccessDenied",
        "org.bluez.Error.NotAuthorized",
        "org.freedesktop.DBus.Error.AuthFailed",
    }
)
#: errors that mean bluetoothd (or the adapter object) went away under us
GONE = frozenset(
    {
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownMethod",
        "org.freedesktop.DBus.Error.NoReply",
        "org.bluez.Error.DoesNotExist",
    }
)


def is_retryable(exc: BluezCallError) -> bool:
    """Whether BlueZ means "try again in a moment", not "give up"."""
    return exc.name in RETRYABLE


def is_gone(exc: BluezCallError) -> bool:
    """Whether bluetoothd (or the adapter object) went away under us."""
    return exc.name in GONE


async def connect_system_bus() -> MessageBus:
    """Connect to the system bus (``DBUS_SYSTEM_BUS_ADDRESS`` honoured), mapping failures."""
    try:
        return await MessageBus(bus_type=BusType.SYSTEM).connect()
    except AuthError as exc:
        raise RadioUnavailableError(f"the system D-Bus refused us ({exc})", Reason.PERMISSION) from exc
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise RadioUnavailableError(f"cannot reach the system D-Bus ({exc})", Reason.NO_DBUS) from exc
    except PermissionError as exc:
        raise RadioUnavailableError(f"no access to the system D-Bus socket ({exc})", Reason.PERMISSION) from exc


async def call(
    bus: MessageBus,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
    destination: str = BLUEZ,
) -> list[Any]:
    """Call one method and return the reply body; an error reply raises BluezCallError."""
    reply = await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    if reply is None:  # pragma: no cover - only for NO_REPLY_EXPECTED calls
        return []
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body else ""
        raise BluezCallError(reply.error_name or "unknown", str(text))
    return list(reply.body)


def unpack(value: Any) -> Any:
    """Strip dbus-fast Variants recursively, so property dicts become plain Python."""
    if isinstance(value, Variant):
        return unpack(value.value)
    if isinstance(value, dict):
        return {k: unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """What BlueZ says about one adapter, as plain values."""

    name: str
    path: str
    address: str
    powered: bool
    discovering: bool
    can_advertise: bool
    can_monitor: bool
    properties: dict[str, Any]
    advertising: dict[str, Any]
    monitor: dict[str, Any]


async def bluez_running(bus: MessageBus) -> bool:
    """True when some process owns the ``org.bluez`` name."""
    (has,) = await call(
        bus, "/org/freedesktop/DBus", DBUS, "NameHasOwner", "s", [BLUEZ], destination=DBUS
    )
    return bool(has)


async def list_adapters(bus: MessageBus) -> dict[str, AdapterInfo]:
    """All adapters BlueZ exports, by short name (``hci0``), mapping errors to reasons."""
    if not await bluez_running(bus):
        raise RadioUnavailableError("bluetoothd is not running (no org.bluez on D-Bus)", Reason.BLUETOOTHD_NOT_RUNNING)
    try:
        (objects,) = await call(bus, "/", OBJECT_MANAGER, "GetManagedObjects")
    except BluezCallError as exc:
        if exc.name in PERMISSION:
            raise RadioUnavailableError(f"BlueZ refused GetManagedObjects ({exc.name})", Reason.PERMISSION) from exc
        if is_gone(exc):
            what = f"bluetoothd did not answer ({exc.name})"
            raise RadioUnavailableError(what, Reason.BLUETOOTHD_NOT_RUNNING) from exc
        raise
    adapters: dict[str, AdapterInfo] = {}
    for path, interfaces in objects.items():
        if ADAPTER not in interfaces:
            continue
        props = unpack(interfaces[ADAPTER])
        name = path.rsplit("/", 1)[-1]
        adapters[name] = AdapterInfo(
            name=name,
            path=path,
            address=str(props.get("Address", "")),
            powered=bool(props.get("Powered", False)),
            discovering=bool(props.get("Discovering", False)),
            can_advertise=ADV_MANAGER in interfaces,
            can_monitor=MONITOR_MANAGER in interfaces,
            properties=props,
            advertising=unpack(interfaces.get(ADV_MANAGER, {})),
            monitor=unpack(interfaces.get(MONITOR_MANAGER, {})),
        )
    return adapters


async def find_adapter(bus: MessageBus, name: str | None) -> AdapterInfo:
    """The named adapter (or the first one), powered and able to advertise, or a clear error."""
    adapters = await list_adapters(bus)
    if not adapters:
        raise RadioUnavailableError("BlueZ has no Bluetooth adapter", Reason.NO_ADAPTER)
    if name is None:
        powered = [a for a in sorted(adapters) if adapters[a].powered]
        name = powered[0] if powered else sorted(adapters)[0]
    info = adapters.get(name)
    if info is None:
        raise RadioUnavailableError(f"no adapter {name!r} (BlueZ has {', '.join(sorted(adapters))})", Reason.NO_ADAPTER)
    if not info.powered:
        raise RadioUnavailableError(f"adapter {name} is powered off", Reason.POWERED_OFF)
    return info


async def bluez_version() -> str | None:
    """bluetoothd's version from ``bluetoothd --version`` when installed here, else None."""
    import asyncio
    import shutil

    for exe in ("bluetoothd", "/usr/libexec/bluetooth/bluetoothd", "/usr/lib/bluetooth/bluetoothd"):
        found = shutil.which(exe)
        if not found:
            continue
        try:
            proc = await asyncio.create_subprocess_exec(
                found, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 5)
        except (OSError, TimeoutError):
            continue
        return out.decode().strip() or None
    return None
