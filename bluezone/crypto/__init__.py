"""GAEN v1.2 cryptography: pure functions, bytes in, bytes or numpy arrays out, no I/O.

Its names are imported on first use (``bluezone.lazyexports``): the time units (``intervals``) and
the settings that name them (``bluezone.config``) must not import numpy and the ciphers, so that a
check can start reading its store while numpy is imported (``bluezone.proximity.store.heardread``)."""

import typing

from bluezone.lazyexports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:  # what the names are, for type checkers
    from bluezone.crypto.derivation import aem, decrypt_aem, rpi, rpis_for_key, rpis_for_keys
    from bluezone.crypto.intervals import (
        DAY_SECONDS,
        INTERVAL_SECONDS,
        ROLLING_PERIOD,
        interval_number,
        interval_start,
        rolling_start,
    )
    from bluezone.crypto.keys import DailyKey, aem_key, rpi_key
    from bluezone.crypto.payload import SERVICE_UUID, SERVICE_UUID16, Metadata, ServiceData

_EXPORTS = {
    "DAY_SECONDS": "intervals",
    "INTERVAL_SECONDS": "intervals",
    "ROLLING_PERIOD": "intervals",
    "interval_number": "intervals",
    "interval_start": "intervals",
    "rolling_start": "intervals",
    "DailyKey": "keys",
    "aem_key": "keys",
    "rpi_key": "keys",
    "SERVICE_UUID": "payload",
    "SERVICE_UUID16": "payload",
    "Metadata": "payload",
    "ServiceData": "payload",
    "aem": "derivation",
    "decrypt_aem": "derivation",
    "rpi": "derivation",
    "rpis_for_key": "derivation",
    "rpis_for_keys": "derivation",
}

__all__ = [
    "DAY_SECONDS",
    "INTERVAL_SECONDS",
    "ROLLING_PERIOD",
    "SERVICE_UUID",
    "SERVICE_UUID16",
    "DailyKey",
    "Metadata",
    "ServiceData",
    "aem",
    "aem_key",
    "decrypt_aem",
    "interval_number",
    "interval_start",
    "rolling_start",
    "rpi",
    "rpi_key",
    "rpis_for_key",
    "rpis_for_keys",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
