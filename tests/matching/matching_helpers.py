"""Building blocks for matching tests: keys and the sightings their adverts leave behind."""

from __future__ import annotations

import numpy as np

from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.keys import empty_keys
from bluezone.proximity.sightings import SIGHTING_DTYPE


def make_keys(rows: list[tuple[bytes, int, int]], risk: int = 0) -> np.ndarray:
    keys = empty_keys(len(rows))
    for i, (tek, start, period) in enumerate(rows):
        keys[i]["key"] = np.void(tek)
        keys[i]["rolling_start"] = start
        keys[i]["rolling_period"] = period
        keys[i]["transmission_risk"] = risk
    return keys


def advert_sightings(
    tek: bytes,
    rpi_interval: int,
    times: list[float] | np.ndarray,
    rssi: int | list[int] = -70,
    tx_power: int = -20,
    metadata: bytes | None = None,
) -> np.ndarray:
    """Sightings of the advert ``tek`` sent during ``rpi_interval``, received at ``times``."""
    value = rpi(rpi_key(tek), rpi_interval)
    meta = bytes(Metadata(tx_power=tx_power)) if metadata is None else metadata
    out = np.zeros(len(times), SIGHTING_DTYPE)
    out["time"] = times
    out["rpi"] = np.void(value)
    out["aem"] = np.void(aem(aem_key(tek), value, meta))
    out["rssi"] = rssi
    out["tx_power"] = -128
    return out


def noise_sightings(n: int, t0: float, t1: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = np.sort(rng.uniform(t0, t1, n))
    out["rpi"] = np.frombuffer(rng.bytes(16 * n), "V16")
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rng.integers(-100, -40, n)
    return out


def interval_time(interval: int, offset: float = 30.0) -> float:
    return interval * INTERVAL_SECONDS + offset
