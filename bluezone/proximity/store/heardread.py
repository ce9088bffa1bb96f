"""The distinct RPIs a store heard, read on ``sqlite3`` alone: the queries of ``Sightings.heard_rpis``,
and a check's early reader (``EarlyRead``), which runs them in a thread started before numpy is imported,
so that SQLite reads (the GIL let go) on the core a check's imports leave idle (issue 17).  Where RPIs are
heard many times each, both group the store's counts per RPI and day (``rpi_days``, schema 13: ~10k rows for
a million sightings, a few ms) rather than the index by RPI (~80 ms).

Both hand over raw bytes (``HeardBlobs``); the store makes the arrays (``sightings.heard_arrays``)."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import StoreReadOnlyError
from bluezone.inthread import InThread
from bluezone.proximity.store.files import on_read_only_file_system, read_only_uri
from bluezone.proximity.store.schema import DAY_LIMIT, RPI_DAYS_KEPT_BY, RPI_INDEXED, SCHEMA_VERSION

_HEARD_BLOB_BYTES = 256 << 20  # at most this much per query of ``heard_rpis``
#: ``heard_rpis`` lets SQLite group when RPIs are heard this many times each or more (in a sample of this
#: many index entries): below, numpy groups every index entry faster than SQLite groups ``rpi_days``, which
#: holds a row per RPI and day, so nearly one per entry where each RPI is heard a few times (1M sightings:
#: SQLite 110 ms = numpy 111 ms at 7 each, 124 / 110 at 6, 92 / 119 at 8; benchmarks/heard_group_bench.py).
_GROUP_FROM = 7
_SHAPE_SAMPLE = 2048
#: SQLite's steps between two looks at ``EarlyRead``'s stop flag (a few ms of reading): each look takes the
#: GIL from the imports beside the read, so every 1,000 steps made the read of a million sightings end
#: ~20-27 ms later (0.150 -> 0.177 s, 15 runs; 100,000: 0.160 s), the two-job check's workers waiting for it.
_STOP_CHECK_STEPS = 100_000


@dataclass(frozen=True)
class HeardBlobs:
    """One read of the index by RPI, per range of first byte: ``(every, repeated)`` 16-byte RPIs end to
    end.  ``grouped``: SQLite grouped them, so ``every`` names each distinct RPI once and ``repeated``
    those heard at least ``at_least`` times; else ``every`` is each index entry in index order and
    ``repeated`` is None (numpy groups and counts)."""

    grouped: bool
    at_least: int
    parts: tuple[tuple[bytes, bytes | None], ...]


def rpis_heard_often(conn: sqlite3.Connection) -> bool:
    """Whether RPIs are heard ``_GROUP_FROM`` times or more on average, judged on the first
    ``_SHAPE_SAMPLE`` entries of the index by RPI (random RPIs: a fair sample of the store)."""
    n, distinct = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT rpi) FROM (SELECT rpi FROM sightings INDEXED BY sightings_by_rpi"
        f" WHERE {RPI_INDEXED} LIMIT {_SHAPE_SAMPLE})"
    ).fetchone()
    return bool(n >= _GROUP_FROM * distinct)


def read_heard(
    conn: sqlite3.Connection, since: float | None, until: float | None, at_least: int, grouped: bool | None = None
) -> HeardBlobs:
    """The index entries with ``since <= time < until`` (either bound optional), grouped by SQLite where
    the store's shape says so (``rpis_heard_often``, unless ``grouped`` is given): from the counts of
    ``rpi_days`` where the bounds are whole UTC days (one row per RPI and day instead of every entry)
    and the store has it, else from the index."""
    grouped = rpis_heard_often(conn) if grouped is None else grouped
    since, until = (None if bound is None else float(bound) for bound in (since, until))
    days = _whole_days(since, until)
    counted = grouped and days is not None and _has_rpi_days(conn)
    column, (lo, hi) = ("day", days) if counted and days is not None else ("time", (since, until))
    bounded = [(op, bound) for op, bound in ((">=", lo), ("<", hi)) if bound is not None]
    where, params = "".join(f" AND {column} {op} ?" for op, _ in bounded), [bound for _, bound in bounded]
    if column == "day":
        source, count = f"FROM rpi_days WHERE 1{where}", "SUM(sightings)"
    else:
        source, count = f"FROM sightings INDEXED BY sightings_by_rpi WHERE {RPI_INDEXED}{where}", "COUNT(*)"
    # group_concat() joins the blobs' bytes as they are in a UTF-8 database; its result must stay
    # well under SQLite's 1 GB value limit, so a huge store is read in ranges of the first byte.
    # How many rows there may be: the span of their ids, two seeks (a COUNT(*) would step
    # through every entry of the time index, ~0.1 s for a million).
    n = conn.execute("SELECT (SELECT MAX(rowid) FROM sightings) - (SELECT MIN(rowid) FROM sightings) + 1").fetchone()[0] or 0
    utf8 = conn.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"
    value = "rpi" if utf8 else "hex(rpi)"
    ranges = int(min(256, 1 + n * 16 // _HEARD_BLOB_BYTES))
    bounds = [256 * i // ranges for i in range(ranges + 1)]
    parts: list[tuple[bytes, bytes | None]] = []
    previous = conn.text_factory
    conn.text_factory = bytes
    try:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = f" AND rpi >= x'{lo:02x}'" if lo > 0 else ""
            part += f" AND rpi < x'{hi:02x}'" if hi < 256 else ""
            if grouped:
                every, again = conn.execute(
                    f"SELECT group_concat({value}, ''), group_concat(CASE WHEN n >= ? THEN {value} END, '')"
                    f" FROM (SELECT rpi, {count} AS n {source}{part} GROUP BY rpi)",
                    [at_least, *params],
                ).fetchone()
                parts.append((_unhex(every, utf8), _unhex(again, utf8)))
            else:
                every = conn.execute(f"SELECT group_concat({value}, '') {source}{part}", params).fetchone()[0]
                parts.append((_unhex(every, utf8), None))
    finally:
        conn.text_factory = previous
    return HeardBlobs(grouped, at_least, tuple(parts))


def _has_rpi_days(conn: sqlite3.Connection) -> bool:
    """Whether the store counts its RPIs by day, with every trigger that keeps the count (schema 13 on; a
    store kept at an older one does not, and a trigger dropped by hand would leave the count stale)."""
    names = ", ".join(f"'{name}'" for name in RPI_DAYS_KEPT_BY)
    kept = conn.execute(f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ({names})").fetchone()[0]
    return bool(kept == len(RPI_DAYS_KEPT_BY))


def _whole_days(since: float | None, until: float | None) -> tuple[int | None, int | None] | None:
    """(first day, day after the last) of ``since <= time < until`` when each bound is None or a UTC
    midnight within ``DAY_LIMIT`` days of 1970 (NaN and infinities are not), else None."""
    days: list[int | None] = []
    for bound in (since, until):
        if bound is not None and (bound % DAY_SECONDS or not abs(bound) <= DAY_LIMIT * DAY_SECONDS):
            return None
        days.append(None if bound is None else int(bound // DAY_SECONDS))
    return days[0], days[1]


def _unhex(blob: bytes | None, utf8: bool) -> bytes:
    """A ``group_concat`` result as bytes (None: nothing read; hex text in a UTF-16 database)."""
    return b"" if blob is None else blob if utf8 else bytes.fromhex(blob.decode())


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the regular file at ``path`` (through links), None if there is none: a store
    replaced at the same path between an early read and the open is another file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def file_stamp(path: Path) -> tuple[int, ...] | None:
    """``file_identity`` with the file's size, modification and change times: a store written over in
    place (``cp backup.db store.db``: the same inode) has another, whatever it holds (its change time is
    the kernel's, set by every write and by no one else; to the kernel's clock tick, a few ms: a rewrite
    of the same size within a tick of the file's last write would pass)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) if stat.S_ISREG(st.st_mode) else None


@dataclass(frozen=True)
class EarlyHeard:
    """What an early reader read, of which file (``file_identity``), up to which row (``LAST_ROW`` of the
    largest rowid then: its rowid and values; None: no row) and at which schema cookie (``PRAGMA
    schema_version``).  The store the check opens may stand for the read (``Sightings.heard_rpis_read_before``)
    only while the same file's rows from that rowid on are that one row alone, its cookie unchanged.

    Every way the store can change between the read and the check's open, and how it is told:

    - the daemon stores rows: a row past the last read (read again);
    - a purge (the daemon's hourly one, the open's own) deletes rows only, leaving a subset of what was read:
      used, the last row read found as it was or purged (dated before the open's purge cutoff);
    - ``purge --dated-ahead``: deletes only, as a purge (read again if it deleted the last row);
    - a checkpoint (the daemon's, or a purge's) copies the WAL into the file, the same rows: the file's stamp
      changes (``EarlyRead.result``: read again, a false alarm that costs only the read);
    - a restore by ``cp`` over the file in place: the file's stamp; by SQLite's backup API (``sqlite3
      .restore``, ``Connection.backup``), whose pages wait in the WAL with the stamp unchanged: the backup
      sets the cookie to the one it overwrote plus one, whatever it copies (SQLite's backup.c);
    - VACUUM (an owed one at the open, SQLite's ``VACUUM`` by hand, which may renumber rowids) and any
      migration (a schema change): the cookie;
    - a store replaced by another file at the path (``mv``): its identity.

    A store restored by ``cp`` within a clock tick of its last write, or between ``result`` and the open,
    is told by its last row: another store's holds other values (random RPIs), or lacks it (unless the
    last row read was dated past the retention, purged anyway: then such a ``cp`` is not told).  Not told: a
    hand edit through SQL that leaves the last row as it was (an UPDATE of an older row, an INSERT at a free
    rowid below it) and commits in the ~0.1 s between the two reads; or a backup taken of this very store
    after its last row was written, restored by ``cp`` then, which brings back only rows deleted since it
    was taken, and of those only ones deleted otherwise than by age (the open purges those again)."""

    blobs: HeardBlobs
    identity: tuple[int, int]
    last_row: tuple[object, ...] | None
    schema_version: int


#: The store's rows from a rowid on, two at most (rowid, time, then every column): ``EarlyHeard.last_row`` is
#: the last one then, which the check's open must find alone there, or purged (its time past the retention).
LAST_ROW = "SELECT rowid, time, * FROM sightings WHERE rowid >= ? ORDER BY rowid LIMIT 2"


class EarlyRead:
    """Every RPI the store at ``path`` heard (``read_heard`` of every day, one read transaction),
    read in a thread of its own, started at once, before the open that purges it.

    Only a store as the check would open it without changing it: a regular file at this schema version
    in WAL mode (a reader of a file in rollback mode holds back every writer, a purge's too, for as long as
    it reads), or one on a read-only file system, read as the store's open reads it there (``read_only_uri``: no
    writer to hold back; it was None there, and a check of the largest day read the store on its main thread
    after the key file: 95 ms there, 49 ms with the early read).  Anything else (no file, another version, a lock, any SQLite error) gives None, and the
    check reads as it did without it, its errors said then, in their order.  The connection never
    creates the file (``mode=rw``), writes nothing (``query_only``) and waits for no lock; being
    read-write, the last to close removes the ``-wal`` and ``-shm`` files it made, as a store's own
    close does.  Beside a ``-wal`` it did not make it reads read-only (``mode=ro``): closing last, it
    would have checkpointed a killed writer's WAL into the file and removed it.  ``result`` and
    ``close`` join the thread, whose connection is closed by then: before the open's purge, whose
    TRUNCATE checkpoint a reader still in the WAL would make fail (purged pages then stay in the WAL)."""

    def __init__(self, path: Path, at_least: int) -> None:
        self.path = path
        self._result: EarlyHeard | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # guards _conn and _stopped between the thread and close()
        self._stopped = False
        self._stamp: tuple[int, ...] | None = None  # the file's, before the read began (None: read nothing)
        self._stamp_seen = False  # the first result(), before the open, has compared it
        self._thread = InThread("bluezone-early-read", lambda: self._run(at_least))

    def _run(self, at_least: int) -> None:
        stamp = file_stamp(self.path)
        if stamp is None:
            return
        identity = (stamp[0], stamp[1])
        fixed = on_read_only_file_system(self.path)  # nothing writes it: read as the store's open reads it there
        try:
            if fixed:
                uri = read_only_uri(self.path)
            else:
                # read-only beside a -wal already there (the daemon's, or one a killed writer left): as the last
                # connection to close, a read-write one would checkpoint it into the file and remove it
                uri = f"{Path(self.path).absolute().as_uri()}?mode={'ro' if os.path.exists(f'{self.path}-wal') else 'rw'}"
            conn = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
        except (sqlite3.Error, StoreReadOnlyError):  # (a -wal without its -shm there: the open says it)
            return
        try:
            with self._lock:
                if self._stopped:
                    return
                self._conn = conn
            # a stop between two statements too: an interrupt() while none runs is lost (SQLite < 3.41)
            conn.set_progress_handler(lambda: self._stopped, _STOP_CHECK_STEPS)
            conn.execute("PRAGMA query_only = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if version != SCHEMA_VERSION or (mode != "wal" and not fixed) or self._stopped:  # (immutable: "delete")
                return
            conn.execute("BEGIN")  # one snapshot for the shape's sample and every range
            blobs = read_heard(conn, None, None, at_least)
            last_row = conn.execute("SELECT rowid, time, * FROM sightings ORDER BY rowid DESC LIMIT 1").fetchone()
            cookie = conn.execute("PRAGMA schema_version").fetchone()[0]
            conn.execute("COMMIT")
            if file_identity(self.path) == identity:
                self._result, self._stamp = EarlyHeard(blobs, identity, last_row, cookie), stamp
        except sqlite3.Error:
            return
        finally:
            with self._lock:
                self._conn = None
            conn.close()

    def result(self) -> EarlyHeard | None:
        """What was read (None: nothing usable), once the thread has ended and closed its connection.

        None too when the file has changed since before the read (``file_stamp``): a backup restored over
        it in place may hold rows the read lacks with no row past the last it read.  Looked at by the first
        call only, which comes before the open (whose purge may checkpoint, writing the file); SQLite
        writes the file only then, so a false alarm (a checkpoint of the daemon's meanwhile) only costs
        the read, read again by the check."""
        self._thread.result()
        if not self._stamp_seen:
            self._stamp_seen = True
            if self._result is not None and file_stamp(self.path) != self._stamp:
                self._result = None
        return self._result

    def take(self) -> EarlyHeard | None:
        """``result``, handed over once: kept here afterwards without its blobs (16 MB per million
        distinct RPIs), which a check held to its end after making its arrays of them."""
        read = self.result()
        if read is not None:
            self._result = replace(read, blobs=replace(read.blobs, parts=()))
        return read

    def close(self) -> None:
        """Stop the read if it still runs (Ctrl-C, an error: its result is not wanted) and join the thread."""
        with self._lock:
            self._stopped = True
            if self._conn is not None:
                self._conn.interrupt()
        self._thread.join()

    def __enter__(self) -> EarlyRead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
