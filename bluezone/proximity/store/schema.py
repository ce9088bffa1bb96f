"""The store's tables: one migration per schema version (``PRAGMA user_version``), the columns each
version must have, and the row conditions its partial indexes and the reads using them share.

To change the schema, append a function to ``MIGRATIONS``; never edit one that has shipped (``_v7`` says why it was, once)."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import NotAStoreError, StoreError
from bluezone.proximity.store.base import StoreBase
from bluezone.proximity.store.failures import sqlite_temp_dir

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__package__)  # the store's one logger, as before it was a package


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
    some of them already keeps them and their rows; the others are made.

    A store that kept processed batches but no ``keyserver_exposures`` was checked by a version from before
    e055fb0, which remembered no exposure it reported: its batches are forgotten, so the next check matches
    them again and repeats what they hold (kept, they made an F1 told then read as all-clear: 'no new
    batches since the last check', close_contact false).  (Added after schema 7 shipped: a store migrated
    before then cannot be told apart from one whose batches held nothing for it.)"""
    tables = set(db.table_names())
    if "keyserver_batches" in tables and "keyserver_exposures" not in tables:
        db.execute("DELETE FROM keyserver_batches")
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


def _v11(db: sqlite_utils.Database) -> None:
    """A signing key given with ``--server-key`` that no file has confirmed yet (the server listed none new,
    and announces none or another): it was forgotten, so the next check without ``--server-key`` trusted
    whatever the server announced on first use.  Kept here until a file verifies with it (then it is the pin)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS keyserver_given_keys (server TEXT PRIMARY KEY, public_key TEXT NOT NULL,"
        " key_id TEXT, key_version TEXT, given_at REAL NOT NULL)"
    )


#: ``scheme://`` and a ``user:password@`` after it, as an earlier version kept it in a server's name (frozen
#: here: the rule of ``client.keyserver.base_url_of`` when schema 12 shipped, which this migration must meet).
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
#: Each table naming a server: the rest of its primary key, the column saying when a row was written,
#: and which row of two of the same server and key is kept (``<``: the earlier, ``>``: the newer).
_SERVER_ROWS: dict[str, tuple[tuple[str, ...], str, str]] = {
    # the key trusted first: a different later one came on first use after the upgrade lost the pin
    "keyserver_pins": ((), "pinned_at", "<"),
    "keyserver_given_keys": ((), "given_at", ">"),  # the user's latest --server-key
    "keyserver_revision_tokens": ((), "saved_at", ">"),  # the last upload's: what a revision must name
    "keyserver_batches": (("name",), "processed_at", "<"),
    "keyserver_exposures": (("key_hash", "day", "start_time", "end_time"), "reported_at", ">"),
    "keyserver_withdrawn": (("key_hash", "day"), "", ""),  # no time, and the same either way: one stays
    "keyserver_rejected": (("public_key", "name"), "rejected_at", ">"),
    "checkin_uploads": (("mac",), "uploaded_at", ">"),  # (its key is the MAC alone: never two)
    "checkin_uploads_unrecorded": (("checkin_id",), "uploaded_at", ">"),
}


def _v12(db: sqlite_utils.Database) -> bool:
    """Every server's name without the credentials an earlier version kept in it (``https://user:pw@host``,
    before 617bc8f): the password sat in the file and ``status`` showed it, and the state kept under it
    (pin, batches done, revision token) was lost to the version that names servers without them, so it
    pinned anew on first use and an F0 could not revise its upload.  Where the server has rows under both
    names, the rule of ``_SERVER_ROWS`` keeps one of each key; two different pins are warned of (the next
    check refuses a server signing with the other key: ``--repin``).  True when a name changed: the open
    then vacuums the file, so no deleted copy of a password stays in its free pages."""
    conn = db.conn
    renamed: dict[str, str] = {}
    for table in _SERVER_ROWS:
        for (server,) in conn.execute(f"SELECT DISTINCT server FROM {table}").fetchall():
            if isinstance(server, str) and _without_credentials(server) != server:
                renamed[server] = _without_credentials(server)
    for old, new in sorted(renamed.items()):
        _warn_of_two_pins(conn, old, new)
        for table, (key, at, keep) in _SERVER_ROWS.items():
            _rename_server(conn, table, key, at, keep, old, new)
    return bool(renamed)


def _without_credentials(server: str) -> str:
    return _CREDENTIALS.sub(r"\1", server, count=1)


def _rename_server(conn: sqlite3.Connection, table: str, key: tuple[str, ...], at: str, keep: str, old: str, new: str) -> None:
    """``table``'s rows of server ``old`` as ``new``'s; of two with the same key the one ``keep`` says stays."""
    same = " AND ".join(f"o.{column} = {table}.{column}" for column in key) or "1"
    if at:
        conn.execute(
            f"DELETE FROM {table} WHERE server = ? AND EXISTS (SELECT 1 FROM {table} o WHERE o.server = ? AND {same}"
            f" AND o.{at} {keep} {table}.{at})",
            (new, old),
        )
    conn.execute(f"UPDATE OR IGNORE {table} SET server = ? WHERE server = ?", (new, old))
    conn.execute(f"DELETE FROM {table} WHERE server = ?", (old,))  # the rows the rule did not keep


def _warn_of_two_pins(conn: sqlite3.Connection, old: str, new: str) -> None:
    """Say so when the server was pinned to two different keys under its two names: the first stays."""
    rows = conn.execute(
        "SELECT public_key FROM keyserver_pins WHERE server IN (?, ?) ORDER BY pinned_at", (old, new)
    ).fetchall()
    if len({key for (key,) in rows}) > 1:
        log.warning(
            "the key server %s was pinned to two signing keys (one kept under its URL with credentials by an"
            " earlier bluezone): kept the one pinned first; if the health authority changed its key, give the new"
            " one with check --server %s --server-key FILE --repin", new, new,
        )


#: ``rpi_days.day`` numbers UTC days from 1970-01-01 (day 0) up to this many either way; a time beyond
#: (a hand edit, a clock gone wild) counts in the day just past the limit, so that for every whole-day
#: bound B within the limit, ``time < B`` exactly when ``day < B / 86400`` (a read by days is exact).
DAY_LIMIT = 1_000_000_000


def _day_of(time: str) -> str:
    """SQL for the UTC day of ``time`` (a number below 1e300): floor(time / 86400) in integers, as the
    division in floating point may round a time just before midnight up to the next day (frozen: schema 13)."""
    day, limit = f"CAST({time} / {DAY_SECONDS} AS INTEGER)", DAY_LIMIT * DAY_SECONDS
    return (f"CASE WHEN {time} < -{limit} THEN {-DAY_LIMIT - 1} WHEN {time} >= {limit} THEN {DAY_LIMIT}"
            f" ELSE {day} - ({day} * {DAY_SECONDS} > {time}) END")


def _counted(row: str) -> str:
    """``row`` (NEW or OLD) is in the index by RPI (``RPI_INDEXED`` of schema 6, frozen here)."""
    return f"length({row}.rpi) = 16 AND {row}.time < 1e300"


def _heard(row: str) -> str:
    return (f"INSERT INTO rpi_days (rpi, day, sightings) VALUES ({row}.rpi, {_day_of(f'{row}.time')}, 1)"
            " ON CONFLICT (day, rpi) DO UPDATE SET sightings = sightings + 1;")


def _unheard(row: str) -> str:
    same = f"rpi = {row}.rpi AND day = {_day_of(f'{row}.time')}"
    return (f"DELETE FROM rpi_days WHERE {same} AND sightings = 1;"
            f" UPDATE rpi_days SET sightings = sightings - 1 WHERE {same};")


#: The triggers of ``_v13`` that keep ``rpi_days`` equal to the index by RPI counted by day: a read uses the
#: table only while every one is there.
RPI_DAYS_KEPT_BY = ("rpi_days_insert", "rpi_days_delete", "rpi_days_update_old", "rpi_days_update_new",
                    "rpi_days_rowid_insert", "rpi_days_rowid_update")
_ROWID_TAKEN = ("SELECT RAISE(ABORT, 'a sighting with this rowid exists: delete it first (its RPI is counted by day"
                " in rpi_days, which a replaced row would leave stale)');")


def _v13(db: sqlite_utils.Database) -> None:
    """How many times each RPI was heard per UTC day (the entries of the index by RPI, counted by day):
    a check reads its distinct RPIs from these few rows (one per RPI and day, about a hundredth of the
    sightings) instead of grouping every index entry (issue 17).  Triggers keep it exact whatever writes
    the sightings: an insert, delete or update of a row the index holds.  Keyed by day first: the daemon's
    inserts fall in today's rows and a purge deletes the oldest day's (keyed by RPI first, a worst-case
    store of one sighting per RPI took 1.3x as long to write and 1.6x to purge).  A row that would be
    replaced by rowid (``INSERT OR REPLACE``, ``UPDATE OR REPLACE``) is refused instead: SQLite deletes it
    without firing the delete trigger (unless ``recursive_triggers`` is on).  (An explicit rowid of -1 cannot
    be told from none before the insert: a row at rowid -1, replaced that way, stays counted.)"""
    conn = db.conn
    conn.execute(  # (counted anew, triggers made anew, where a store set back to an older version has them)
        "CREATE TABLE IF NOT EXISTS rpi_days (rpi BLOB NOT NULL, day INTEGER NOT NULL, sightings INTEGER NOT NULL,"
        " PRIMARY KEY (day, rpi)) WITHOUT ROWID"
    )
    conn.execute("DELETE FROM rpi_days")
    for name in RPI_DAYS_KEPT_BY:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    # each entry counted as the trigger counts it: a GROUP BY would sort every entry first, in a temporary
    # file past the page cache (and there may be no room for one: tests/proximity/test_store_sqlite_hygiene.py)
    conn.execute(
        f"INSERT INTO rpi_days (rpi, day, sightings) SELECT rpi, {_day_of('time')}, 1 FROM sightings INDEXED BY"
        " sightings_by_rpi WHERE length(rpi) = 16 AND time < 1e300 ON CONFLICT (day, rpi) DO UPDATE SET sightings = sightings + 1"
    )
    conn.execute(f"CREATE TRIGGER rpi_days_insert AFTER INSERT ON sightings WHEN {_counted('NEW')} BEGIN {_heard('NEW')} END")
    conn.execute(f"CREATE TRIGGER rpi_days_delete AFTER DELETE ON sightings WHEN {_counted('OLD')} BEGIN {_unheard('OLD')} END")
    conn.execute(
        f"CREATE TRIGGER rpi_days_update_old AFTER UPDATE OF rpi, time ON sightings WHEN {_counted('OLD')}"
        f" BEGIN {_unheard('OLD')} END"
    )
    conn.execute(
        f"CREATE TRIGGER rpi_days_update_new AFTER UPDATE OF rpi, time ON sightings WHEN {_counted('NEW')}"
        f" BEGIN {_heard('NEW')} END"
    )
    # NEW.rowid is -1 before an insert that lets SQLite choose it (the daemon's): no lookup then
    conn.execute(
        "CREATE TRIGGER rpi_days_rowid_insert BEFORE INSERT ON sightings WHEN NEW.rowid <> -1 AND EXISTS"
        f" (SELECT 1 FROM sightings WHERE rowid = NEW.rowid) BEGIN {_ROWID_TAKEN} END"
    )
    conn.execute(
        "CREATE TRIGGER rpi_days_rowid_update BEFORE UPDATE ON sightings WHEN NEW.rowid <> OLD.rowid AND EXISTS"
        f" (SELECT 1 FROM sightings WHERE rowid = NEW.rowid) BEGIN {_ROWID_TAKEN} END"
    )


def _v14(db: sqlite_utils.Database) -> None:
    """Which adapter heard each sighting: a calibration's RSSI correction is that adapter's, and was applied to every
    sighting, those of a dongle swapped in or another adapter docked too (docs/calibration.md).  ``adapters`` names each
    adapter the daemon heard with by its Bluetooth address (``last_used``: the purge forgets one unused for the
    retention), and each sighting keeps its ``adapter``: an id there, 0 for an adapter that could not say its address,
    NULL where none was recorded (a row stored before this schema, or by code that names no adapter).  A column, not the
    daemon's runs mapped by time: exact whatever the clock did, at a cost the measurement could not tell from noise
    (docs/benchmarks.md, "Thirty-first session: which adapter heard a sighting"); an id of 0 or 1 takes no byte beside
    the record's header, others one."""
    conn = db.conn
    conn.execute(
        "CREATE TABLE IF NOT EXISTS adapters (id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE,"
        " last_used REAL NOT NULL)"
    )
    for table in ("sightings", "bluezone3_sightings"):  # (kept, where a store set back to an older version has it)
        if "adapter" not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN adapter INTEGER")


