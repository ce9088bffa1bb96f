"""Where the simulated phones keep their sightings.

``sqlite``: one real bluezone ``SightingStore`` per phone in a temporary directory, written
in batches exactly as the daemon does.  ``memory``: numpy batches per phone, for crowds
so large that a thousand SQLite files would measure SQLite rather than detection; the
matcher gets the same SIGHTING_DTYPE array either way.  ``auto`` picks SQLite for small
crowds when the store module is present.
"""

from __future__ import annotations

import importlib.util

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.errors import ConfigError
from bluezone.proximity.sightings import SIGHTING_DTYPE

log = logging.getLogger(__name__)

SQLITE_MAX_PHONES = 80


class MemoryStores:
    """Each simulated phone's sightings kept as numpy batches in memory."""

    kind = "memory"

    def __init__(self, n: int) -> None:
        self.batches: list[list[np.ndarray]] = [[] for _ in range(n)]

    def write(self, device: int, batch: np.ndarray) -> None:
        self.batches[device].append(batch)

    def read(self, device: int) -> np.ndarray:
        parts = self.batches[device]
        return np.concatenate(parts) if parts else np.empty(0, SIGHTING_DTYPE)

    def close(self) -> None:
        self.batches = []


class SqliteStores:
    """One SightingStore file per phone under a temporary directory removed on close."""

    kind = "sqlite"

    def __init__(self, n: int) -> None:
        from bluezone.proximity.store import SightingStore

        self._dir = tempfile.TemporaryDirectory(prefix="bluezone-sim-")
        self.stores: list[Any] = [SightingStore.open(Path(self._dir.name) / f"phone-{i}.db") for i in range(n)]

    def write(self, device: int, batch: np.ndarray) -> None:
        self.stores[device].add_sightings(batch)

    def read(self, device: int) -> np.ndarray:
        return np.asarray(self.stores[device].sightings())

    def close(self) -> None:
        for s in self.stores:
            s.close()
        self._dir.cleanup()


def sqlite_available() -> bool:
    """Whether the real sighting store can be used (it needs sqlite-utils)."""
    return importlib.util.find_spec("sqlite_utils") is not None


def open_stores(n: int, kind: str = "auto") -> MemoryStores | SqliteStores:
    """One store per phone: real SQLite stores for small crowds, memory for large (``auto``)."""
    if kind == "auto":
        kind = "sqlite" if n <= SQLITE_MAX_PHONES and sqlite_available() else "memory"
    if kind == "memory":
        return MemoryStores(n)
    if kind == "sqlite":
        if not sqlite_available():
            raise ConfigError("store 'sqlite' needs bluezone.proximity.store, which is not installed")
        return SqliteStores(n)
    raise ConfigError(f"unknown store kind {kind!r}; use auto, sqlite or memory")
