"""Reading what the matcher needs from the sighting store, without ever creating one.

``bluezone check`` and ``keys export`` must not create a database by accident (a malformed
key file is rejected before this is called), so the store is opened with ``create=False``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.errors import StoreError
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore, default_db_path

__all__ = ["as_sightings", "default_db_path", "existing_store"]


@contextmanager
def existing_store(db_path: Path | None) -> Iterator[SightingStore]:
    """The SightingStore at ``db_path`` (default path when None); StoreError if absent."""
    path = Path(db_path) if db_path is not None else default_db_path()
    with SightingStore.open(path, create=False) as store:
        yield store


def as_sightings(data: Any) -> np.ndarray:
    """The store's sightings as a SIGHTING_DTYPE array (it should already be one)."""
    array = np.asarray(data)
    if array.dtype != SIGHTING_DTYPE:
        raise StoreError(f"the store returned sightings of dtype {array.dtype}, expected SIGHTING_DTYPE")
    return array