#: daemon_state's row saying a vacuum is owed: written in the transaction of a migration that deleted a
#: secret, deleted once the vacuum is done, so a crash between them vacuums at the next open instead of never.
def vacuum_room() -> str:
    """Where a vacuum needs room: VACUUM copies the database into a temporary one (in SQLite's temporary directory,
    not beside the file, once it is larger than the page cache) and then writes it back through the WAL."""
    return (f"with room for a copy of the database in SQLite's temporary directory ({sqlite_temp_dir()}: SQLITE_TMPDIR,"
            " else TMPDIR, else /var/tmp or /tmp) and as much again beside the database (its WAL); SQLITE_TMPDIR=DIR"
            " names a directory with room")


VACUUM_OWED = "vacuum_owed"
_OWE_VACUUM = f"INSERT OR REPLACE INTO daemon_state (name, value, updated_at) VALUES ('{VACUUM_OWED}', ?, 0)"

#: MIGRATIONS[i] upgrades a database at schema version i to i + 1 (a True result: vacuum after it).  Append only.
MIGRATIONS: list[Callable[[sqlite_utils.Database], object]] = [
    _v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11, _v12, _v13, _v14,
]
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
    11: {"keyserver_given_keys": frozenset({"server", "public_key", "key_id", "key_version", "given_at"})},
    13: {"rpi_days": frozenset({"rpi", "day", "sightings"})},
    14: {
        "adapters": frozenset({"id", "address", "last_used"}),
        "sightings": frozenset({"time", "rpi", "aem", "rssi", "tx_power", "address", "adapter"}),
        "bluezone3_sightings": frozenset({"time", "bzid", "rssi", "tx_power", "address", "adapter"}),
    },
}


