"""Proximity: radio backends, the daemon that runs them, and the sighting store.

Data flows one way: radio -> daemon (validation in ``ingest``) -> store -> matcher.
"""

from bluezone.lazyexports import lazy_exports as _lazy_exports

#: Loaded on first use, so that reading the store (``bluezone check``) does not import the daemon,
#: asyncio and the radio backends.
_EXPORTS = {
    "open_radio": "backends",
    "radio_names": "backends",
    "register_radio": "backends",
    "Air": "backends.emulated",
    "EmulatedRadio": "backends.emulated",
    "LogDistanceChannel": "backends.emulated",
    "Daemon": "daemon",
    "DaemonStats": "daemon",
    "RpiBudget": "budget",
    "run_emulated": "emulation",
    "adverts_to_sightings": "ingest",
    "payloads_to_sightings": "ingest",
    "Advert": "radio",
    "Radio": "radio",
    "NO_TX_POWER": "sightings",
    "SIGHTING_DTYPE": "sightings",
    "RETENTION_DAYS": "store",
    "SightingStore": "store",
}

__all__ = sorted(_EXPORTS, key=lambda name: (not name[0].isupper() or name.isupper(), name))

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

