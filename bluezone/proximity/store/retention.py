"""The 14-day retention: what the purge deletes and when, and rows dated ahead of the clock."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.intervals import DAY_SECONDS, interval_number
from bluezone.errors import InputError
from bluezone.proximity.store.adapters import forget_unused_adapters
from bluezone.proximity.store.base import BUSY_SECONDS, StoreBase
from bluezone.proximity.store.bluezone3 import chain_within
from bluezone.proximity.store.daemonlock import daemon_runs_on
from bluezone.proximity.store.schema import vacuum_room

log = logging.getLogger(__package__)  # the store's one logger, as before it was a package


def _first_day(cutoff: float) -> str:
    """The UTC day (ISO date, which orders as a string) of ``cutoff``: days before it are past the retention."""
    return dt.datetime.fromtimestamp(cutoff, dt.UTC).date().isoformat()


class Retention(StoreBase):
    """``purge`` (every table's expired rows in one transaction), rows dated ahead."""

    def purge(
        self, now: float, retention_days: int = RETENTION_DAYS, *, rewrite: RewriteWhen = "now",
        stopping: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Delete sightings older than ``retention_days`` and keys that expired before then (and what
        a key-server check remembers of those days, the processed batch names two days later).

        ``rewrite``: how the day's rewrite is paid when due (``rewrite_due``): ``"now"``, here; ``"unless_daemon"``
        (a command's open), here unless a daemon runs on the store (``daemonlock``), and then neither the deletion:
        the daemon's next purge, within its ``purge_interval``, deletes the rows and pays the rewrite, and reads keep
        the retention meanwhile (``retained_since``); deleting here too was redundant, and waited for the daemon's
        rewrite (its VACUUM holds the lock: a ``status`` at 1M sightings 2.4 s, now 0.65 s) up to the busy timeout
        (a check or ``status`` paid the rewrite before that: 0.7 s CPU at 1M sightings; a device without a daemon
        must not keep copies); ``"apart"`` (the daemon's), not here: the caller runs ``rewrite_apart`` in a thread
        (``bluezone purge``: ``rewrite_purged``).

        ``stopping`` set (the daemon stops while its start's open purges, in a thread) ends the deletion within
        SQLite's next ``PROGRESS_STEPS`` steps, rolled back (the next purge's): nothing deleted, ``"stopped"`` true."""
        cutoff = float(now) - retention_days * DAY_SECONDS
        # from now on no read returns what this purge deletes, even where it cannot (a read-only file)
        self.retained_since = cutoff if self.retained_since is None else max(self.retained_since, cutoff)
        if rewrite == "unless_daemon" and self.path is not None and daemon_runs_on(self.path):
            log.info("the purge of %s is left to the daemon running on it (its next purge); reads keep the %d days",
                     self.path, retention_days)
            return {**_purged(0, 0, 0, 0, cutoff, retention_days), "left_to_daemon": True}
        conn = self._conn
        if stopping is not None:
            conn.set_progress_handler(stopping.is_set, PROGRESS_STEPS)
        try:
            s, s3, k, c, deleted = self._delete_past(cutoff)
        except sqlite3.OperationalError as exc:
            if stopping is None or getattr(exc, "sqlite_errorname", "") != "SQLITE_INTERRUPT":
                raise
            log.info("the purge of %s stopped with the daemon, rolled back: the next purge deletes it", self.path)
            return {**_purged(0, 0, 0, 0, cutoff, retention_days), "stopped": True}
        finally:
            if stopping is not None:
                conn.set_progress_handler(None, 0)
        due = self.rewrite_due(now, retention_days)
        rewritten = due is not None and rewrite != "apart" and self._rewrite(due)
        if rewritten or deleted or self._wal_owed:  # the deleted rows' old pages out of the WAL too
            self._wal_owed = not self._empty_wal()
            if self._wal_owed:
                log.info("the WAL of %s keeps the purged rows' old pages until the next purge: a reader was in it", self.path)
        if s or k or s3 or c:
            log.info(
                "purged %d sightings, %d Bluezone v3 sightings, %d daily keys and %d check-ins older than %d days",
                s, s3, k, c, retention_days,
            )
        return _purged(s, s3, k, c, cutoff, retention_days)

    def _delete_past(self, cutoff: float) -> tuple[int, int, int, int, bool]:
        """The purge's deletions, one transaction: (sightings, v3 sightings, daily keys, check-ins) deleted, and
        whether any row went (a rewrite owed, noted in the same transaction)."""
        conn = self._conn
        cutoff_interval = interval_number(cutoff)
        changes_before = conn.total_changes
        with conn:
            s = _delete_expired(conn, "sightings", "time", cutoff)
            s3 = _delete_expired(conn, "bluezone3_sightings", "time", cutoff)
            if forget_unused_adapters(conn, cutoff):
                self._adapter_ids.clear()  # (noted again at the next write)
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
            deleted = conn.total_changes != changes_before
            if deleted:
                self._owe_rewrite()
        return s, s3, k, c, deleted

    def past_retention(self) -> list[str]:
        """What this device's rows the store holds before ``retained_since`` (sightings, Bluezone v3 sightings, daily
        keys, check-ins), which the purge deletes and reads leave out: a read-only store keeps them.  One seek each."""
        cutoff = self.retained_since
        if cutoff is None:
            return []
        before = "SELECT 1 FROM {} WHERE {} < ? LIMIT 1"
        return [
            what for what, sql, bound in (
                ("sightings", before.format("sightings", "time"), cutoff),
                ("Bluezone v3 sightings", before.format("bluezone3_sightings", "time"), cutoff),
                ("daily keys", "SELECT 1 FROM daily_keys WHERE rolling_start + rolling_period <= ? LIMIT 1",
                 interval_number(cutoff)),
                ("check-ins", before.format("checkins", "end_time"), cutoff),
            )
            if self._conn.execute(sql, (bound,)).fetchone()
        ]

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
                self._owe_rewrite()  # (paid by the first purge of a later day)
        if deleted:
            self._wal_owed = not self._empty_wal()
            log.info("deleted %d sightings and check-ins dated more than an hour ahead of the clock", deleted)
        return int(deleted)

    def _owe_rewrite(self) -> None:
        """Note, in the deleting transaction (a crash cannot lose it), that the file owes a rewrite."""
        if self.path is not None and _has_table(self._conn, "daemon_state"):  # (in memory; tests keep old schemas)
            self._conn.execute(
                "INSERT OR IGNORE INTO daemon_state (name, value, updated_at) VALUES (?, '', 0)", (REWRITE_OWED,)
            )

    def rewrite_due(self, now: float, retention_days: int = RETENTION_DAYS) -> str | None:
        """The UTC day of the retention's cutoff at ``now`` when a rewrite is due then (rows deleted since the last
        one, which was another day), else None.  At most one a day; another day, not only a later one: a rewrite
        at a clock that ran a year ahead must not hold off the next for a year."""
        owed, last = self._rewrite_owed()
        day = str(int((float(now) - retention_days * DAY_SECONDS) // DAY_SECONDS))
        return day if owed and last != day else None

    def _rewrite_owed(self) -> tuple[bool, str | None]:
        """(rows were deleted since the file was last rewritten, the UTC day of the cutoff at that rewrite)."""
        if self.path is None or not _has_table(self._conn, "daemon_state"):
            return False, None
        owed, last = self._conn.execute(
            "SELECT (SELECT 1 FROM daemon_state WHERE name = ?), (SELECT value FROM daemon_state WHERE name = ?)",
            (REWRITE_OWED, REWRITTEN_DAY),
        ).fetchone()
        return owed is not None, last

    def rewrite_purged(self) -> RewriteState:
        """Rewrite the file now if rows were deleted since its last rewrite, whatever the day: ``bluezone purge``
        asks for the deletion now, not by the first purge of the next UTC day.  ``"done"`` when no copy of a deleted
        row is left (rewritten now, or nothing owed), ``"owed"`` when the rewrite or the WAL's emptying is still owed;
        ``"asked"`` when a daemon runs on the store: its rewrite is made due whatever the day, and the daemon runs it
        in its thread at its next flush (``rewrite_asked``).  Here its VACUUM held the store's lock, and
        the daemon's writes on its loop waited for it (0.7 s at 1M sightings, up to the 10 s busy timeout)."""
        owed, last = self._rewrite_owed()
        if owed and self.path is not None and daemon_runs_on(self.path):
            with self._conn as conn:
                conn.execute("INSERT OR IGNORE INTO daemon_state (name, value, updated_at) VALUES (?, '', 0)", (REWRITE_ASKED,))
            log.info("the rewrite of %s is asked of the daemon running on it (at its next flush)", self.path)
            return "asked"
        if owed:
            if not self._rewrite(last):
                return "owed"
            self._wal_owed = not self._empty_wal()
        return "owed" if self._wal_owed else "done"

    def wait_out_a_rewrite(self) -> None:
        """From now on wait up to ``REWRITE_WAIT_SECONDS`` for the store's lock (``bluezone purge`` beside a running
        daemon, whose rewrite holds it for its VACUUM's whole length): the user asked for the deletion now, and a
        VACUUM past the 10 s busy timeout (a large store, a Raspberry Pi's SD card) failed it, exit 1, "database is
        locked"."""
        self._conn.execute(f"PRAGMA busy_timeout = {round(REWRITE_WAIT_SECONDS * 1000)}")

    def rewrite_asked(self, now: float, retention_days: int = RETENTION_DAYS) -> str | None:
        """The day (as ``rewrite_due``'s) when ``bluezone purge`` asked the daemon for the rewrite now, else None."""
        if self.path is None or not _has_table(self._conn, "daemon_state"):
            return None
        asked = self._conn.execute("SELECT 1 FROM daemon_state WHERE name = ?", (REWRITE_ASKED,)).fetchone()
        return str(int((float(now) - retention_days * DAY_SECONDS) // DAY_SECONDS)) if asked else None

    def rewrite_apart(self, day: str, stopping: threading.Event) -> bool:
        """The rewrite due for ``day`` (``rewrite_due``) and the WAL's emptying, on a connection of its own: the
        daemon runs it in a thread, so that its loop keeps receiving (and holds its writes meanwhile: they would
        wait for the VACUUM's lock).  ``stopping`` set (the daemon stops) ends it within SQLite's next
        ``PROGRESS_STEPS`` steps, rolled back and still owed.  True when rewritten.

        Opened read-write, never created: a store deleted while the daemon runs (its data wiped by hand) was
        made again, an empty SQLite file every command then refused ("it holds no tables"), and a folder
        removed with it ended the daemon (attack26)."""
        assert self.path is not None
        try:
            conn = sqlite3.connect(f"{Path(self.path).absolute().as_uri()}?mode=rw", uri=True, timeout=BUSY_SECONDS)
        except sqlite3.Error as exc:
            level = logging.INFO if self._rewrite_failure_said else logging.WARNING
            self._rewrite_failure_said = True
            log.log(level, "could not rewrite %s after purging it: cannot open it again (%s); is it still there?",
                    self.path, exc)
            return False
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # (as the store's own connection)
            conn.set_progress_handler(stopping.is_set, PROGRESS_STEPS)
            rewritten = self._rewrite(day, conn)
            if rewritten:
                self._wal_owed = not self._empty_wal(conn)
            return rewritten
        finally:
            conn.close()

    def _rewrite(self, day: str | None, conn: sqlite3.Connection | None = None) -> bool:
        """Rewrite the file from its live rows (VACUUM; the purge then empties the WAL): ``secure_delete`` zeroes
        a row where it is deleted, but not the copies SQLite's page balancing left of it in the unused gap of a
        live page (``rebuildPage`` never clears it), nor, on a build without it, the free pages; a rewrite leaves
        neither.  False when SQLite cannot now (a read-only file, no room for the copy, a writer holding the
        lock past the busy timeout, a statement running, a stop): still owed.  ``day``: the cutoff's UTC day, kept
        as the last rewrite's (None: the one kept stays).  ``conn``: another connection than the store's (a
        thread's, ``rewrite_apart``)."""
        own = conn is None
        conn = self._conn if conn is None else conn
        try:
            before = int(conn.execute("PRAGMA schema_version").fetchone()[0])
            conn.execute("VACUUM")
            if own:
                self._rewritten_cookies = (before, int(conn.execute("PRAGMA schema_version").fetchone()[0]))
            with conn:
                conn.execute("DELETE FROM daemon_state WHERE name IN (?, ?)", (REWRITE_OWED, REWRITE_ASKED))
                if day is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO daemon_state (name, value, updated_at) VALUES (?, ?, 0)", (REWRITTEN_DAY, day)
                    )
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name == "SQLITE_INTERRUPT":
                log.info("the rewrite of %s stopped with the daemon; still owed, to its next purge", self.path)
            elif not name.startswith("SQLITE_READONLY"):  # (a read-only store's purge on open says it is postponed)
                room = f"; {vacuum_room()}" if name.startswith(_NO_ROOM) else ""
                # once a store: a daemon on a full disk retries at every purge, and said it hourly (attack25)
                level = logging.INFO if self._rewrite_failure_said else logging.WARNING
                self._rewrite_failure_said = True
                log.log(level, "could not rewrite %s after purging it (%s): copies of purged rows may stay in its pages"
                        " until the next purge does it%s", self.path, exc, room)
            return False
        log.info("rewrote %s (VACUUM) after purging it: no copy of a purged row stays in its pages", self.path)
        return True

    def _advance_bluezone3_key(self, cutoff: float) -> None:
        """Move the v3 chain's start to the first day within the retention (``chain_within``): a key of an older day
        would still give away the IDs sent on days already purged."""
        row = self._conn.execute("SELECT day, key, used_at FROM bluezone3_key ORDER BY day LIMIT 1").fetchone()
        if row is None or not isinstance(row[0], int) or row[0] >= int(cutoff // DAY_SECONDS):
            return
        self._conn.execute("DELETE FROM bluezone3_key")
        kept = chain_within(row[0], row[1], row[2], cutoff) if isinstance(row[1], bytes) and len(row[1]) == 32 else None
        if kept is not None:
            self._conn.execute(
                "INSERT INTO bluezone3_key (day, key, created_at, used_at) VALUES (?, ?, ?, ?)", (*kept, cutoff, row[2])
            )


#: Rows dated more than this after "now" cannot have been heard yet: a clock that ran ahead wrote them
#: (or "now" is behind).  ``SightingStore.dated_ahead`` counts them; only the user deletes them.
AHEAD_MARGIN = 3600.0
#: 2020-01-01 UTC.  No GAEN key or sighting is older: a clock reading earlier is wrong (a board without a
#: real-time clock boots at 1970 until NTP answers), and every row would look dated ahead of it.
CLOCK_FLOOR = 1_577_836_800.0

#: How long ``bluezone purge`` beside a running daemon waits for the store's lock (``wait_out_a_rewrite``): the daemon's
#: rewrite holds it for its VACUUM's whole length, 1.5-1.7 s at 1M sightings here (Zen 3, load 5), an estimated 4-8 s
#: on a Raspberry Pi 4's SD card, and longer with the store.
REWRITE_WAIT_SECONDS = 120.0

#: daemon_state's rows: a purge deleted rows since the file was last rewritten, and the UTC day (a day number) of
#: the retention's cutoff at that rewrite.  The first purge of a later day rewrites it (``SightingStore._rewrite``),
#: so a purged row's copies stay at most a day (and a purge interval) after the purge that deleted it.
REWRITE_OWED = "purge_rewrite_owed"
REWRITTEN_DAY = "purge_rewritten_day"
#: daemon_state's row by which ``bluezone purge`` asks the daemon running on the store for the rewrite now.
REWRITE_ASKED = "purge_rewrite_asked"
#: How a purge pays a rewrite that is due (``Retention.purge``).
RewriteWhen = Literal["now", "unless_daemon", "apart"]
#: What ``rewrite_purged`` left: no copy of a purged row (``"done"``), the rewrite still owed, or asked of the daemon.
RewriteState = Literal["done", "owed", "asked"]
#: SQLite's virtual-machine steps between two looks at a stop (``rewrite_apart``): each look takes the GIL from the
#: daemon's loop, and a million rows' VACUUM is some 10^8 steps; ~1 ms of work here.
PROGRESS_STEPS = 100_000
#: SQLite's errors for a rewrite that found no room (or no temporary file) for its copy of the database.
_NO_ROOM = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")

#: How long past the retention a processed batch's name is kept (see ``SightingStore.purge``).
BATCH_NAMES_MARGIN = 2 * DAY_SECONDS


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


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


def _purged(sightings: int, bluezone3: int, keys: int, checkins: int, cutoff: float, retention_days: int) -> dict[str, Any]:
    """What ``purge`` returns."""
    return {
        "sightings_deleted": sightings,
        "bluezone3_sightings_deleted": bluezone3,
        "daily_keys_deleted": keys,
        "checkins_deleted": checkins,
        "cutoff": cutoff,
        "retention_days": retention_days,
    }