def _required_tables(version: int) -> dict[str, frozenset[str]]:
    """Table -> columns a store at schema ``version`` must have."""
    out: dict[str, frozenset[str]] = {}
    for v, tables in REQUIRED_COLUMNS.items():
        if v <= version:
            out.update(tables)
    return out


class Schema(StoreBase):
    """A file refused, unwritten, unless it is a store at its stated version; migrated if it is."""

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
                if MIGRATIONS[target](self.db):  # owed in the same transaction: a crash before it is paid
                    conn.execute(_OWE_VACUUM, (f"schema {target + 1}",))  # (kill -9, power cut) pays it next open
                conn.execute(f"PRAGMA user_version = {target + 1}")
            log.debug("sighting store migrated to schema version %d", target + 1)
        if conn.execute("SELECT 1 FROM daemon_state WHERE name = ?", (VACUUM_OWED,)).fetchone():
            self._vacuum()

    def _vacuum(self) -> None:
        """Rewrite the file and empty its WAL: a deleted row's bytes stay in free space (SQLite reuses,
        never clears, it) and in the WAL's older frames.  After a migration that removed something
        secret, until done: a file too big for the disk's room (or a crash midway) keeps them, with a
        warning, and the next open tries again (the migration stands)."""
        try:
            self._conn.execute("VACUUM")
            if not self._empty_wal():  # the file's old pages stay until the WAL is copied over them: still owed
                log.warning("could not finish vacuuming %s after migrating it: a reader kept its WAL from being"
                            " emptied, so deleted rows stay in the file; the next open tries again", self.path)
                return
            with self._conn:
                self._conn.execute("DELETE FROM daemon_state WHERE name = ?", (VACUUM_OWED,))
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
                self.vacuum_postponed = True  # said in one line with the purge postponed for the same reason (open)
                return
            log.warning("could not vacuum %s after migrating it (%s): deleted rows may stay readable in its free"
                        " pages until SQLite reuses them; the next open tries again, %s", self.path, exc, vacuum_room())
