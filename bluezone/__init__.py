"""bluezone: Bluetooth proximity contact detection, wire-compatible with GAEN v1.2."""

from bluezone.clock import Clock, SystemClock, VirtualClock
from bluezone.crypto import DailyKey
from bluezone.errors import BluezoneError, InputError, KeyFileError, RadioError, RadioUnavailableError

__version__ = "0.1.0"

__all__ = [
    "BluezoneError",
    "Clock",
    "DailyKey",
    "InputError",
    "KeyFileError",
    "RadioError",
    "RadioUnavailableError",
    "SystemClock",
    "VirtualClock",
    "__version__",
]
