"""bluezone: Bluetooth proximity contact detection, wire-compatible with GAEN v1.2.

The handful of names most users need; each subpackage (``bluezone.crypto``,
``bluezone.proximity``, ``bluezone.keyformat``, ``bluezone.matching``, ``bluezone.client``,
``bluezone.server``, ``bluezone.sim``) exports the rest.
"""

import importlib as _importlib

__version__ = "0.1.0"

#: Loaded on first use: ``import bluezone.x`` runs this file first, and a command that reads the
#: store must not pay for the daemon, the radio backends and asyncio.
_EXPORTS = {
    "Clock": "clock",
    "SystemClock": "clock",
    "VirtualClock": "clock",
    "DaemonConfig": "config",
    "DailyKey": "crypto",
    "BluezoneError": "errors",
    "ConfigError": "errors",
    "InputError": "errors",
    "KeyFileError": "errors",
    "PayloadError": "errors",
    "RadioError": "errors",
    "RadioUnavailableError": "errors",
    "StoreError": "errors",
    "load_keys": "keyformat",
    "check_sightings": "matching",
    "get_scorer": "matching",
    "Daemon": "proximity",
    "SightingStore": "proximity",
    "open_radio": "proximity",
}

__all__ = sorted([*_EXPORTS, "__version__"], key=lambda name: (not name[0].isupper(), name))


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

