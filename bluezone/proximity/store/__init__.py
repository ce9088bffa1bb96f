"""The sighting store: this device's daily keys and every valid advert it heard, in SQLite.

One file (default ``$XDG_DATA_HOME/bluezone/bluezone.db``), created 0600 in a 0700
directory because it holds key material and a record of who was near.  Tables are plain so
a user can look with ``sqlite-utils``::

    sqlite-utils tables ~/.local/share/bluezone/bluezone.db --counts
    sqlite-utils rows ~/.local/share/bluezone/bluezone.db sightings --limit 5

Writes come in batches (one transaction per flush); reads hand the matcher a numpy
SIGHTING_DTYPE array built from raw tuples without a Python object per field.

``SightingStore`` is the only door: every read and write is one of its methods, and no other
module touches its connection (``tests/test_architecture.py`` holds that true).  Open an
existing store with ``SightingStore.open(path, create=False)``: a missing or foreign file is
a NotAStoreError, and nothing is created.

Schema changes: the schema version is ``PRAGMA user_version``; ``schema.MIGRATIONS[i]`` takes a
database from version ``i`` to ``i + 1`` and they run in order on open (a test that replaces them
patches ``schema``, the module that reads them, not this package's copy of the name).  To change
the schema (yours or ours), append a function to ``MIGRATIONS``; never edit one that has shipped.
The key-server client's memory (pinned keys, processed batches, the last revision token, the
F1/F2 level told per key and day, the exposures reported, those withdrawn and the files rejected) is small
tables of schema 7; before it they were made on first use, outside the migrations.  ``rpi_days`` (schema 13)
counts the sightings of each RPI per UTC day, kept by triggers on ``sightings`` whatever writes it (a row is
never replaced by rowid: such an insert or update is refused), so a check reads its distinct RPIs from it.

``SightingStore`` is put together from one part per job, each in a module of its own:

- ``base.py``: the connection and path every part works on;
- ``schema.py``: the tables, one migration per schema version, refusing a foreign file;
- ``sightings.py``: GAEN sightings, stored in batches and read as numpy arrays;
- ``bluezone3.py``: Bluezone v3 sightings and this device's v3 key chain;
- ``adapters.py``: which of this device's adapters heard each sighting, and a calibration's RSSI correction added
  to the sightings of the adapter it was measured on;
- ``keys.py``: this device's daily keys;
- ``keyserver.py``: what the key-server client remembers;
- ``checkins.py``: venue check-ins' rows and their uploads;
- ``retention.py``: the 14-day purge, and rows dated ahead of the clock;
- ``status.py``: the daemon's last report and ``stats`` for ``bluezone status``;
- ``files.py`` (where the store lives, made private) and ``failures.py`` (SQLite's errors as one line);
- ``daemonlock.py``: the lock one daemon holds on the store, which a command's open asks about;
- ``heardread.py``: the distinct RPIs heard, read on ``sqlite3`` alone (the store's read, and a check's
  early reader, started before numpy is imported);
- ``interface.py`` puts them together, and opens and closes a store.

Its names are imported on first use (``bluezone.lazyexports``), so that ``heardread`` and ``schema``
can be imported without numpy."""

import typing

from bluezone.lazyexports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:  # what the names are, for type checkers
    from bluezone.proximity.store.failures import FULL_DISK_BYTES, TRANSIENT, unusable
    from bluezone.proximity.store.files import DB_FILENAME, EMULATED_DB_FILENAME, default_db_path, make_private_dirs
    from bluezone.proximity.store.interface import SightingStore
    from bluezone.proximity.store.retention import AHEAD_MARGIN, BATCH_NAMES_MARGIN, CLOCK_FLOOR, RETENTION_DAYS
    from bluezone.proximity.store.schema import (
        MIGRATIONS,
        NUMERIC_TIME,
        READABLE_ROW,
        REQUIRED_COLUMNS,
        RPI_INDEXED,
        SCHEMA_VERSION,
        UNUSABLE,
        USABLE_FIELDS,
    )

_EXPORTS = {
    "RETENTION_DAYS": "retention",
    "FULL_DISK_BYTES": "failures",
    "TRANSIENT": "failures",
    "unusable": "failures",
    "DB_FILENAME": "files",
    "EMULATED_DB_FILENAME": "files",
    "default_db_path": "files",
    "make_private_dirs": "files",
    "SightingStore": "interface",
    "AHEAD_MARGIN": "retention",
    "BATCH_NAMES_MARGIN": "retention",
    "CLOCK_FLOOR": "retention",
    "MIGRATIONS": "schema",
    "NUMERIC_TIME": "schema",
    "READABLE_ROW": "schema",
    "REQUIRED_COLUMNS": "schema",
    "RPI_INDEXED": "schema",
    "SCHEMA_VERSION": "schema",
    "UNUSABLE": "schema",
    "USABLE_FIELDS": "schema",
}

__all__ = [
    "AHEAD_MARGIN", "BATCH_NAMES_MARGIN", "CLOCK_FLOOR", "DB_FILENAME", "EMULATED_DB_FILENAME", "FULL_DISK_BYTES",
    "MIGRATIONS", "NUMERIC_TIME", "READABLE_ROW", "REQUIRED_COLUMNS", "RETENTION_DAYS", "RPI_INDEXED", "SCHEMA_VERSION",
    "TRANSIENT", "UNUSABLE", "USABLE_FIELDS", "SightingStore", "default_db_path", "make_private_dirs", "unusable",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
