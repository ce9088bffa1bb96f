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

Schema changes: the schema version is ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a
database from version ``i`` to ``i + 1`` and they run in order on open.  To change the schema
(yours or ours), append a function to ``MIGRATIONS``; never edit one that has shipped.
The key-server client's memory (pinned keys, processed batches, the last revision token, the
F1/F2 level told per key, the exposures reported, those withdrawn and the files rejected) is small
tables of schema 7; before it they were made on first use, outside the migrations.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import logging
import math
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from bluezone.config import RETENTION_DAYS, xdg_home
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, interval_number
from bluezone.crypto.bluezone3 import daily_key as bluezone3_daily_key
from bluezone.crypto.keys import DailyKey
from bluezone.errors import InputError, NotAStoreError, StoreError, StoreWriteError
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER, SIGHTING_DTYPE

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

#: Rows bluezone can read: SQLite sorts text and blobs after every number (and NULL fails any
#: comparison), so this keeps hand-edited or damaged rows out while still using the time index.
NUMERIC_TIME = "time < 1e300"
READABLE_ROW = f"{NUMERIC_TIME} AND typeof(rssi) = 'integer' AND typeof(tx_power) IN ('integer', 'null')"
#: The index by RPI (schema 6) holds the rows with a 16-byte RPI and a numeric time; a sighting is
#: usable by a check when its AEM and fields are readable too (the daemon writes no other rows, a
#: hand edit may), and the (normally empty) index of unusable rows lets a count skip them.  SQLite
#: uses a partial index only for a query that repeats its condition term by term, so these texts
#: must stay as they are.
RPI_INDEXED = f"length(rpi) = 16 AND {NUMERIC_TIME}"
USABLE_FIELDS = "length(rpi) = 16 AND length(aem) = 4 AND typeof(rssi) = 'integer' AND typeof(tx_power) IN ('integer', 'null')"
UNUSABLE = (
    "(length(rpi) IS NOT 16 OR length(aem) IS NOT 4 OR typeof(rssi) != 'integer'"
    " OR typeof(tx_power) NOT IN ('integer', 'null'))"
)
_HEARD_BLOB_BYTES = 256 << 20  # at most this much per query of ``heard_rpis``
_IN_BATCH = 500  # RPIs per `rpi IN (...)` query (SQLite allows 32,766 variables; small stays fast)
#: ``heard_rpis`` lets SQLite group the index when RPIs are heard this many times each or more (in
#: a sample of this many index entries): below, numpy groups faster (docs/benchmarks.md).
_GROUP_FROM = 8
_SHAPE_SAMPLE = 2048

DB_FILENAME = "bluezone.db"


#: Where ``bluezone run --backend emulated`` keeps its invented neighbours, beside the real store.
EMULATED_DB_FILENAME = "emulated.db"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/bluezone/bluezone.db``, falling back to ``~/.local/share``."""
    return xdg_home("XDG_DATA_HOME", ".local/share") / "bluezone" / DB_FILENAME


def _missing_store_hint(path: Path) -> str:
    """What to do about a missing store: the emulated daemon keeps emulated.db beside the real one,
    so someone who tried ``bluezone run --backend emulated`` is pointed at it."""
    emulated = path.with_name(EMULATED_DB_FILENAME)
    if path.name != emulated.name and emulated.is_file():
        return f"`bluezone run --backend emulated` keeps its sightings in {emulated}: give --db {emulated}"
    return "give --db PATH, or run `bluezone run` first"


def _first_day(cutoff: float) -> str:
    """The UTC day (ISO date, which orders as a string) of ``cutoff``: days before it are past the retention."""
    return dt.datetime.fromtimestamp(cutoff, dt.UTC).date().isoformat()


# --- schema -----------------------------------------------------------------------------------


def _v1(db: sqlite_utils.Database) -> None:
    db.table("daily_keys").create(
        {"key": bytes, "rolling_start": int, "rolling_period": int, "created_at": float},
        if_not_exists=True,
    )
    db.table("daily_keys").create_index(["key"], unique=True, if_not_exists=True)
    db.table("daily_keys").create_index(["rolling_start"], if_not_exists=True)
    db.table("sightings").create(
        {"time": float, "rpi": bytes, "aem": bytes, "rssi": int, "tx_power": int, "address": str},
        if_not_exists=True,
    )
    db.table("sightings").create_index(["time"], if_not_exists=True)


def _v2(db: sqlite_utils.Database) -> None:
    """What the running daemon last reported about itself and its radio, for ``bluezone status``."""
    db.table("daemon_state").create({"name": str, "value": str, "updated_at": float}, pk="name", if_not_exists=True)


def _v3(db: sqlite_utils.Database) -> None:
    """Bluezone v3 adverts heard (their 12-byte ID), and where this device's own Bluezone v3 key chain
    starts (the daily key of the oldest day within the retention)."""
    db.table("bluezone3_sightings").create(
        {"time": float, "bzid": bytes, "rssi": int, "tx_power": int, "address": str}, if_not_exists=True
    )
    db.table("bluezone3_sightings").create_index(["time"], if_not_exists=True)
    db.table("bluezone3_key").create({"day": int, "key": bytes, "created_at": float}, pk="day", if_not_exists=True)


def _v4(db: sqlite_utils.Database) -> None:
    """Venue check-ins (bluezone/venues/checkins.py): kept 14 days like sightings, purged with them."""
    db.table("checkins").create(
        {
            "id": int,
            "location_id": bytes,
            "payload": bytes,
            "description": str,
            "address": str,
            "start_time": float,
            "end_time": float,
            "checked_out": int,
            "source": str,
            "created_at": float,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("checkins").create_index(["end_time"], if_not_exists=True)


def _v5(db: sqlite_utils.Database) -> None:
    """When this device last sent a Bluezone v3 ID from its key chain: a chain not sent from within
    the retention is dropped (the daily purge moved it forward for good)."""
    if "used_at" not in db.table("bluezone3_key").columns_dict:
        db.table("bluezone3_key").add_column("used_at", float)
    db.execute("UPDATE bluezone3_key SET used_at = created_at WHERE used_at IS NULL")


def _v6(db: sqlite_utils.Database) -> None:
    """Sightings indexed by RPI (covering its time): a check reads each distinct RPI once from the
    index (``heard_rpis``) and the full rows of only the RPIs that match (``sightings_with_rpis``);
    and a (normally empty) index of unusable rows, so that counting usable sightings needs no row
    either."""
    db.execute(f"CREATE INDEX IF NOT EXISTS sightings_by_rpi ON sightings (rpi, time) WHERE {RPI_INDEXED}")
    db.execute(f"CREATE INDEX IF NOT EXISTS sightings_unusable ON sightings (time) WHERE {UNUSABLE}")


#: What the key-server client remembers (``bluezone.client.ServerState`` is the typed view): pinned keys,
#: processed batch names, the last upload's revision token, the F1/F2 level told per key and day, the
#: exposures a check reported and those withdrawn since, and files a check rejected.
_KEYSERVER_TABLES = {
    "keyserver_pins": "(server TEXT PRIMARY KEY, public_key TEXT NOT NULL, key_id TEXT, key_version TEXT,"
    " pinned_at REAL NOT NULL)",
    "keyserver_batches": "(server TEXT NOT NULL, name TEXT NOT NULL, keys INTEGER NOT NULL, processed_at REAL NOT NULL,"
    " PRIMARY KEY (server, name))",
    "keyserver_revision_tokens": "(server TEXT PRIMARY KEY, token TEXT NOT NULL, saved_at REAL NOT NULL)",
    "keyserver_warnings": "(key_hash BLOB NOT NULL, day TEXT NOT NULL, level TEXT NOT NULL, reported_at REAL NOT NULL,"
    " PRIMARY KEY (key_hash, day))",
    # as made at schema 7; schema 10 (``_v10``) adds end_time to its primary key
    "keyserver_exposures": "(server TEXT NOT NULL, key_hash BLOB NOT NULL, day TEXT NOT NULL, start_time REAL NOT NULL,"
    " end_time REAL NOT NULL, exposure TEXT NOT NULL, reported_at REAL NOT NULL,"
    " PRIMARY KEY (server, key_hash, day, start_time))",
    "keyserver_withdrawn": "(server TEXT NOT NULL, key_hash BLOB NOT NULL, day TEXT NOT NULL,"
    " PRIMARY KEY (server, key_hash, day)) WITHOUT ROWID",
    "keyserver_rejected": "(server TEXT NOT NULL, public_key TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL,"
    " rejected_at REAL NOT NULL, PRIMARY KEY (server, public_key, name))",
}


def _v7(db: sqlite_utils.Database) -> None:
    """The key-server client's tables, which were made on first use (``CREATE TABLE IF NOT EXISTS`` on
    each open, outside the migrations, so a later change to one had no way in).  A store that made
    some of them already keeps them and their rows; the others are made."""
    for name, columns in _KEYSERVER_TABLES.items():
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} {columns}")


def _v8(db: sqlite_utils.Database) -> None:
    """The check-ins this device uploaded, one row per sealed report sent (its MAC, unique to each
    sealing): a check sets aside the venue warnings that are its own reports (docs/venues.md)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS checkin_uploads (mac BLOB PRIMARY KEY, checkin_id INTEGER NOT NULL,"
        " server TEXT NOT NULL, end_time REAL NOT NULL, uploaded_at REAL NOT NULL)"
    )


