"""Two nodes that met: F0's daily keys in one store, the sightings of its adverts in others."""

from __future__ import annotations

import numpy as np

from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore
from bluezone.server.codes import CodeKey

#: A fixed "now" (2025-11-20 12:00 UTC) for the virtual clock.
NOW = 1_763_640_000.0
#: A code key for tests that hash codes without a key directory.
KEY = CodeKey(bytes(range(32)))


def f0_keys(now: float, days: int = 5, seed: int = 7) -> list[DailyKey]:
    """One daily key per day for the ``days`` days before today, and today's."""
    rng = np.random.default_rng(seed)
    today = rolling_start(now)
    return [DailyKey(rng.bytes(16), today - d * ROLLING_PERIOD) for d in range(days, -1, -1)]


def encounter(tek: DailyKey, first_interval: int, minutes: int, rssi: int, tx_power: int = -20) -> np.ndarray:
    """Sightings every 30 s for ``minutes`` of the adverts ``tek`` sent from ``first_interval``."""
    times = first_interval * INTERVAL_SECONDS + 5 + 30.0 * np.arange(2 * minutes)
    out = np.zeros(len(times), SIGHTING_DTYPE)
    out["time"] = times
    out["rssi"] = rssi
    out["tx_power"] = -128
    for interval in np.unique((times // INTERVAL_SECONDS).astype(int)):
        value = rpi(rpi_key(tek.key), int(interval))
        sel = (times // INTERVAL_SECONDS).astype(int) == interval
        out["rpi"][sel] = np.void(value)
        out["aem"][sel] = np.void(aem(aem_key(tek.key), value, bytes(Metadata(tx_power=tx_power))))
    return out


def make_nodes(tmp_path, now: float = NOW) -> tuple:
    """A (F0, own keys), B (30 min within ~1 m of A two days ago), C (10 m away, same time)."""
    keys = f0_keys(now)
    met = keys[-3]  # two days ago
    start = met.rolling_start + 60
    paths = {}
    for name, sightings in (
        ("a", None),
        ("b", encounter(met, start, 30, rssi=-72)),
        ("c", encounter(met, start, 30, rssi=-100)),
    ):
        path = tmp_path / f"{name}.db"
        with SightingStore.open(path, purge_now=now) as store:
            if sightings is None:
                for k in keys:
                    store.save_daily_key(k, created_at=now)
            else:
                store.add_sightings(sightings)
        paths[name] = path
    return keys, paths
