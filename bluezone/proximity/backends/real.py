"""Turn a real-radio spec (``auto``, ``bluez``, ``bluez:hci1``, ``bumble:usb:0``) into a Radio.

``open_radio`` in this package hands these specs here, so the BlueZ and bumble modules (and
bleak, dbus-fast, bumble) are imported only when someone asks for real Bluetooth.
"""

from __future__ import annotations

import re

from bluezone.clock import Clock
from bluezone.errors import ConfigError
from bluezone.proximity.radio import Radio

REAL_PREFIXES = ("auto", "bluez", "bumble")
_ADAPTER = re.compile(r"hci\d{1,3}")
ALTERNATIVES = (
    "or give bluezone a controller of its own (--backend bumble:usb:0), "
    "or try it without Bluetooth (--backend emulated)"
)


def is_real_spec(spec: str) -> bool:
    """Whether ``spec`` names real Bluetooth (auto, bluez, bumble)."""
    return spec.split(":", 1)[0] in REAL_PREFIXES


def parse_adapter(name: str | None) -> str | None:
    """A BlueZ adapter name (``hci0``) or None; anything else is a ConfigError."""
    if name is None or name == "":
        return None
    if not _ADAPTER.fullmatch(name):
        raise ConfigError(f"adapter must look like hci0, hci1, ...; got {name!r}")
    return name


def open_real_radio(
    spec: str,
    *,
    adapter: str | None = None,
    clock: Clock | None = None,
    scan_mode: str = "auto",
) -> Radio:
    """The radio for ``spec``; bad specs raise ConfigError (exit code 2 in the CLI)."""
    kind, _, rest = spec.partition(":")
    adapter = parse_adapter(adapter)
    if scan_mode not in ("auto", "active", "passive"):
        raise ConfigError(f"scan mode must be auto, active or passive; got {scan_mode!r}")
    if kind in ("auto", "bluez"):
        if kind == "auto" and rest:
            raise ConfigError(f"`auto` takes no argument (got {spec!r}); use --adapter or bluez:{rest}")
        from_spec = parse_adapter(rest) if rest else None
        if from_spec and adapter and from_spec != adapter:
            raise ConfigError(f"--backend {spec} and --adapter {adapter} disagree")
        from bluezone.proximity.backends.bluez import BluezRadio

        return BluezRadio(
            from_spec or adapter,
            clock=clock,
            scan_mode=scan_mode,  # type: ignore[arg-type]
            unavailable_hint=ALTERNATIVES if kind == "auto" else "",
        )
    if kind == "bumble":
        if not rest:
            raise ConfigError("bumble needs a transport, e.g. bumble:usb:0 or bumble:hci-socket:1")
        if adapter:
            raise ConfigError("--adapter is for BlueZ; bumble takes its controller from the spec")
        try:
            from bluezone.proximity.backends.bumble_radio import BumbleRadio
        except ImportError as exc:
            if exc.name is None or exc.name.split(".")[0] != "bumble":
                raise
            raise ConfigError("the bumble backend needs bumble: pip install 'bluezone[bumble]'") from None

        return BumbleRadio(rest, clock=clock)
    raise ConfigError(f"unknown radio backend {spec!r}: use auto, bluez[:hciN], bumble:<transport> or emulated")

