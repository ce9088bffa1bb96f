"""The store as a package of parts (bluezone/proximity/store/): every public method of every part still
turns SQLite's errors into one line, and what callers import from ``bluezone.proximity.store`` is there."""

from __future__ import annotations

import inspect

import pytest

from bluezone.errors import StoreError
from bluezone.proximity.store import SightingStore


def _public_methods() -> set[str]:
    return {
        name
        for part in SightingStore.__mro__
        for name, value in vars(part).items()
        if inspect.isfunction(value) and not name.startswith("_") and name != "close"
    }


def test_every_public_method_of_every_part_is_guarded() -> None:
    """The guard wrapped the methods the class itself defines: with them in its parts (its bases), a
    damaged page met by ``sightings()`` would have been a bare sqlite3.DatabaseError and a traceback."""
    public = _public_methods()
    assert {"add_sightings", "sightings", "daily_keys", "purge", "stats", "checkin_rows", "keyserver_pin"} <= public
    assert not sorted(n for n in public if not hasattr(inspect.getattr_static(SightingStore, n), "__wrapped__"))


@pytest.mark.parametrize("call", ["daily_keys", "sightings", "count_sightings", "stats", "checkin_rows", "daemon_state"])
def test_a_part_s_sqlite_error_is_a_store_error(call: str) -> None:
    store = SightingStore.open(":memory:")
    store.close()  # every statement now fails in SQLite (ProgrammingError, a DatabaseError)
    with pytest.raises(StoreError, match="is not a usable sighting database"):
        getattr(store, call)()


def test_the_names_callers_import_are_still_there() -> None:
    import bluezone.proximity as proximity
    from bluezone.proximity import store

    for name in ("CLOCK_FLOOR", "EMULATED_DB_FILENAME", "RETENTION_DAYS", "SCHEMA_VERSION", "SightingStore",
                 "default_db_path", "make_private_dirs", "unusable", "RPI_INDEXED", "UNUSABLE", "MIGRATIONS"):
        assert hasattr(store, name), name
    assert proximity.SightingStore is SightingStore and proximity.RETENTION_DAYS == store.RETENTION_DAYS
