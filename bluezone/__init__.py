"""bluezone: Bluetooth proximity contact detection, wire-compatible with GAEN v1.2.

The handful of names most users need; each subpackage (``bluezone.crypto``,
``bluezone.proximity``, ``bluezone.keyformat``, ``bluezone.matching``, ``bluezone.client``,
``bluezone.server``, ``bluezone.sim``) exports the rest.
"""

from bluezone.lazyexports import lazy_exports as _lazy_exports

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

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