def _v9(db: sqlite_utils.Database) -> None:
    """The venue reports a check has told of (by MAC, so a second case's report of the same minutes in a
    later file is news and a replayed file's is not), and the check-ins an upload may have carried
    without a record of its reports (``checkin_uploads_unrecorded``): a store upgraded from schema 7
    knows only its last upload's server and time (the revision token, kept 14 days), never the reports
    it sealed (their MACs cover a random IV) nor whether the F0 let its check-ins go (asked, optional).
    Every check-in begun before that upload and ending within the 14 days before it is recorded as
    possibly sent; a check sets aside a warning with exactly the times that upload would have sent for
    it (docs/venues.md, "Upgraded from schema 7").  Only when no upload of this store is on record: a
    store at schema 8 that kept none (its uploads had no check-ins) records the same, harmlessly for
    the upload (it ignores the table) and at the cost, for an F0, of another case's identical report."""
    db.execute("CREATE TABLE IF NOT EXISTS venue_reports_told (mac BLOB PRIMARY KEY, told_at REAL NOT NULL)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS checkin_uploads_unrecorded (checkin_id INTEGER NOT NULL, server TEXT NOT NULL,"
        " uploaded_at REAL NOT NULL, PRIMARY KEY (checkin_id, server))"
    )
    if db.execute("SELECT 1 FROM checkin_uploads LIMIT 1").fetchone():
        return
    db.execute(
        "INSERT OR IGNORE INTO checkin_uploads_unrecorded (checkin_id, server, uploaded_at)"
        " SELECT c.id, t.server, t.saved_at FROM checkins c JOIN keyserver_revision_tokens t"
        " ON c.start_time < t.saved_at AND c.end_time > t.saved_at - ? WHERE c.end_time < 1e300",
        [RETENTION_DAYS * DAY_SECONDS],
    )


def _v10(db: sqlite_utils.Database) -> None:
    """The exposures a check reported, keyed by their end too: two venue exposures of one visit and day
    that start together and end apart (two cases at the venue, one leaving earlier) were one row, the
    second replacing the first, so the next check repeated only one of them.  SQLite cannot change a
    primary key in place: the table is made anew, its rows copied."""
    db.execute(
        "CREATE TABLE keyserver_exposures_v10 (server TEXT NOT NULL, key_hash BLOB NOT NULL, day TEXT NOT NULL,"
        " start_time REAL NOT NULL, end_time REAL NOT NULL, exposure TEXT NOT NULL, reported_at REAL NOT NULL,"
        " PRIMARY KEY (server, key_hash, day, start_time, end_time))"
    )
    db.execute(
        "INSERT INTO keyserver_exposures_v10 (server, key_hash, day, start_time, end_time, exposure, reported_at)"
        " SELECT server, key_hash, day, start_time, end_time, exposure, reported_at FROM keyserver_exposures"
    )
    db.execute("DROP TABLE keyserver_exposures")
    db.execute("ALTER TABLE keyserver_exposures_v10 RENAME TO keyserver_exposures")


#: MIGRATIONS[i] upgrades a database at schema version i to i + 1.  Append only.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10]
SCHEMA_VERSION = len(MIGRATIONS)

#: The columns bluezone reads, by the schema version that added them.  A file is checked
#: against these before anything is written to it (``tests/proximity/test_store.py`` keeps
#: them in step with ``MIGRATIONS``).
REQUIRED_COLUMNS: dict[int, dict[str, frozenset[str]]] = {
    1: {
        "daily_keys": frozenset({"key", "rolling_start", "rolling_period", "created_at"}),
        "sightings": frozenset({"time", "rpi", "aem", "rssi", "tx_power", "address"}),
    },
    2: {"daemon_state": frozenset({"name", "value", "updated_at"})},
    3: {
        "bluezone3_sightings": frozenset({"time", "bzid", "rssi", "tx_power", "address"}),
        "bluezone3_key": frozenset({"day", "key", "created_at"}),
    },
    4: {
        "checkins": frozenset(
            {"id", "location_id", "payload", "description", "address", "start_time", "end_time", "checked_out",
             "source", "created_at"}
        )
    },
    5: {"bluezone3_key": frozenset({"day", "key", "created_at", "used_at"})},
    7: {
        "keyserver_pins": frozenset({"server", "public_key", "key_id", "key_version", "pinned_at"}),
        "keyserver_batches": frozenset({"server", "name", "keys", "processed_at"}),
        "keyserver_revision_tokens": frozenset({"server", "token", "saved_at"}),
        "keyserver_warnings": frozenset({"key_hash", "day", "level", "reported_at"}),
        "keyserver_exposures": frozenset({"server", "key_hash", "day", "start_time", "end_time", "exposure", "reported_at"}),
        "keyserver_withdrawn": frozenset({"server", "key_hash", "day"}),
        "keyserver_rejected": frozenset({"server", "public_key", "name", "reason", "rejected_at"}),
    },
    8: {"checkin_uploads": frozenset({"mac", "checkin_id", "server", "end_time", "uploaded_at"})},
    9: {
        "venue_reports_told": frozenset({"mac", "told_at"}),
        "checkin_uploads_unrecorded": frozenset({"checkin_id", "server", "uploaded_at"}),
    },
}


def _required_tables(version: int) -> dict[str, frozenset[str]]:
    """Table -> columns a store at schema ``version`` must have."""
    out: dict[str, frozenset[str]] = {}
    for v, tables in REQUIRED_COLUMNS.items():
        if v <= version:
            out.update(tables)
    return out


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask


def _create_private_file(path: Path) -> None:
    """Create an empty 0600 file before SQLite opens it (SQLite gives -wal/-shm the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the sighting database {path}: {exc.strerror}") from None
    os.close(fd)
    os.chmod(path, 0o600)


#: SQLite errors that may pass (space freed, the disk back, the lock released): worth a retry.
TRANSIENT = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED")


def unusable(path: Path | None, exc: sqlite3.DatabaseError) -> StoreError:
    """The one line for a database SQLite cannot use: another program's file (exit 2) or a
    damaged one (exit 1), never a bare ``DatabaseError``."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(TRANSIENT):
        return StoreWriteError(f"cannot write to {path or ':memory:'} now: {exc}{_full_disk_hint(path)}")
    error = NotAStoreError if name == "SQLITE_NOTADB" else StoreError
    hint = ""
    if name.startswith("SQLITE_CORRUPT"):
        hint = " (it is damaged: move it away, and `bluezone run` starts a new one, or restore a copy)"
    return error(f"{path or ':memory:'} is not a usable sighting database: {exc}{hint}")


#: Free bytes under which a failing write is put down to a full disk.
FULL_DISK_BYTES = 1_000_000


