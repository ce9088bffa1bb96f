"""Sightings for the store's read tests: RPIs heard a chosen number of times each, and the rows a hand
edit might leave (shared by tests/proximity/test_store_rpis.py and test_heardread.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

NOON = 1_780_488_000.0  # a UTC noon


def repeated_rows(seed: int, n_rpis: int, per_rpi: int, spread: float = 3 * 86400.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = n_rpis * per_rpi
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = NOON + rng.uniform(-spread / 2, spread / 2, n)
    out["rpi"] = np.repeat(np.frombuffer(rng.bytes(16 * n_rpis), "V16"), per_rpi)
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rng.integers(-100, -40, n)
    out["tx_power"] = np.where(rng.random(n) < 0.5, NO_TX_POWER, -20)
    return out


def damage(store: SightingStore, rows: np.ndarray) -> None:
    """Rows a hand edit might leave: unreadable fields, short RPIs and AEMs, a time that is text."""
    t = float(rows["time"][0])
    rpi = bytes(rows["rpi"][0])
    store.db.conn.executemany(
        "INSERT INTO sightings (time, rpi, aem, rssi, tx_power) VALUES (?, ?, ?, ?, ?)",
        [
            (t, rpi, b"\x00" * 4, "loud", None),  # text RSSI: unusable, RPI heard
            (t + 1, b"\x07" * 16, None, -60, None),  # no AEM: unusable, RPI heard (only here)
            (t + 2, b"\x08" * 15, b"\x00" * 4, -60, None),  # short RPI: not heard
            ("noon", b"\x09" * 16, b"\x00" * 4, -60, None),  # text time: not heard
            (t + 3, rpi, b"\x00" * 4, -60, 3.5),  # real TX power: unusable
        ],
    )
    store.db.conn.commit()


def utf16_file(path: Path) -> None:
    """An empty SQLite file in UTF-16 (a store opened on it keeps that encoding: ``heard_rpis`` reads hex)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA encoding = 'UTF-16le'")
    conn.execute("CREATE TABLE t (x)")  # the encoding is fixed by the first table
    conn.execute("DROP TABLE t")
    conn.close()


class SqliteSteps:
    """SQLite's virtual-machine steps on ``conn``, counted every ``every`` steps (a progress handler): what a read
    costs, where wall time on a shared machine is noise.  ``count`` is set back to 0 between reads."""

    def __init__(self, conn: sqlite3.Connection, every: int) -> None:
        self.count = 0
        conn.set_progress_handler(self._step, every)

    def _step(self) -> int:
        self.count += 1
        return 0
