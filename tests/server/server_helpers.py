"""Two nodes that met: F0's daily keys in one store, the sightings of its adverts in others."""

from __future__ import annotations

import numpy as np

from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore
from bluezone.server.codes import CodeKey
from bluezone.venues.location import Venue

#: A fixed "now" (2025-11-20 12:00 UTC) for the virtual clock.
NOW = 1_763_640_000.0
#: A code key for tests that hash codes without a key directory.
KEY = CodeKey(bytes(range(32)))
#: The venue of the check-in tests.
CAFE = Venue.create("Café Hoa", "12 Trần Phú", "food-service", 45, seed=bytes(16))


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


def publish_f0_with_cafe_checkin(server, nodes: dict) -> None:
    """F0 (node a) uploads its keys and a check-in at the café two days ago, 08:00-09:00 UTC, where node b
    was too; the server exports once.  ``server`` is test_key_server's Server."""
    from bluezone.client.uploading import keys_to_upload
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.upload import reports_to_upload
    from bluezone.venues.visits import Visit

    visit_start = rolling_start(NOW) * INTERVAL_SECONDS - 2 * 86400 + 8 * 3600
    with SightingStore.open(nodes["b"], create=False) as b:
        record_visit(b, CAFE, visit_start, visit_start + 3600, NOW)
    case = Visit(0, CAFE.location_id, CAFE.description, CAFE.address, visit_start, visit_start + 3600, True, "url")
    checkins = [r.entry() for r in reports_to_upload([case], NOW - 14 * 86400, NOW)]
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    server.client.publish(keys, server.code(test_type="confirmed"), checkins=checkins)
    server.export()


def uploaded(keys: np.ndarray, storage, now: float = NOW) -> np.ndarray:
    """``keys`` (a node's download, an export's) without the fake keys the server padded its files
    with, told apart by the secrets of the export days around ``now`` (bluezone/server/padding.py)."""
    from bluezone.server.padding import is_fake

    fake = np.zeros(len(keys), bool)
    for day in range(int(now // 86_400) - 20, int(now // 86_400) + 20):
        fake |= is_fake(keys, storage.padding_secret(day))
    return keys[~fake]
