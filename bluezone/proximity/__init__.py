"""Proximity: radio backends, the daemon that runs them, and the sighting store.

Data flows one way: radio -> daemon (validation in ``ingest``) -> store -> matcher.
"""

from bluezone.proximity.backends import open_radio, radio_names, register_radio
from bluezone.proximity.backends.emulated import Air, EmulatedRadio, LogDistanceChannel
from bluezone.proximity.daemon import Daemon, DaemonStats
from bluezone.proximity.emulation import run_emulated
from bluezone.proximity.ingest import adverts_to_sightings, payloads_to_sightings
from bluezone.proximity.radio import Advert, Radio
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
from bluezone.proximity.store import RETENTION_DAYS, SightingStore

__all__ = [
    "NO_TX_POWER",
    "RETENTION_DAYS",
    "SIGHTING_DTYPE",
    "Advert",
    "Air",
    "Daemon",
    "DaemonStats",
    "EmulatedRadio",
    "LogDistanceChannel",
    "Radio",
    "SightingStore",
    "adverts_to_sightings",
    "open_radio",
    "payloads_to_sightings",
    "radio_names",
    "register_radio",
    "run_emulated",
]
