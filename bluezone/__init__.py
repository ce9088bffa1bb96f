"""bluezone: Bluetooth proximity contact detection, wire-compatible with GAEN v1.2.

The handful of names most users need; each subpackage (``bluezone.crypto``,
``bluezone.proximity``, ``bluezone.keyformat``, ``bluezone.matching``, ``bluezone.client``,
``bluezone.server``, ``bluezone.sim``) exports the rest.
"""

from bluezone.lazyexports import lazy_exports as _lazy_exports

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

_export, _exported = _lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str) -> object:
    """``__version__`` is the installed distribution's, from its metadata (pyproject.toml's, one source of
    truth with ``bluezone --version``), read when asked for: importlib.metadata costs an import otherwise."""
    if name == "__version__":
        from importlib.metadata import version

        return version("bluezone")
    return _export(name)


def __dir__() -> list[str]:
    return sorted({*_exported(), "__version__"})

