"""GAEN v1.2 cryptography: pure functions, bytes in, bytes or numpy arrays out, no I/O."""

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
from bluezone.crypto.derivation import aem, decrypt_aem, rpi, rpis_for_key, rpis_for_keys

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
