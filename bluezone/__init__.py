"""bluezone: Bluetooth proximity contact detection, wire-compatible with GAEN v1.2.

The handful of names most users need; each subpackage (``bluezone.crypto``,
``bluezone.proximity``, ``bluezone.keyformat``, ``bluezone.matching``, ``bluezone.client``,
``bluezone.server``, ``bluezone.sim``) exports the rest.
"""

from bluezone.clock import Clock, SystemClock, VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto import DailyKey
from bluezone.errors import (
    BluezoneError,
    ConfigError,
    InputError,
    KeyFileError,
    PayloadError,
    RadioError,
    RadioUnavailableError,
    StoreError,
)
from bluezone.keyformat import load_keys
from bluezone.matching import check_sightings, get_scorer
from bluezone.proximity import Daemon, SightingStore, open_radio

__version__ = "0.1.0"

__all__ = [
    "BluezoneError",
    "Clock",
    "ConfigError",
    "DailyKey",
    "DaemonConfig",
    "Daemon",
    "InputError",
    "KeyFileError",
    "PayloadError",
    "RadioError",
    "RadioUnavailableError",
    "SightingStore",
    "StoreError",
    "SystemClock",
    "VirtualClock",
    "__version__",
    "check_sightings",
    "get_scorer",
    "load_keys",
    "open_radio",
]
