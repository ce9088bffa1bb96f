"""Reading what the matcher needs from the sighting store, without ever creating one.

``bluezone check`` and ``keys export`` must not create or alter a database by accident
(a malformed key file is rejected before this is called), so the path must exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.errors import StoreError
from bluezone.proximity.sightings import SIGHTING_DTYPE


def default_db_path() -> Path:
    """$XDG_DATA_HOME/bluezone/bluezone.db (the store's documented default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bluezone" / "bluezone.db"


@contextmanager
def existing_store(db_path: Path | None) -> Iterator[Any]:
    """The SightingStore at ``db_path`` (default path when None); StoreError if absent."""
    path = Path(db_path) if db_path is not None else default_db_path()
    if not path.is_file():
        raise StoreError(f"no sighting database at {path} (give --db PATH, or run `bluezone run` first)")
    from bluezone.proximity.store import SightingStore  # the store module is optional here

    store = SightingStore.open(path)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def as_sightings(data: Any) -> np.ndarray:
    """The store's sightings as a SIGHTING_DTYPE array (it should already be one)."""
    array = np.asarray(data)
    if array.dtype != SIGHTING_DTYPE:
        raise StoreError(f"the store returned sightings of dtype {array.dtype}, expected SIGHTING_DTYPE")
    return array