def _full_disk_hint(path: Path | None) -> str:
    """What to do when the disk is full: SQLite says it as 'disk I/O error' when it cannot make the
    WAL's 32 KiB index, which every reader needs, so a stopped daemon's store could not even be read."""
    try:
        free = shutil.disk_usage(Path(path).resolve().parent).free if path is not None else None
    except OSError:
        return ""
    return "" if free is None or free >= FULL_DISK_BYTES else f" (the disk is full: {free // 1000} kB free; free some space)"


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: SightingStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise unusable(self.path, exc) from exc

    return guarded


def _guard_public_methods(cls: type) -> type:
    """Every public method turns SQLite's errors into :func:`unusable`: damage can sit in any
    page, so it shows only when a read reaches it, long after the file opened fine."""
    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value) and name != "close":
            setattr(cls, name, _guarded(value))
    return cls


@_guard_public_methods
class SightingStore:
    """Daily keys and sightings of one device.  Use :meth:`open` (``create=False`` for an
    existing store); a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path
        self._db: sqlite_utils.Database | None = None
        self.purged_on_open: dict[str, Any] | None = None  # what ``open`` purged (``purge``'s result)

    @property
    def db(self) -> sqlite_utils.Database:
        """The store as a ``sqlite_utils.Database`` on the same connection (for the migrations).

        Made on first use: a check or a status, on a store already at the current schema, never
        imports sqlite-utils (whose import and plugin discovery cost more than the rest of an open).
        Plugins are not run: nothing from outside changes how this private database is read."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self._conn, execute_plugins=False)
        return self._db

    # --- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        create: bool = True,
        purge_now: float | None = None,
        any_thread: bool = False,
    ) -> SightingStore:
        """Open (or create) the store at ``path``, migrate it and purge expired data.

        ``create=False`` raises StoreError when the file is missing (``status`` must not
        create databases).  ``purge_now`` is the time used for the purge on open: give "now"
        wherever the store is a device's (the CLI gives its clock to every open, so a store whose
        daemon stopped weeks ago shows nothing past the retention and keeps nothing).  Default: the
        newest record, never past the wall clock, so a store written on a virtual clock (the
        simulator, tests, the 2020 test vectors) is not emptied by being opened; the daemon purges
        on its own clock.  ``":memory:"`` works for throwaway stores.
        ``any_thread``: the store may be used from another thread than the one that opened it
        (one thread at a time; a check opens and reads it in a thread while its key file is read).
        """
        if path is not None and str(path) == ":memory:":
            conn = sqlite3.connect(":memory:")
            store = cls(conn, None)
            store._migrate()
            return store
        p = Path(path) if path is not None else default_db_path()
        if not p.exists():
            if not create:
                raise NotAStoreError(f"no sighting database at {p} ({_missing_store_hint(p)})")
            make_private_dirs(p.parent)
            _create_private_file(p)
        elif p.is_dir():
            raise NotAStoreError(f"{p} is a directory, not a sighting database")
        elif not p.is_file():  # a FIFO, a device: SQLite's 'disk I/O error' says nothing useful
            raise NotAStoreError(f"{p} is not a regular file, so not a sighting database")
        try:
            conn = sqlite3.connect(p, timeout=10.0, check_same_thread=not any_thread)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{p} is not a usable sighting database: {exc}") from None
        store = cls(conn, p)
        try:
            # Look before writing anything: WAL mode and migrations change the file for good.
            store._check_schema(create)
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                log.warning("sighting database %s is readable by others (mode %o); chmod 600 it", p, mode)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            store._migrate()
            if purge_now is None:
                # the newest record, so that a store made on a virtual clock survives opening; but never
                # past the wall clock: rows from a clock that ran ahead for a while must not erase the rest
                newest = store.newest_time()
                purge_now = None if newest is None else min(newest, time.time())
            if purge_now is not None:
                try:
                    store.purged_on_open = store.purge(purge_now)
                except StoreWriteError as exc:  # a full disk: reading still works, and the daemon purges later
                    log.warning("retention purge on open postponed: %s", exc)
        except sqlite3.DatabaseError as exc:
            conn.close()
            # SQLITE_NOTADB: the user pointed at some other file; anything else (locked, I/O) is trouble.
            raise unusable(p, exc) from None
        except BaseException:
            conn.close()
            raise
        return store

    def _check_schema(self, create: bool) -> None:
        """Refuse, without writing, a file that is not a bluezone store at its stated version.

        A foreign SQLite file must come out of a refused open byte-for-byte unchanged, and
        ``create=False`` (``status``, ``check``) must not turn an empty file into a store.
        """
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the sighting database has schema version {version}, newer than this bluezone knows "
                f"({SCHEMA_VERSION}): upgrade bluezone"
            )
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0:
            # A fresh database, or a foreign one: refuse to adopt a file full of other tables.
            foreign = names - {"daily_keys", "sightings"}
            if foreign:
                raise NotAStoreError(f"{self.path} is not a bluezone database (it has tables {sorted(foreign)[:3]})")
            if not names and not create:
                raise NotAStoreError(f"{self.path} is not a sighting database (it holds no tables)")
        expected = _required_tables(max(version, 1))
        for table in sorted(names & set(expected) if version == 0 else expected):
            have = {row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")}
            missing = expected[table] - have
            if not have or missing:
                what = f"no {table} table" if not have else f"{table} lacks {sorted(missing)}"
                raise NotAStoreError(f"{self.path} is not a bluezone database at schema version {version} ({what})")

    def _migrate(self) -> None:
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for target in range(version, SCHEMA_VERSION):
            # atomic() opens an explicit BEGIN: sqlite3's implicit transactions leave DDL out,
            # so a migration failing halfway would otherwise keep the tables it had made.
            with self.db.atomic():
                MIGRATIONS[target](self.db)
                conn.execute(f"PRAGMA user_version = {target + 1}")
            log.debug("sighting store migrated to schema version %d", target + 1)

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SightingStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- sightings ------------------------------------------------------------------------------

    def add_sightings(self, rows: np.ndarray, addresses: Sequence[str | None] | None = None) -> int:
        """Store a SIGHTING_DTYPE batch (and optional sender addresses) in one transaction."""
        rows, addr, tx = _batch(rows, SIGHTING_DTYPE, addresses, "sightings must have SIGHTING_DTYPE")
        n = len(rows)
        if n == 0:
            return 0
        data = zip(
            rows["time"].tolist(),
            rows["rpi"].tolist(),
            rows["aem"].tolist(),
            rows["rssi"].tolist(),
            tx,
            addr,
        )
        conn = self._conn
        with conn:
            conn.executemany(
                "INSERT INTO sightings (time, rpi, aem, rssi, tx_power, address) VALUES (?, ?, ?, ?, ?, ?)", data
            )
        return n

    def sightings(self, since: float | None = None, until: float | None = None) -> np.ndarray:
        """Sightings with ``since <= time < until`` (either bound optional), ordered by time."""
        where, params = self._time_filter(since, until)
        select = "SELECT time, rpi, aem, rssi, COALESCE(tx_power, ?) FROM sightings WHERE length(rpi) = 16 AND length(aem) = 4"
        try:
            return self._load(f"{select}{where} ORDER BY time", params)
        except (TypeError, ValueError, OverflowError):
            # A row the daemon never writes (hand-edited, damaged): read again without such rows.
            # Checked only now, as the checks cost about 6 % of every load.
            log.warning("%s holds sightings bluezone cannot read; they are skipped", self.path)
        try:
            return self._load(f"{select} AND {READABLE_ROW}{where} ORDER BY time", params)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"the sightings table holds a row bluezone cannot read: {exc}") from None

    def _load(self, query: str, params: list[float]) -> np.ndarray:
        # numpy fills the structured array straight from the cursor's tuples: no list, no zip.
        return np.fromiter(self._conn.execute(query, [NO_TX_POWER, *params]), SIGHTING_DTYPE)

    def heard_rpis(
        self, since: float | None = None, until: float | None = None, repeated: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        """(every distinct RPI, those heard at least ``repeated`` times) of the sightings with
        ``since <= time < until``, each as uint8 (n, 16), in byte order.

        Read from the index by RPI alone, without touching the rows (a phone advertises an RPI for
        10-20 minutes, so a store holds about a hundredth as many RPIs as sightings), and handed
        over as one blob per query instead of a Python object per RPI.  They may name an RPI
        whose rows are all unusable: ``sightings_with_rpis`` leaves those out.

        Two ways to read the same answer, chosen by the store's shape (``_rpis_heard_often``):
        where each RPI is heard many times, SQLite groups the index entries and hands over one per
        RPI; where most are heard once or twice (every sighting its own RPI is the worst case),
        grouping in SQLite costs 2-3 times what it saves, so every entry is handed over in index
        order and grouped by numpy."""
        return self._read_heard_rpis(since, until, repeated, grouped=self._rpis_heard_often())

    def _rpis_heard_often(self) -> bool:
        """Whether RPIs are heard ``_GROUP_FROM`` times or more on average, judged on the first
        ``_SHAPE_SAMPLE`` entries of the index by RPI (random RPIs: a fair sample of the store)."""
        n, distinct = self._conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT rpi) FROM (SELECT rpi FROM sightings INDEXED BY sightings_by_rpi"
            f" WHERE {RPI_INDEXED} LIMIT {_SHAPE_SAMPLE})"
        ).fetchone()
        return bool(n >= _GROUP_FROM * distinct)

    def _read_heard_rpis(
        self, since: float | None, until: float | None, repeated: int, *, grouped: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """``heard_rpis``, grouped by SQLite (``grouped``) or by numpy: the same arrays."""
        where, params = self._time_filter(since, until)
        conn = self._conn
        entries = f"FROM sightings INDEXED BY sightings_by_rpi WHERE {RPI_INDEXED}{where}"
        # group_concat() joins the blobs' bytes as they are in a UTF-8 database; its result must stay
        # well under SQLite's 1 GB value limit, so a huge store is read in ranges of the first byte.
        # How many rows there may be: the span of their ids, two seeks (a COUNT(*) would step
        # through every entry of the time index, ~0.1 s for a million).
        n = conn.execute("SELECT (SELECT MAX(rowid) FROM sightings) - (SELECT MIN(rowid) FROM sightings) + 1").fetchone()[0] or 0
        utf8 = conn.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"
        value = "rpi" if utf8 else "hex(rpi)"
        bounds = np.linspace(0, 256, int(min(256, 1 + n * 16 // _HEARD_BLOB_BYTES)) + 1).astype(int).tolist()
        every: list[np.ndarray] = []
        again: list[np.ndarray] = []
        previous = conn.text_factory
        conn.text_factory = bytes
        try:
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                part = f" AND rpi >= x'{lo:02x}'" if lo > 0 else ""
                part += f" AND rpi < x'{hi:02x}'" if hi < 256 else ""
                if grouped:
                    joined = conn.execute(
                        f"SELECT group_concat({value}, ''), group_concat(CASE WHEN n >= ? THEN {value} END, '')"
                        f" FROM (SELECT rpi, COUNT(*) AS n {entries}{part} GROUP BY rpi)",
                        [repeated, *params],
                    ).fetchone()
                    for out, blob in zip((every, again), joined):
                        out.append(_rpi_array(_unhex(blob, utf8), self.path))
                else:
                    blob = conn.execute(f"SELECT group_concat({value}, '') {entries}{part}", params).fetchone()[0]
                    distinct, counts = _distinct_sorted(_rpi_array(_unhex(blob, utf8), self.path))
                    every.append(distinct)
                    again.append(distinct[counts >= repeated])
        finally:
            conn.text_factory = previous
        return _joined(every), _joined(again)

    def heard_intervals(self, since: float | None = None, until: float | None = None) -> np.ndarray:
        """10-minute intervals (``floor(time) // 600``, sorted) covering every sighting with
        ``since <= time < until``: of each UTC day heard, those from its first to its last
        sighting (a few index seeks per day, no row read; a superset of the intervals heard)."""
        conn = self._conn
        lo_bound = -math.inf if since is None else float(since)
        hi_bound = 1e300 if until is None else min(float(until), 1e300)  # text and blobs sort after numbers
        first_after = "SELECT MIN(time) FROM sightings WHERE time >= ? AND time < ?"
        last_before = "SELECT MAX(time) FROM sightings WHERE time >= ? AND time < ?"
        out = []
        first = conn.execute(first_after, [lo_bound, hi_bound]).fetchone()[0]
        while first is not None:
            end = min(float((math.floor(first) // DAY_SECONDS + 1) * DAY_SECONDS), hi_bound)
            last = conn.execute(last_before, [first, end]).fetchone()[0]
            out.append(np.arange(math.floor(first) // INTERVAL_SECONDS, math.floor(last) // INTERVAL_SECONDS + 1))
            first = conn.execute(first_after, [end, hi_bound]).fetchone()[0]
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)

    def count_usable(self, since: float | None = None, until: float | None = None) -> int:
        """How many sightings with ``since <= time < until`` a check can use (what
        ``usable_sightings`` returns), counted from the indexes alone."""
        bounds = self._bounds(since, until)
        conn = self._conn
        timed = conn.execute("SELECT COUNT(*) FROM sightings WHERE time >= ? AND time < ?", bounds).fetchone()[0]
        unusable = conn.execute(
            f"SELECT COUNT(*) FROM sightings INDEXED BY sightings_unusable WHERE {UNUSABLE} AND time >= ? AND time < ?",
            bounds,
        ).fetchone()[0]
        return int(timed - unusable)

    @staticmethod
    def _bounds(since: float | None, until: float | None) -> list[float]:
        """``since <= time < until`` as two numbers: a numeric upper bound also leaves out a time
        that is text or a blob (SQLite sorts those after every number).  One range, not a second
        ``time < 1e300``: SQLite would bound its index search by either."""
        return [-math.inf if since is None else float(since), 1e300 if until is None else min(float(until), 1e300)]

    def sightings_with_rpis(
        self, rpis: np.ndarray, since: float | None = None, until: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, rowids): the usable sightings of ``rpis`` (uint8 (n, 16) or V16) with
        ``since <= time < until``, ordered by time as ``sightings`` orders them, and each row's id."""
        bounds = self._bounds(since, until)
        # distinct, as _distinct_sorted finds them (np.unique's first plain call imports numpy.ma, ~0.01-0.03 s)
        wanted = _distinct_sorted(np.ascontiguousarray(rpis).view(np.uint8).reshape(-1, 16))[0]
        parts = [self._load_with_ids(
            f"WHERE {USABLE_FIELDS} AND {NUMERIC_TIME} AND time >= ? AND time < ? AND rpi IN ({', '.join('?' * len(batch))})",
            [*bounds, *(bytes(r) for r in batch)],
            index="sightings_by_rpi",
        ) for batch in np.array_split(wanted, max(1, -(-len(wanted) // _IN_BATCH))) if len(batch)]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, SIGHTING_DTYPE)
        ids = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        order = np.lexsort((ids, rows["time"]))
        return rows[order], ids[order]

    def usable_sightings(self, since: float | None = None, until: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, rowids): the usable sightings with ``since <= time < until``, ordered by time (the
        rows ``sightings`` returns, and each one's id, which ``sightings_with_rpis`` also gives)."""
        return self._load_with_ids(
            f"WHERE {USABLE_FIELDS} AND time >= ? AND time < ? ORDER BY time, rowid", self._bounds(since, until)
        )

    def _load_with_ids(self, where: str, params: list[Any], index: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        indexed = f" INDEXED BY {index}" if index else ""
        rows = self._conn.execute(
            f"SELECT rowid, time, rpi, aem, rssi, COALESCE(tx_power, ?) FROM sightings{indexed} {where}",
            [NO_TX_POWER, *params],
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        return np.fromiter((r[1:] for r in rows), SIGHTING_DTYPE, len(rows)), ids

    def count_sightings(self, since: float | None = None, until: float | None = None, at_most: int | None = None) -> int:
        """Sightings with ``since <= time < until``, counted no further than ``at_most`` (a check asks
        whether a day holds more than so many: counting a whole day of a busy store took ~2.5 ms)."""
        where, params = self._time_filter(since, until)
        if at_most is None:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM sightings WHERE 1{where}", params).fetchone()[0])
        query = f"SELECT COUNT(*) FROM (SELECT 1 FROM sightings WHERE 1{where} LIMIT ?)"
        return int(self._conn.execute(query, [*params, max(int(at_most), 0)]).fetchone()[0])

    @staticmethod
    def _time_filter(since: float | None, until: float | None) -> tuple[str, list[float]]:
        where, params = "", []
        if since is not None:
            where += " AND time >= ?"
            params.append(float(since))
        if until is not None:
            where += " AND time < ?"
            params.append(float(until))
        return where, params

    def damage(self, most: int = 5) -> list[str]:
        """What SQLite's ``PRAGMA quick_check`` finds wrong in every page of the file (at most ``most``
        findings; none: sound).  Opening reads only the pages it needs (the purge follows the time
        index), so damage elsewhere shows only when a read reaches it; ``bluezone doctor`` looks."""
        rows = [str(r[0]) for r in self._conn.execute(f"PRAGMA quick_check({int(most)})")]
        return [] if rows == ["ok"] else rows

    def newest_time(self) -> float | None:
        """Time of the newest sighting or daily key (None: an empty store)."""
        row = self._conn.execute(
            f"SELECT MAX(t) FROM (SELECT MAX(time) AS t FROM sightings WHERE {NUMERIC_TIME}"
            f" UNION ALL SELECT MAX(time) FROM bluezone3_sightings WHERE {NUMERIC_TIME}"
            " UNION ALL SELECT MAX(created_at) FROM daily_keys WHERE created_at < 1e300)"
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # --- Bluezone v3 ------------------------------------------------------------------------------

    def add_bluezone3_sightings(self, rows: np.ndarray, addresses: Sequence[str | None] | None = None) -> int:
        """Store a BLUEZONE3_SIGHTING_DTYPE batch (and optional sender addresses) in one transaction."""
        rows, addr, tx = _batch(
            rows, BLUEZONE3_SIGHTING_DTYPE, addresses, "Bluezone v3 sightings must have BLUEZONE3_SIGHTING_DTYPE"
        )
        n = len(rows)
        if n == 0:
            return 0
        data = zip(rows["time"].tolist(), rows["bzid"].tolist(), rows["rssi"].tolist(), tx, addr)
        with self._conn:
            self._conn.executemany(
                "INSERT INTO bluezone3_sightings (time, bzid, rssi, tx_power, address) VALUES (?, ?, ?, ?, ?)", data
            )
        return n

    def bluezone3_sightings(self, since: float | None = None, until: float | None = None) -> np.ndarray:
        """Bluezone v3 sightings with ``since <= time < until``, ordered by time (unreadable rows skipped)."""
        where, params = self._time_filter(since, until)
        query = (
            "SELECT time, bzid, rssi, COALESCE(tx_power, ?) FROM bluezone3_sightings"
            f" WHERE length(bzid) = 12 AND {READABLE_ROW}{where} ORDER BY time"
        )
        try:
            return np.fromiter(self._conn.execute(query, [NO_TX_POWER, *params]), BLUEZONE3_SIGHTING_DTYPE)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"the bluezone3_sightings table holds a row bluezone cannot read: {exc}") from None

    def bluezone3_key(self) -> tuple[int, bytes] | None:
        """Where this device's Bluezone v3 key chain starts within the retention: (UTC day number, its
        daily key), if it ever sent v3 IDs.  Later days' keys are this one hashed forward."""
        row = self._conn.execute("SELECT day, key FROM bluezone3_key ORDER BY day DESC LIMIT 1").fetchone()
        if row is None or not isinstance(row[1], bytes) or len(row[1]) != 32:
            return None
        return int(row[0]), bytes(row[1])

    def save_bluezone3_key(self, day: int, key: bytes, created_at: float) -> None:
        """Start the chain at ``key``, the daily key of UTC day ``day`` (replacing any earlier chain)."""
        with self._conn:
            self._conn.execute("DELETE FROM bluezone3_key")
            self._conn.execute(
                "INSERT INTO bluezone3_key (day, key, created_at, used_at) VALUES (?, ?, ?, ?)",
                (int(day), bytes(key), created_at, created_at),
            )

    def mark_bluezone3_key_used(self, now: float) -> None:
        """Note that the daemon sends from the chain (at least daily): an unused chain is purged."""
        with self._conn:
            self._conn.execute("UPDATE bluezone3_key SET used_at = ?", (float(now),))

    # --- daily keys -------------------------------------------------------------------------------

    def save_daily_key(self, key: DailyKey, created_at: float | None = None) -> None:
        """Store (or update the period of) one of this device's daily keys."""
        when = float(created_at) if created_at is not None else float(key.rolling_start * INTERVAL_SECONDS)
        conn = self._conn
        with conn:
            conn.execute(
                "INSERT INTO daily_keys (key, rolling_start, rolling_period, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET rolling_period = excluded.rolling_period",
                (key.key, key.rolling_start, key.rolling_period, when),
            )

    def daily_keys(self, since_interval: int | None = None) -> list[DailyKey]:
        """This device's daily keys, oldest first; only those valid at or after ``since_interval``."""
        sql = "SELECT key, rolling_start, rolling_period FROM daily_keys"
        params: list[int] = []
        if since_interval is not None:
            sql += " WHERE rolling_start + rolling_period > ?"
            params.append(int(since_interval))
        rows = self._conn.execute(sql + " ORDER BY rolling_start, rowid", params).fetchall()
        try:
            return [DailyKey(bytes(k), int(s), int(p)) for k, s, p in rows]
        except Exception as exc:  # noqa: BLE001 - a hand-edited table
            raise StoreError(f"the daily_keys table holds an invalid key: {exc}") from None

    def key_for_day(self, rolling_start: int) -> DailyKey | None:
        """The newest stored key starting at ``rolling_start`` (a UTC day), if any."""
        row = self._conn.execute(
            "SELECT key, rolling_start, rolling_period FROM daily_keys WHERE rolling_start = ?"
            " ORDER BY rowid DESC LIMIT 1",
            (int(rolling_start),),
        ).fetchone()
        return None if row is None else DailyKey(bytes(row[0]), int(row[1]), int(row[2]))

    def key_covering(self, interval: int) -> DailyKey | None:
        """The newest stored key valid at ``interval`` (what the daemon should be advertising)."""
        row = self._conn.execute(
            "SELECT key, rolling_start, rolling_period FROM daily_keys"
            " WHERE rolling_start <= ? AND ? < rolling_start + rolling_period ORDER BY rowid DESC LIMIT 1",
            (int(interval), int(interval)),
        ).fetchone()
        return None if row is None else DailyKey(bytes(row[0]), int(row[1]), int(row[2]))

    def count_daily_keys(self) -> int:
        """How many daily keys are stored (any age not yet purged)."""
        return int(self._conn.execute("SELECT COUNT(*) FROM daily_keys").fetchone()[0])

    # --- what the key-server client remembers ---------------------------------------------------
    # Small tables (schema 7, ``_KEYSERVER_TABLES``); ``bluezone.client.ServerState`` is the typed view of them.

    def keyserver_pin(self, server: str) -> tuple[str, str | None, str | None] | None:
        """(public key, key id, key version) pinned for ``server``, if any."""
        row = self._conn.execute(
            "SELECT public_key, key_id, key_version FROM keyserver_pins WHERE server = ?", (server,)
        ).fetchone()
        return None if row is None else (str(row[0]), row[1], row[2])

    def save_keyserver_pin(
        self, server: str, public_key: str, key_id: str | None, key_version: str | None, now: float,
        *, replace: bool = False,
    ) -> None:
        """Pin ``server``'s export key; a second pin for the same server is an IntegrityError unless
        ``replace`` (the owner accepted the server's new key: ``check --repin``)."""
        with self._conn as conn:
            conn.execute(
                f"INSERT {'OR REPLACE ' if replace else ''}INTO keyserver_pins (server, public_key, key_id, key_version,"
                " pinned_at) VALUES (?, ?, ?, ?, ?)",
                (server, public_key, key_id, key_version, now),
            )

    def keyserver_batches(self, server: str) -> set[str]:
        """Names of ``server``'s batches already verified and matched."""
        rows = self._conn.execute(
            "SELECT name FROM keyserver_batches WHERE server = ?", (server,)
        ).fetchall()
        return {r[0] for r in rows}

    def save_keyserver_batches(self, server: str, batches: dict[str, int], now: float) -> None:
        """Remember batches (name -> keys in it) as processed."""
        with self._conn as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO keyserver_batches (server, name, keys, processed_at) VALUES (?, ?, ?, ?)",
                [(server, name, n, now) for name, n in batches.items()],
            )

    def rejected_batches(self, server: str, public_key: str, now: float) -> dict[str, str]:
        """Name -> why, of ``server``'s files a check rejected (verifying with ``public_key``) within the
        retention at ``now``."""
        rows = self._conn.execute(
            "SELECT name, reason FROM keyserver_rejected WHERE server = ? AND public_key = ? AND rejected_at >= ?",
            (server, public_key, now - RETENTION_DAYS * DAY_SECONDS),
        ).fetchall()
        return {str(name): str(reason) for name, reason in rows}

    def save_rejected_batches(self, server: str, public_key: str, rejected: dict[str, str], now: float) -> None:
        """Remember files (name -> why) rejected when verified with ``public_key``; forget those past retention."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_rejected WHERE rejected_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,))
            conn.executemany(
                "INSERT OR REPLACE INTO keyserver_rejected (server, public_key, name, reason, rejected_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(server, public_key, name, reason, now) for name, reason in rejected.items()],
            )

    def revision_token(self, server: str, now: float | None = None) -> str | None:
        """The token of the last upload to ``server``; None after 14 days (``now``), when every key it
        covered has left the server, and then it is deleted."""
        conn = self._conn
        if now is not None:
            with conn:
                conn.execute(
                    "DELETE FROM keyserver_revision_tokens WHERE saved_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,)
                )
        row = conn.execute("SELECT token FROM keyserver_revision_tokens WHERE server = ?", (server,)).fetchone()
        return str(row[0]) if row else None

    def save_warning_levels(self, rows: Sequence[tuple[bytes, str, str]], now: float) -> None:
        """Remember the level (F1, F2) told per (diagnosis key hash, day); forget those past retention."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_warnings WHERE reported_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,))
            conn.executemany(
                "INSERT OR REPLACE INTO keyserver_warnings (key_hash, day, level, reported_at) VALUES (?, ?, ?, ?)",
                [(key_hash, day, level, now) for key_hash, day, level in rows],
            )

    def warning_level(self, key_hash: bytes, day: str) -> str | None:
        """The level told before for this diagnosis key hash and day, if any."""
        row = self._conn.execute(
            "SELECT level FROM keyserver_warnings WHERE key_hash = ? AND day = ?", (key_hash, day)
        ).fetchone()
        return None if row is None else str(row[0])

    def save_reported_exposures(
        self, server: str, rows: Sequence[tuple[bytes, str, float, float, dict[str, Any]]], now: float
    ) -> None:
        """Keep what a check against ``server`` reported ((key hash, day, start, end, exposure)),
        so a later check can repeat what is still in force; older than the retention: deleted."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_exposures WHERE end_time < ?", (now - RETENTION_DAYS * DAY_SECONDS,))
            conn.executemany(
                "INSERT OR REPLACE INTO keyserver_exposures"
                " (server, key_hash, day, start_time, end_time, exposure, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(server, h, day, start, end, json.dumps(e), now) for h, day, start, end, e in rows],
            )

    def forget_reported_exposures(self, server: str, rows: Sequence[tuple[bytes, str]]) -> None:
        """Forget the exposures reported for these (key hash, day): withdrawn, or reported anew."""
        with self._conn as conn:
            conn.executemany(
                "DELETE FROM keyserver_exposures WHERE server = ? AND key_hash = ? AND day = ?",
                [(server, h, day) for h, day in rows],
            )

    def save_withdrawn_exposures(self, server: str, rows: Sequence[tuple[bytes, str]], now: float) -> None:
        """Remember that the exposures to these (key hash, day) were withdrawn (a negative test), so a
        replayed old batch cannot bring them back; days older than the retention (``now``): deleted."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_withdrawn WHERE day < ?", (_first_day(now - RETENTION_DAYS * DAY_SECONDS),))
            conn.executemany(
                "INSERT OR IGNORE INTO keyserver_withdrawn (server, key_hash, day) VALUES (?, ?, ?)",
                [(server, h, day) for h, day in rows],
            )

    def withdrawn_exposures(self, server: str) -> set[tuple[bytes, str]]:
        """(key hash, day) of the exposures checks against ``server`` saw withdrawn."""
        rows = self._conn.execute(
            "SELECT key_hash, day FROM keyserver_withdrawn WHERE server = ?", (server,)
        ).fetchall()
        return {(bytes(h), str(day)) for h, day in rows}

    def reported_exposures(self, server: str, now: float) -> list[tuple[bytes, str, dict[str, Any]]]:
        """(key hash, day, exposure) of what checks against ``server`` reported, still within the retention."""
        rows = self._conn.execute(
            "SELECT key_hash, day, exposure FROM keyserver_exposures WHERE server = ? AND end_time >= ?"
            " ORDER BY start_time",
            (server, now - RETENTION_DAYS * DAY_SECONDS),
        ).fetchall()
        out = []
        for h, day, text in rows:
            try:
                out.append((bytes(h), str(day), json.loads(text)))
            except (TypeError, ValueError):  # a damaged row: advisory only
                log.warning("an exposure reported before cannot be read from %s; skipped", self.path)
        return out

    def save_revision_token(self, server: str, token: str, now: float) -> None:
        """Keep the token the server gave with an upload (0600, like the daily keys it stands for)."""
        with self._conn as conn:
            conn.execute(
                "INSERT OR REPLACE INTO keyserver_revision_tokens (server, token, saved_at) VALUES (?, ?, ?)",
                (server, token, now),
            )

    # --- retention and reporting --------------------------------------------------------------------

    def purge(self, now: float, retention_days: int = RETENTION_DAYS) -> dict[str, Any]:
        """Delete sightings older than ``retention_days`` and keys that expired before then (and what
        a key-server check remembers of those days, the processed batch names two days later)."""
        cutoff = float(now) - retention_days * DAY_SECONDS
        cutoff_interval = interval_number(cutoff)
        conn = self._conn
        with conn:
            s = _delete_expired(conn, "sightings", "time", cutoff)
            s3 = _delete_expired(conn, "bluezone3_sightings", "time", cutoff)
            self._advance_bluezone3_key(cutoff)
            k = conn.execute(
                "DELETE FROM daily_keys WHERE rolling_start + rolling_period <= ?", (cutoff_interval,)
            ).rowcount
            c = _delete_expired(conn, "checkins", "end_time", cutoff)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'checkin_uploads'").fetchone():
                # which check-ins went to a key server: gone with them (or with a check-in deleted by hand)
                conn.execute(
                    "DELETE FROM checkin_uploads WHERE end_time < ? OR checkin_id NOT IN (SELECT id FROM checkins)",
                    (cutoff,),
                )
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'venue_reports_told'").fetchone():
                conn.execute("DELETE FROM venue_reports_told WHERE told_at < ?", (cutoff,))
                conn.execute(
                    "DELETE FROM checkin_uploads_unrecorded WHERE checkin_id NOT IN (SELECT id FROM checkins)"
                )
            # (the key-server tables are there from schema 7 on; tests also purge stores kept at an older schema)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'keyserver_exposures'").fetchone():
                conn.execute("DELETE FROM keyserver_exposures WHERE end_time < ?", (cutoff,))  # what checks reported
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'keyserver_rejected'").fetchone():
                conn.execute("DELETE FROM keyserver_rejected WHERE rejected_at < ?", (cutoff,))  # files a check refused
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'keyserver_revision_tokens'").fetchone():
                # an upload's token says this device uploaded (tested positive): gone with the keys it covered
                conn.execute("DELETE FROM keyserver_revision_tokens WHERE saved_at < ?", (cutoff,))
            # the level (F1, F2) a check told for a day, and a withdrawal, go with the day
            for table in ("keyserver_warnings", "keyserver_withdrawn"):
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
                    conn.execute(f"DELETE FROM {table} WHERE day < ?", (_first_day(cutoff),))
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'keyserver_batches'").fetchone():
                # the batch names a check has processed; kept BATCH_NAMES_MARGIN past the retention, as a
                # server lists a file until 14 days after its day, from an index rewritten at each export:
                # a name forgotten while still listed would have its batch downloaded and matched again
                _delete_expired(conn, "keyserver_batches", "processed_at", cutoff - BATCH_NAMES_MARGIN)
        if s or k or s3 or c:
            log.info(
                "purged %d sightings, %d Bluezone v3 sightings, %d daily keys and %d check-ins older than %d days",
                s, s3, k, c, retention_days,
            )
        return {
            "sightings_deleted": s,
            "bluezone3_sightings_deleted": s3,
            "daily_keys_deleted": k,
            "checkins_deleted": c,
            "cutoff": cutoff,
            "retention_days": retention_days,
        }

    def dated_ahead(self, now: float) -> int:
        """How many sightings (GAEN and Bluezone v3) and check-ins are dated more than ``AHEAD_MARGIN``
        after ``now``: written while the clock ran ahead, or ``now`` is behind (the purge keeps them)."""
        bound = float(now) + AHEAD_MARGIN
        total = 0
        for table, column in (("sightings", "time"), ("bluezone3_sightings", "time"), ("checkins", "start_time")):
            total += self._conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} > ? AND {column} < 1e300", (bound,)).fetchone()[0]
        return int(total)

    def purge_dated_ahead(self, now: float) -> int:
        """Delete what ``dated_ahead(now)`` counts, when the user says the clock is right now (``bluezone
        purge --dated-ahead``): never on a clock reading alone, which may itself be behind."""
        if now < CLOCK_FLOOR:
            raise InputError(
                f"this clock reads {dt.datetime.fromtimestamp(max(now, 0), dt.UTC):%Y-%m-%d %H:%M} UTC, before GAEN"
                " existed: the clock is wrong, not the rows (set it, e.g. wait for NTP); nothing deleted"
            )
        bound = float(now) + AHEAD_MARGIN
        with self._conn as conn:
            deleted = sum(
                conn.execute(f"DELETE FROM {table} WHERE {column} > ? AND {column} < 1e300", (bound,)).rowcount
                for table, column in (("sightings", "time"), ("bluezone3_sightings", "time"), ("checkins", "start_time"))
            )
        if deleted:
            log.info("deleted %d sightings and check-ins dated more than an hour ahead of the clock", deleted)
        return int(deleted)

    def _advance_bluezone3_key(self, cutoff: float) -> None:
        """Move the v3 chain's start to the first day within the retention (hashing its key forward):
        a key of an older day would still give away the IDs sent on days already purged."""
        row = self._conn.execute("SELECT day, key, used_at FROM bluezone3_key ORDER BY day LIMIT 1").fetchone()
        first = int(cutoff // DAY_SECONDS)
        if row is None or not isinstance(row[0], int) or row[0] >= first:
            return
        self._conn.execute("DELETE FROM bluezone3_key")
        used = isinstance(row[2], (int, float)) and row[2] >= cutoff  # an ID sent within the retention
        if used and isinstance(row[1], bytes) and len(row[1]) == 32 and first - row[0] <= 2 * RETENTION_DAYS:
            key = bluezone3_daily_key(bytes(row[1]), first - row[0])
            self._conn.execute(
                "INSERT INTO bluezone3_key (day, key, created_at, used_at) VALUES (?, ?, ?, ?)", (first, key, cutoff, row[2])
            )
        # (a chain not sent from within the retention is dropped: the daemon starts a new one)

    def save_daemon_state(self, state: dict[str, Any], now: float) -> None:
        """Record the daemon's latest report (radio backend, health counters, daemon counters)."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO daemon_state (name, value, updated_at) VALUES ('daemon', ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (json.dumps(state, default=str), float(now)),
            )

    # --- venue check-ins (rows for bluezone.venues.checkins; the rules live there) --------------

    CHECKIN_COLUMNS = "id, location_id, description, address, start_time, end_time, checked_out, source"

    def add_checkin(
        self,
        location_id: bytes,
        payload: bytes,
        description: str,
        address: str,
        start: float,
        end: float,
        checked_out: bool,
        source: str,
        now: float,
        end_open_id: int | None = None,
        end_open_at: float | None = None,
    ) -> int:
        """Insert a check-in (and end the open one, ``end_open_id``, in the same transaction)."""
        with self._conn:
            if end_open_id is not None:
                self._conn.execute(
                    "UPDATE checkins SET end_time = ?, checked_out = 1 WHERE id = ?", (end_open_at, end_open_id)
                )
            cursor = self._conn.execute(
                "INSERT INTO checkins (location_id, payload, description, address, start_time, end_time, checked_out,"
                " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (location_id, payload, description, address, start, end, int(checked_out), source, now),
            )
        return int(cursor.lastrowid or 0)

    def end_checkin(self, checkin_id: int, end: float) -> None:
        with self._conn:
            self._conn.execute("UPDATE checkins SET end_time = ?, checked_out = 1 WHERE id = ?", (end, checkin_id))

    def checkin_rows(
        self, *, since: float | None = None, checkin_id: int | None = None, open_at: float | None = None,
        overlapping: tuple[float, float] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Check-in rows (``CHECKIN_COLUMNS``), oldest first: all, ending after ``since``, one by id,
        the one open at ``open_at`` (newest), or those overlapping ``(start, end)``."""
        sql = f"SELECT {self.CHECKIN_COLUMNS} FROM checkins WHERE end_time < 1e300"
        params: list[Any] = []
        if since is not None:
            sql += " AND end_time > ?"
            params.append(float(since))
        if checkin_id is not None:
            sql += " AND id = ?"
            params.append(int(checkin_id))
        if open_at is not None:
            sql += " AND checked_out = 0 AND start_time <= ? AND end_time > ?"
            params += [float(open_at), float(open_at)]
        if overlapping is not None:
            sql += " AND start_time < ? AND end_time > ?"
            params += [float(overlapping[1]), float(overlapping[0])]
        order = " ORDER BY start_time DESC, id DESC" if open_at is not None else " ORDER BY start_time, id"
        return self._conn.execute(sql + order, params).fetchall()

    def save_checkin_uploads(self, rows: Sequence[tuple[bytes, int, float]], server: str, now: float) -> None:
        """Remember check-in reports sent to ``server``: (the sealed report's MAC, the check-in's id, the
        end of the part sent), each row purged with its check-in."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO checkin_uploads (mac, checkin_id, server, end_time, uploaded_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(bytes(mac), int(checkin_id), server, float(end), float(now)) for mac, checkin_id, end in rows],
            )

    def checkin_sent_until(self, server: str) -> dict[int, float]:
        """Check-in id -> the end of the latest part of it sent to ``server`` (an upload sends only what follows)."""
        rows = self._conn.execute(
            "SELECT checkin_id, MAX(end_time) FROM checkin_uploads WHERE server = ? GROUP BY checkin_id", (server,)
        ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    def checkin_uploads_unrecorded(self, server: str) -> dict[int, float]:
        """Check-in id -> when an upload to ``server`` that kept no record of its reports may have sent it
        (a store upgraded from schema 7: ``_v9``)."""
        rows = self._conn.execute(
            "SELECT checkin_id, uploaded_at FROM checkin_uploads_unrecorded WHERE server = ?", (server,)
        ).fetchall()
        return {int(r[0]): float(r[1]) for r in rows}

    def venue_reports_told(self, macs: Sequence[bytes]) -> set[bytes]:
        """Which of ``macs`` (venue reports) a check has told of before."""
        told: set[bytes] = set()
        for i in range(0, len(macs), 500):
            chunk = [bytes(m) for m in macs[i : i + 500]]
            rows = self._conn.execute(
                f"SELECT mac FROM venue_reports_told WHERE mac IN ({', '.join('?' * len(chunk))})", chunk
            ).fetchall()
            told.update(bytes(r[0]) for r in rows)
        return told

    def save_venue_reports_told(self, macs: Sequence[bytes], now: float) -> None:
        """Remember venue reports a check told of (purged after 14 days, as the files that carry them)."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO venue_reports_told (mac, told_at) VALUES (?, ?)", [(bytes(m), now) for m in macs]
            )

    def checkin_uploads(self) -> dict[bytes, tuple[int, float]]:
        """The MAC of every check-in report this device uploaded -> (the check-in's id, when uploaded)."""
        rows = self._conn.execute("SELECT mac, checkin_id, uploaded_at FROM checkin_uploads").fetchall()
        return {bytes(r[0]): (int(r[1]), float(r[2])) for r in rows}

    def daemon_state(self) -> dict[str, Any] | None:
        """The daemon's latest report with its ``updated_at``, or None if no daemon ran here."""
        row = self._conn.execute("SELECT value, updated_at FROM daemon_state WHERE name = 'daemon'").fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[0])
            return {**state, "updated_at": float(row[1])}
        except (TypeError, ValueError):  # advisory only: a damaged report must not hide the rest
            log.warning("the daemon's last report in %s cannot be read; ignored", self.path)
            return None

    def _disk_free(self) -> int | None:
        """Free bytes where the database lives (a full disk is why writes fail)."""
        if self.path is None:
            return None
        try:
            return shutil.disk_usage(Path(self.path).resolve().parent).free
        except OSError:
            return None

    def stats(self) -> dict[str, Any]:
        """What is stored: counts, time span, days covered, file size."""
        conn = self._conn
        n, first, last = conn.execute(f"SELECT COUNT(*), MIN(time), MAX(time) FROM sightings WHERE {NUMERIC_TIME}").fetchone()
        days = 0
        if n and last // DAY_SECONDS - first // DAY_SECONDS > 60:
            days = conn.execute(
                f"SELECT COUNT(DISTINCT CAST(time / {DAY_SECONDS} AS INTEGER)) FROM sightings WHERE {NUMERIC_TIME}"
            ).fetchone()[0]
        elif n:
            # One indexed probe per UTC day in the span (at most ~15): cheap even with millions of rows.
            for day in range(int(first // DAY_SECONDS), int(last // DAY_SECONDS) + 1):
                lo = float(day * DAY_SECONDS)  # a float: a damaged time of 1e200 is no SQLite integer
                hit = conn.execute(
                    "SELECT 1 FROM sightings WHERE time >= ? AND time < ? LIMIT 1", (lo, lo + DAY_SECONDS)
                ).fetchone()
                days += hit is not None
        keys, first_key, last_key = conn.execute(
            "SELECT COUNT(*), MIN(rolling_start), MAX(rolling_start) FROM daily_keys"
        ).fetchone()
        size = 0
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                f = Path(str(self.path) + suffix)
                if f.exists():
                    size += f.stat().st_size
        return {
            "db_path": str(self.path) if self.path else ":memory:",
            "db_bytes": size,
            "schema_version": self.schema_version,
            "sightings": int(n),
            "first_sighting": first,
            "last_sighting": last,
            "days_covered": int(days),
            "daily_keys": int(keys),
            "bluezone3_sightings": int(conn.execute("SELECT COUNT(*) FROM bluezone3_sightings").fetchone()[0]),
            "first_key_rolling_start": first_key,
            "last_key_rolling_start": last_key,
            "disk_free_bytes": self._disk_free(),
            "daemon": self.daemon_state(),
        }


#: Rows dated more than this after "now" cannot have been heard yet: a clock that ran ahead wrote them
#: (or "now" is behind).  ``SightingStore.dated_ahead`` counts them; only the user deletes them.
AHEAD_MARGIN = 3600.0
#: 2020-01-01 UTC.  No GAEN key or sighting is older: a clock reading earlier is wrong (a board without a
#: real-time clock boots at 1970 until NTP answers), and every row would look dated ahead of it.
CLOCK_FLOOR = 1_577_836_800.0

#: How long past the retention a processed batch's name is kept (see ``SightingStore.purge``).
BATCH_NAMES_MARGIN = 2 * DAY_SECONDS


def _delete_expired(conn: sqlite3.Connection, table: str, column: str, cutoff: float) -> int:
    """Delete the rows of ``table`` whose time ``column`` is before ``cutoff``, or is no number
    (NULL, text, a blob: it cannot be shown to be younger, so it goes too); how many went.

    Each is a range of the column's index (SQLite sorts NULL first, then numbers, then text and
    blobs), so a purge that finds nothing to delete reads a few index pages, not the table: the
    store is opened, and so purged, by every check and status.  Written as one range per
    statement, as an ``OR`` of them would be read as a scan of the whole table."""
    deleted = 0
    for where, params in ((f"{column} IS NULL", ()), (f"{column} < ?", (cutoff,)), (f"{column} >= 1e300", ())):
        deleted += conn.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount
    return deleted


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """``parts`` as one array, without a copy of a single part (a million RPIs are 16 MB)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _unhex(blob: bytes | None, utf8: bool) -> bytes:
    """A ``group_concat`` result as bytes (None: nothing read; hex text in a UTF-16 database)."""
    return b"" if blob is None else blob if utf8 else bytes.fromhex(blob.decode())


def _distinct_sorted(rpis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct RPIs in byte order, how often each occurs) of uint8 (n, 16) ``rpis``, read in the
    index's order, so equal RPIs are adjacent (sorted here first if they ever were not)."""
    words = rpis.view(">u8")  # two big-endian words per RPI compare as the bytes do
    if len(words) > 1:
        ahead = (words[1:, 0] > words[:-1, 0]) | ((words[1:, 0] == words[:-1, 0]) & (words[1:, 1] >= words[:-1, 1]))
        if not ahead.all():  # SQLite hands an index over in order; without that promise, sort
            order = np.lexsort((words[:, 1], words[:, 0]))
            rpis, words = rpis[order], words[order]
    new = np.ones(len(words), bool)
    new[1:] = (words[1:, 0] != words[:-1, 0]) | (words[1:, 1] != words[:-1, 1])
    starts = np.flatnonzero(new)
    return rpis[starts], np.diff(starts, append=len(words))


def _rpi_array(blob: bytes, path: Path | None) -> np.ndarray:
    if len(blob) % 16:  # cannot happen with 16-byte RPIs: a damaged index; never match on a misread
        raise StoreError(
            f"{path or ':memory:'} is not a usable sighting database: the RPIs read from its index do not come in"
            " 16-byte units (it is damaged: move it away, and `bluezone run` starts a new one, or restore a copy)"
        )
    return np.frombuffer(blob, np.uint8).reshape(-1, 16)


def _batch(
    rows: np.ndarray, dtype: np.dtype, addresses: Sequence[str | None] | None, rule: str
) -> tuple[np.ndarray, Sequence[str | None], list[int | None]]:
    """A batch to insert, checked: (rows, one address per row, TX powers with "none" as NULL)."""
    rows = np.asarray(rows)
    if rows.dtype != dtype:
        raise StoreError(f"{rule}, got {rows.dtype}")
    addr: Sequence[str | None] = [None] * len(rows) if addresses is None else addresses
    if len(addr) != len(rows):
        raise StoreError(f"{len(rows)} sightings but {len(addr)} addresses")
    tx = rows["tx_power"].astype(object)
    tx[rows["tx_power"] == NO_TX_POWER] = None
    return rows, addr, tx.tolist()
