"""The key server's storage: verification codes, published keys, export batches.

One interface, two implementations sharing the same SQL: SQLite (one file, WAL) is the
embedded default; PostgreSQL (psycopg 3) for a server that outgrows one machine.  Every
method is one transaction, so a publish either stores all its keys and burns its code or
changes nothing.  Calls are serialised per ``Storage`` object (one connection, a lock):
FastAPI runs sync handlers in a thread pool.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD
from bluezone.errors import (
    ConfigError, InputError, NewerSchemaError, NotScratchDatabaseError, RevisionRefused, ServerStorageError,
)
from bluezone.keyformat.keys import KEY_DTYPE, NO_DAYS_SINCE_ONSET, empty_keys

log = logging.getLogger(__name__)

SCHEMA_VERSION = 13
#: Rows of ``code_tries`` keyed with this prefix count tries several clients share (an IPv6 /48's, everybody's).
SHARED_BUDGET = "shared:"

#: The first release's tables (schema 1), created in a new database before the migrations below.
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS codes (
        code_hash TEXT PRIMARY KEY,
        report_type INTEGER NOT NULL,
        test_type TEXT NOT NULL,
        test_day INTEGER,
        onset_day INTEGER,
        issued_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS code_failures (
        client TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS code_failures_at ON code_failures (at)""",
    """CREATE TABLE IF NOT EXISTS batches (
        id {serial} PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at DOUBLE PRECISION NOT NULL,
        start_timestamp BIGINT NOT NULL,
        end_timestamp BIGINT NOT NULL,
        batch_num INTEGER NOT NULL,
        batch_size INTEGER NOT NULL,
        num_keys INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS exposure_keys (
        id {serial} PRIMARY KEY,
        key_data {blob} NOT NULL UNIQUE,
        rolling_start INTEGER NOT NULL,
        rolling_period INTEGER NOT NULL,
        transmission_risk INTEGER NOT NULL,
        report_type INTEGER NOT NULL,
        days_since_onset INTEGER,
        received_at DOUBLE PRECISION NOT NULL,
        batch_id INTEGER REFERENCES batches (id))""",
    """CREATE INDEX IF NOT EXISTS exposure_keys_pending ON exposure_keys (batch_id, rolling_start)""",
]
#: What each schema version adds to the one before, applied in order when a database is opened
#: (a new database is created at version 1 and brought up the same way).
_MIGRATIONS: dict[int, list[str | Callable[[Storage, Any], None]]] = {
    2: [  # key revision: a "likely" report confirmed or revoked later (GAEN's revisionToken)
        "ALTER TABLE exposure_keys ADD COLUMN revised_report_type INTEGER",
        "ALTER TABLE exposure_keys ADD COLUMN revised_days_since_onset INTEGER",
        "ALTER TABLE exposure_keys ADD COLUMN revised_at DOUBLE PRECISION",
        "ALTER TABLE exposure_keys ADD COLUMN revised_batch_id INTEGER REFERENCES batches (id)",
        # every token an uploader got stays good for its keys (an answer lost on the way must not lock them)
        """CREATE TABLE revision_tokens (
            token_hash TEXT NOT NULL,
            key_id INTEGER NOT NULL REFERENCES exposure_keys (id) ON DELETE CASCADE,
            PRIMARY KEY (token_hash, key_id))""",
        "CREATE INDEX revision_tokens_key ON revision_tokens (key_id)",
    ],
    3: [  # code hashes keyed with a secret outside the database; codes stored before stay plain SHA-256
        "ALTER TABLE codes ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0",
    ],
    4: [  # venue check-ins (CWA CheckInProtectedReports), real and fake alike, by UTC day
        """CREATE TABLE IF NOT EXISTS venue_reports (
            id {serial} PRIMARY KEY,
            report {blob} NOT NULL,
            day INTEGER NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            batch_id INTEGER REFERENCES batches (id))""",
        "CREATE INDEX IF NOT EXISTS venue_reports_pending ON venue_reports (batch_id, day)",
    ],
    5: [  # the export queue indexed only while a key waits: marking 1M keys exported no longer
        # moves 1M index entries from NULL to their batch (about half the export's time)
        "DROP INDEX exposure_keys_pending",
        "CREATE INDEX exposure_keys_pending ON exposure_keys (rolling_start) WHERE batch_id IS NULL",
    ],
    6: [  # every publish counts its client's failures: by (client, at), not by scanning every failure
        # of the hour (500,000 of them, from the /64s of one IPv6 /48, made each publish take 0.5 s)
        "CREATE INDEX IF NOT EXISTS code_failures_client ON code_failures (client, at)",
    ],
    7: [  # the queue's index in id order (its only key is NULL): an export reads the waiting keys in the
        # table's own order, one pass, instead of one pass per day (1M keys: 0.73 -> 0.47 s)
        "DROP INDEX exposure_keys_pending",
        "CREATE INDEX exposure_keys_pending ON exposure_keys (batch_id) WHERE batch_id IS NULL",
    ],
    8: [  # the export queues as tables of their own (key ids waiting): an export deletes the ids it
        # published instead of rewriting each key's row with its batch (1M keys: 1.35 s on SQLite, 24.6 s
        # of non-HOT updates on PostgreSQL); a key is exported when it is no longer in export_queue.  No
        # foreign key: SQLite would look up each key as its id leaves the queue (1M: 0.6 s); purge() cleans up
        "CREATE TABLE export_queue (key_id {int64} PRIMARY KEY)",
        # revisions waiting for a batch's revised_keys (a revision before the key's first export goes out with it)
        "CREATE TABLE revision_queue (key_id {int64} PRIMARY KEY)",
        "INSERT INTO export_queue (key_id) SELECT id FROM exposure_keys WHERE batch_id IS NULL ORDER BY id",
        "INSERT INTO revision_queue (key_id) SELECT id FROM exposure_keys"
        " WHERE revised_at IS NOT NULL AND revised_batch_id IS NULL ORDER BY id",
        "DROP INDEX exposure_keys_pending",
        "ALTER TABLE exposure_keys DROP COLUMN batch_id",
        "ALTER TABLE exposure_keys DROP COLUMN revised_batch_id",
        # the purge of expired keys by an index, not a scan of every key at every export
        "CREATE INDEX exposure_keys_end ON exposure_keys ((rolling_start + rolling_period))",
    ],
    9: [  # each queue row holds what a file carries of its key as it stands (a revision before its first
        # export in its type and onset), packed: an export reads one table, one column, without joining the
        # keys or turning numbers into text and back (1M keys: PostgreSQL ~2x, SQLite ~3x faster)
        """CREATE TABLE export_queue_9 (
            key_id {int64} PRIMARY KEY,
            rolling_start INTEGER NOT NULL,
            rolling_end INTEGER NOT NULL,
            record {blob} NOT NULL CHECK (length(record) = 48))""",
        """CREATE TABLE revision_queue_9 (
            key_id {int64} PRIMARY KEY,
            rolling_start INTEGER NOT NULL,
            rolling_end INTEGER NOT NULL,
            record {blob} NOT NULL CHECK (length(record) = 48))""",
        lambda storage, cur: storage._queue_keys(cur, "export_queue_9", "k.id IN (SELECT key_id FROM export_queue)"),
        lambda storage, cur: storage._queue_keys(cur, "revision_queue_9", "k.id IN (SELECT key_id FROM revision_queue)"),
        "DROP TABLE export_queue",
        "DROP TABLE revision_queue",
        "ALTER TABLE export_queue_9 RENAME TO export_queue",
        "ALTER TABLE revision_queue_9 RENAME TO revision_queue",
    ],
    10: [  # failed code tries counted per client and window, one row per client: a row per try let the /64s
        # of one IPv6 /48 add ~650,000 rows an hour, kept two days (~3 GB).  The counts restart at the upgrade
        # (at most one window's tries regained once)
        """CREATE TABLE code_tries (
            client TEXT PRIMARY KEY,
            window_start DOUBLE PRECISION NOT NULL,
            failures INTEGER NOT NULL)""",
        "CREATE INDEX code_tries_window ON code_tries (window_start)",
        "DROP TABLE code_failures",
    ],
    11: [  # a code issued by mistake can be withdrawn before it is used (`server revoke-code`)
        "ALTER TABLE codes ADD COLUMN revoked_at DOUBLE PRECISION",
    ],
    12: [  # export files padded with fake keys (bluezone/server/padding.py): how many a file holds beside the
        # uploaded ones, and the secret that makes an export day's fakes recognisable, dropped with its files
        "ALTER TABLE batches ADD COLUMN padding_keys INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE padding_secrets (day INTEGER PRIMARY KEY, secret {blob} NOT NULL)",
    ],
    13: [  # the public keys the exporter signed with (base64 DER) and when last: after a key rotation a
        # roll-up verifies the files signed before it with the key that signed them, and signs with the new one
        "CREATE TABLE export_signing_keys (public_key TEXT PRIMARY KEY, last_used DOUBLE PRECISION NOT NULL)",
    ],
}

#: A queue row's record (schema 9): the key as its file carries it (``revised``: a revision is in its type
#: and onset) and its id, little-endian.  Another layout needs a migration of its own.
QUEUE_RECORD = np.dtype(
    [("key", "V16"), ("rolling_start", "<i4"), ("rolling_period", "<i4"), ("transmission_risk", "<i4"),
     ("report_type", "<i4"), ("days_since_onset", "<i4"), ("revised", "<i4"), ("key_id", "<i8")]
)
assert QUEUE_RECORD.itemsize == 48  # the queues' CHECK


def queue_rows(ids: np.ndarray, keys: np.ndarray, revised: np.ndarray | int) -> list[tuple[int, int, int, bytes]]:
    """Rows (key_id, rolling_start, rolling_end, record) of a queue for the KEY_DTYPE ``keys`` of ``ids``."""
    records = np.zeros(len(keys), QUEUE_RECORD)
    for name in KEY_DTYPE.names or ():
        records[name] = keys[name]
    records["revised"], records["key_id"] = revised, ids
    ends = keys["rolling_start"].astype(np.int64) + keys["rolling_period"]
    blobs = np.frombuffer(records.tobytes(), f"V{QUEUE_RECORD.itemsize}")
    return list(zip(np.asarray(ids, np.int64).tolist(), keys["rolling_start"].tolist(), ends.tolist(), map(bytes, blobs)))


#: GAEN report types (TemporaryExposureKey.ReportType) that revision concerns.  RECURSIVE marks the
#: keys of a close contact (F1) of a case, published so that *their* close contacts (F2) are told.
CONFIRMED, LIKELY, RECURSIVE, REVOKED = 1, 2, 4, 5


def revision_refusal(stored_type: int, revised: bool, new_type: int) -> str | None:
    """Why a key stored as ``stored_type`` may not become ``new_type`` (None: it may)."""
    if revised:
        return "key_already_revised"
    if stored_type not in (LIKELY, RECURSIVE) or new_type not in (CONFIRMED, REVOKED):
        return "invalid_report_type_transition"
    return None


@dataclass(frozen=True)
class PublishOutcome:
    """What one publish transaction wrote."""

    inserted: int  # new keys stored
    revised: int  # keys already stored whose report type changed
    venue_reports: int = 0  # check-in reports stored, fakes included


@dataclass(frozen=True)
class CodeRecord:
    """A verification code as stored (only its keyed hash: a stolen database reveals no live code)."""

    code_hash: str
    report_type: int
    test_type: str
    test_day: int | None  # UTC day number (Unix seconds // 86400)
    onset_day: int | None
    issued_at: float
    expires_at: float
    used_at: float | None


@dataclass(frozen=True)
class BatchRecord:
    """One signed export batch as recorded (its file name and what it holds)."""

    name: str
    created_at: float
    start_timestamp: int
    end_timestamp: int
    batch_num: int
    batch_size: int
    num_keys: int  # keys (and revisions) uploaded; check-in reports with their decoys in a venue file
    padding_keys: int = 0  # fake keys beside them (bluezone/server/padding.py), never counted as keys


#: A code's row by its keyed hash, or by the plain SHA-256 of a code stored before the code key (schema < 3).
_CODE_MATCH = "((code_hash = ? AND keyed = 1) OR (code_hash = ? AND keyed = 0))"

#: A batch record's row, its fields in the dataclass's order (``astuple``).
_INSERT_BATCH = (
    "INSERT INTO batches (name, created_at, start_timestamp, end_timestamp, batch_num, batch_size, num_keys,"
    " padding_keys) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class Storage(ABC):
    """What the server needs from a database; see SQLiteStorage and PostgresStorage."""

    _param = "?"
    _serial = "INTEGER"
    _int64 = "INTEGER"  # SQLite: an INTEGER PRIMARY KEY is the rowid, so a queue is one small b-tree of ids
    _blob = "BLOB"
    _utf8 = True  # SQLite: the database stores text as UTF-8 (the default; UTF-16 if made so before)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- plumbing each backend provides --
    @abstractmethod
    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor inside one transaction: committed on exit, rolled back on error.  ``write=False``:
        it only reads (SQLite then holds off no writer meanwhile)."""

    @abstractmethod
    def close(self) -> None: ...

    def _sql(self, sql: str) -> str:
        return sql if self._param == "?" else sql.replace("?", self._param)

    def _exec(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def _create_schema(self) -> None:
        with self._transaction() as cur:
            # several server processes started at once (workers, or every one after an upgrade) would each
            # create or migrate the tables, and all but one fail on what the first made
            self._lock_name(cur, "schema")
            self._exec(cur, _SCHEMA[0])
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is None:  # a new database: the first release's tables, then every migration
                for stmt in _SCHEMA[1:]:
                    self._exec(cur, stmt.format(serial=self._serial, blob=self._blob))
                self._exec(cur, "INSERT INTO meta (name, value) VALUES ('schema_version', '1')")
            version = 1 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(
                    f"key server database has schema version {version}, newer than this bluezone ({SCHEMA_VERSION}):"
                    " upgrade bluezone here too, or restore the backup taken before the upgrade"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for change in _MIGRATIONS[step]:
                    if callable(change):  # a step SQL alone cannot take (records built in Python)
                        change(self, cur)
                    else:
                        self._exec(cur, change.format(serial=self._serial, blob=self._blob, int64=self._int64))
                self._exec(cur, "UPDATE meta SET value = ? WHERE name = 'schema_version'", [str(step)])

    def ping(self) -> None:
        """Read one row (the schema version): raises if the database cannot answer (readiness, /readyz).
        On PostgreSQL a lost connection is made again first, as for any request."""
        with self._transaction(write=False) as cur:
            self._exec(cur, "SELECT value FROM meta WHERE name = 'schema_version'").fetchone()

    # -- verification codes --
    def add_code(
        self, record: CodeRecord, *, within_limit: Callable[[int], None] | None = None, issued_since: float = 0.0
    ) -> bool:
        """Store a new code (its hash keyed: see codes.CodeKey); False when its hash is taken (the same
        digits issued before).

        ``within_limit`` is called with the codes of the record's report type issued since
        ``issued_since``, counted in the same transaction as the insert with other issuers held off,
        and raises to refuse (nothing stored): counted before it, two operators issuing at once could
        each pass a daily limit by one."""
        with self._transaction() as cur:
            if within_limit is not None:
                self._lock_name(cur, f"codes issued of type {record.report_type}")
                (issued,) = self._exec(
                    cur, "SELECT COUNT(*) FROM codes WHERE report_type = ? AND issued_at >= ?",
                    [record.report_type, issued_since],
                ).fetchone()
                within_limit(int(issued))
            return self._exec(
                cur,
                "INSERT INTO codes (code_hash, report_type, test_type, test_day, onset_day, issued_at, expires_at,"
                " keyed) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (code_hash) DO NOTHING",
                [
                    record.code_hash,
                    record.report_type,
                    record.test_type,
                    record.test_day,
                    record.onset_day,
                    record.issued_at,
                    record.expires_at,
                ],
            ).rowcount == 1

    def get_code(self, code_hash: str) -> CodeRecord | None:
        with self._transaction() as cur:
            row = self._exec(
                cur,
                "SELECT code_hash, report_type, test_type, test_day, onset_day, issued_at, expires_at, used_at"
                " FROM codes WHERE code_hash = ?",
                [code_hash],
            ).fetchone()
        return CodeRecord(*row) if row else None

    def revoke_code(self, code_hash: str, now: float, *, legacy_code_hash: str | None = None) -> tuple[str, float | None]:
        """Withdraw a code not used yet: ``("revoked", now)``, or why nothing changed and since when:
        ``already_revoked``, ``used``, ``expired`` (a time each), ``unknown`` (None: never issued, or
        deleted two days after it expired).  A publish racing it is either before (used) or refused."""
        hashes = [code_hash, legacy_code_hash or ""]
        with self._transaction() as cur:
            done = self._exec(
                cur,
                f"UPDATE codes SET revoked_at = ? WHERE {_CODE_MATCH} AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > ?",
                [now, *hashes, now],
            ).rowcount
            if done:
                return "revoked", now
            found = self._exec(cur, f"SELECT used_at, revoked_at, expires_at FROM codes WHERE {_CODE_MATCH}", hashes).fetchone()
        if found is None:
            return "unknown", None
        used_at, revoked_at, expires_at = found
        if used_at is not None:
            return "used", float(used_at)
        if revoked_at is not None:
            return "already_revoked", float(revoked_at)
        return "expired", float(expires_at)

    def count_codes(self, report_type: int, *, issued_since: float | None = None, used_since: float | None = None) -> int:
        """Codes of ``report_type`` issued (or used) since a time: what the limits on recursive codes count."""
        sql = "SELECT COUNT(*) FROM codes WHERE report_type = ?"
        params: list[float] = [report_type]
        if issued_since is not None:
            sql += " AND issued_at >= ?"
            params.append(issued_since)
        if used_since is not None:
            sql += " AND used_at >= ?"
            params.append(used_since)
        with self._transaction() as cur:
            return int(self._exec(cur, sql, params).fetchone()[0])

    def record_failure(self, client: str, at: float, window: float = 3600.0) -> None:
        """Count one failed code try of ``client`` at ``at`` in its window of ``window`` seconds (why it
        failed is logged by the caller, not kept: the table holds one row per client, not one per try)."""
        with self._transaction() as cur:
            self._lock_name(cur, "code tries of " + client)
            self._count_try(cur, client, at, at - window)

    def _count_try(self, cur: Any, client: str, at: float, since: float) -> float:
        """Add one try to ``client``'s window (a new one from ``at`` if its last began before ``since``) and
        return the window's start."""
        row = self._exec(cur, "SELECT window_start, failures FROM code_tries WHERE client = ?", [client]).fetchone()
        return self._add_try(cur, client, at, float(row[0]) if row is not None and row[0] >= since else None)

    def _add_try(self, cur: Any, client: str, at: float, window_start: float | None) -> float:
        """One more try in ``client``'s window begun at ``window_start`` (None: a new window from ``at``)."""
        if window_start is not None:
            self._exec(cur, "UPDATE code_tries SET failures = failures + 1 WHERE client = ?", [client])
            return window_start
        self._exec(
            cur,
            "INSERT INTO code_tries (client, window_start, failures) VALUES (?, ?, 1)"
            " ON CONFLICT (client) DO UPDATE SET window_start = excluded.window_start, failures = 1",
            [client, at],
        )
        return at

    def claim_code_try(
        self, client: str, at: float, since: float, limit: int, also: Sequence[tuple[str, int | None]] = (),
        busy: tuple[str, int, int] | None = None,
    ) -> str | None:
        """Count a code try of ``client`` as failed *before* it is made, if its window (begun at or after
        ``since``) holds fewer than ``limit`` failures; a token for ``settle_code_try``, or None (nothing
        counted) if over.  Counting first and recording after the try let concurrent requests all pass
        the count: 50 at once from one client made 40 tries where the limit was 10.

        ``also``: more budgets the try is counted against in the same transaction, (key, limit), each a
        row like a client's (an IPv6 /48's, everybody's); the try is refused if any is full (a None
        limit only counts).  ``busy`` (key, level, tighter limit): while the row ``key`` (read, not counted
        here: ``record_failure`` counts it) holds ``level`` failures or more in its window, the client's
        limit is the tighter one.

        One row per client (schema 10), not one per try, and rows whose window ended are dropped here:
        the /64s of one IPv6 /48 added ~650,000 rows an hour, kept two days (~3 GB); now the table holds
        at most one row per client that failed within the last window."""
        caps = {**dict(also), client: limit}
        keys = sorted(caps)  # one lock order for every claim: no deadlock
        with self._transaction() as cur:
            for key in keys:
                self._lock_name(cur, "code tries of " + key)
            # one cleaner at a time, so no two claims wait on rows the other holds (other claims touch only
            # their own budgets' rows)
            if self._try_lock_name(cur, "code tries cleanup"):
                self._exec(cur, "DELETE FROM code_tries WHERE window_start < ?", [since])
            wanted = keys if busy is None else [*keys, busy[0]]
            found = self._exec(  # one statement for every row: each is a round trip on PostgreSQL
                cur, f"SELECT client, window_start, failures FROM code_tries WHERE client IN ({', '.join('?' * len(wanted))})",
                wanted,
            ).fetchall()
            current = {client: (float(start), int(n)) for client, start, n in found if start >= since}
            windows = {key: current.get(key) for key in wanted}
            held = {key: window[1] if window else 0 for key, window in windows.items()}
            if busy is not None and held[busy[0]] >= busy[1]:
                caps[client] = min(limit, busy[2])
            if any(cap is not None and held[key] >= cap for key, cap in caps.items()):
                return None
            counted = [(key, self._add_try(cur, key, at, window[0] if window else None)) for key in keys
                       for window in [windows[key]]]
        return json.dumps(counted)

    def settle_code_try(self, client: str, token: str, reason: str | None) -> None:
        """The try ``claim_code_try`` counted: a failure for ``reason`` (it stays counted), or forgotten
        (None: the code was good, or the request was refused before its code was tried)."""
        if reason is not None:
            return
        counted = json.loads(token)
        with self._transaction() as cur:
            for key, window_start in counted:
                self._lock_name(cur, "code tries of " + key)
            for key, window_start in counted:
                self._exec(
                    cur,
                    "UPDATE code_tries SET failures = failures - 1 WHERE client = ? AND window_start = ? AND failures > 0",
                    [key, window_start],
                )

    def _lock_name(self, cur: Any, name: str) -> None:
        """Hold off other connections' transactions that lock ``name`` until this one ends (SQLite: BEGIN IMMEDIATE does)."""

    def _try_lock_name(self, cur: Any, name: str) -> bool:
        """``_lock_name`` if nobody holds it now, else False at once (SQLite: BEGIN IMMEDIATE has already waited)."""
        return True

    def count_failures(self, since: float, client: str | None = None) -> int:
        """Failed code tries counted in the windows begun at or after ``since`` (of ``client``, or of every
        client: a shared budget's row counts tries a client's row counts too)."""
        sql = "SELECT COALESCE(SUM(failures), 0) FROM code_tries WHERE window_start >= ?"
        params: list[Any] = [since]
        if client is not None:
            sql += " AND client = ?"
            params.append(client)
        else:
            sql += " AND client NOT LIKE ?"
            params.append(SHARED_BUDGET + "%")
        with self._transaction(write=False) as cur:
            return int(self._exec(cur, sql, params).fetchone()[0])

    def count_try_rows(self) -> int:
        """Rows the failed-try table holds (one per client with a window): what an attacker can grow."""
        with self._transaction(write=False) as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM code_tries").fetchone()[0])

    # -- publishing --
    def publish(
        self,
        code_hash: str,
        now: float,
        build: Callable[[CodeRecord, int], np.ndarray],
        *,
        legacy_code_hash: str | None = None,
        token_hash: str | None = None,
        new_token_hash: str | None = None,
        venue_reports: Sequence[tuple[int, bytes]] = (),
        recursive_since: float | None = None,
    ) -> PublishOutcome:
        """Burn the code and store the keys ``build(code, recursive_used)`` returns, atomically.

        ``build`` validates and raises to abort: then the code stays unused and nothing is stored.
        ``recursive_used``: for a recursive code and a ``recursive_since``, the recursive codes used since
        then, this one included, counted in this transaction (counted before it, uploads at the same
        moment all passed an hourly limit); else 0.
        New keys are stored and listed under ``new_token_hash`` (the hash of the revision token the
        uploader gets back); new keys of a negative test are not stored at all (nothing to revoke).
        A key already on the server is left alone when its report type is unchanged; under another
        type it is *revised*, but only when the uploader shows a token it got with it
        (``token_hash``) and the change is allowed (``revision_refusal``), else RevisionRefused
        aborts the whole upload.  Keys the uploader proved to own are listed under the new token
        too, and every older token stays good.
        ``code_hash`` is the code's keyed hash; ``legacy_code_hash`` its plain SHA-256, which matches
        only codes stored before the code key (schema < 3), so they still work until they expire.
        ``venue_reports`` ((UTC day, CheckInProtectedReport bytes), fakes already mixed in) are
        stored in the same transaction, except under a negative test's code or a close contact's
        (recursive) one: a venue warning tells its readers that a case was there.
        Raises LookupError("invalid"|"used"|"expired") for an unusable code.
        """
        hashes = [code_hash, legacy_code_hash or ""]
        with self._transaction() as cur:
            row = self._exec(
                cur,
                f"UPDATE codes SET used_at = ? WHERE {_CODE_MATCH} AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > ?"
                " RETURNING code_hash, report_type, test_type, test_day, onset_day, issued_at, expires_at, used_at",
                [now, *hashes, now],
            ).fetchone()
            if row is None:
                found = self._exec(cur, f"SELECT used_at, revoked_at FROM codes WHERE {_CODE_MATCH}", hashes).fetchone()
                raise LookupError(
                    "invalid" if found is None else "used" if found[0] is not None
                    else "revoked" if found[1] is not None else "expired"
                )
            record, recursive_used = CodeRecord(*row), 0
            if recursive_since is not None and record.report_type == RECURSIVE:
                self._lock_name(cur, "recursive uploads")
                (recursive_used,) = self._exec(
                    cur, "SELECT COUNT(*) FROM codes WHERE report_type = ? AND used_at >= ?", [RECURSIVE, recursive_since]
                ).fetchone()
            keys = build(record, int(recursive_used))
            inserted = revised = 0
            owned: list[int] = []  # key ids the new token will cover
            queued: dict[int, int] = {}  # new key id -> its row in keys, waiting for its first export
            for row_number, k in enumerate(keys):
                dsos = int(k["days_since_onset"])
                onset = None if dsos == np.iinfo(np.int32).min else dsos
                key_data, report_type = bytes(k["key"]), int(k["report_type"])
                if report_type != REVOKED:  # (a negative test's keys never seen before are not published, as GAEN)
                    new_id = self._exec(
                        cur,
                        "INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk,"
                        " report_type, days_since_onset, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (key_data) DO NOTHING RETURNING id",
                        [key_data, int(k["rolling_start"]), int(k["rolling_period"]), int(k["transmission_risk"]),
                         report_type, onset, now],
                    ).fetchone()
                    if new_id is not None:
                        inserted += 1
                        owned.append(int(new_id[0]))
                        queued[int(new_id[0])] = row_number
                        continue
                found = self._exec(
                    cur,
                    "SELECT id, report_type, COALESCE(revised_report_type, report_type), revised_at, rolling_start,"
                    " rolling_period, transmission_risk FROM exposure_keys WHERE key_data = ?",
                    [key_data],
                ).fetchone()
                if found is None:
                    continue
                key_id, stored_type, current_type, revised_at, *stored = found
                shown = token_hash is not None and self._exec(
                    cur, "SELECT 1 FROM revision_tokens WHERE token_hash = ? AND key_id = ?", [token_hash, key_id]
                ).fetchone() is not None
                if current_type != report_type:
                    if not shown:
                        raise RevisionRefused("missing_revision_token" if token_hash is None else "invalid_revision_token")
                    refusal = revision_refusal(stored_type, revised_at is not None, report_type)
                    if refusal:
                        raise RevisionRefused(refusal)
                    # the condition makes a concurrent revision of the same key (another server process) lose
                    done = self._exec(
                        cur,
                        "UPDATE exposure_keys SET revised_report_type = ?, revised_days_since_onset = ?, revised_at = ?"
                        " WHERE id = ? AND revised_at IS NULL",
                        [report_type, onset, now, key_id],
                    ).rowcount
                    if done != 1:
                        raise RevisionRefused("key_already_revised")
                    now_stands = empty_keys(1)  # the key as stored, under its new type and onset
                    now_stands[0] = (key_data, *stored, report_type, dsos)
                    ((_, start, end, as_revised),) = queue_rows(np.array([key_id]), now_stands, revised=1)
                    # a key still waiting for its first export goes out revised (no-op once exported)
                    self._exec(cur, "UPDATE export_queue SET record = ? WHERE key_id = ?", [as_revised, key_id])
                    self._exec(
                        cur,
                        "INSERT INTO revision_queue (key_id, rolling_start, rolling_end, record) VALUES (?, ?, ?, ?)",
                        [key_id, start, end, as_revised],
                    )
                    revised += 1
                if shown:
                    owned.append(int(key_id))
            if queued:
                cur.executemany(
                    self._sql("INSERT INTO export_queue (key_id, rolling_start, rolling_end, record) VALUES (?, ?, ?, ?)"),
                    queue_rows(np.array(list(queued)), keys[list(queued.values())], revised=0),
                )
            if new_token_hash is not None and owned:
                cur.executemany(
                    self._sql("INSERT INTO revision_tokens (token_hash, key_id) VALUES (?, ?) ON CONFLICT DO NOTHING"),
                    [(new_token_hash, key_id) for key_id in owned],
                )
            stored_reports = 0
            if venue_reports and int(row[1]) not in (REVOKED, RECURSIVE):  # a warning says a case was there
                cur.executemany(
                    self._sql("INSERT INTO venue_reports (report, day, received_at) VALUES (?, ?, ?)"),
                    [(bytes(report), int(day), now) for day, report in venue_reports],
                )
                stored_reports = len(venue_reports)
            return PublishOutcome(inserted, revised, stored_reports)

    def count_keys(self) -> int:
        with self._transaction() as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM exposure_keys").fetchone()[0])

    def insert_keys_unchecked(self, keys: np.ndarray, now: float) -> None:
        """Bulk insert without a code (benchmarks and tests of the exporter), new keys queued for export."""
        rows = [
            (bytes(k["key"]), int(k["rolling_start"]), int(k["rolling_period"]), int(k["transmission_risk"]),
             int(k["report_type"]), None if k["days_since_onset"] == NO_DAYS_SINCE_ONSET else int(k["days_since_onset"]),
             now)
            for k in keys
        ]
        with self._transaction() as cur:
            self._lock_key_inserts(cur)  # so the ids above the largest one now are this insert's, and only those
            (last,) = self._exec(cur, "SELECT COALESCE(MAX(id), 0) FROM exposure_keys").fetchone()
            cur.executemany(
                self._sql(
                    "INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk,"
                    " report_type, days_since_onset, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (key_data) DO NOTHING"
                ),
                rows,
            )
            self._queue_keys(cur, "export_queue", "k.id > ?", [last])

    def _queue_keys(self, cur: Any, queue: str, where: str, params: Sequence[Any] = ()) -> None:
        """Put the keys (``k``) ``where`` selects into ``queue`` as they stand (revised or not)."""
        rows = self._exec(
            cur,
            "SELECT k.id, k.key_data, k.rolling_start, k.rolling_period, k.transmission_risk,"
            " COALESCE(k.revised_report_type, k.report_type),"
            " COALESCE(CASE WHEN k.revised_at IS NULL THEN k.days_since_onset ELSE k.revised_days_since_onset END,"
            f" {int(NO_DAYS_SINCE_ONSET)}), CASE WHEN k.revised_at IS NULL THEN 0 ELSE 1 END"
            f" FROM exposure_keys k WHERE {where} ORDER BY k.id",
            params,
        ).fetchall()
        keys = empty_keys(len(rows))
        for field, column in zip(KEY_DTYPE.names or (), list(zip(*rows))[1:7] if rows else ()):
            keys[field] = [bytes(v) for v in column] if field == "key" else column
        ids, revised = np.array([r[0] for r in rows], np.int64), np.array([r[7] for r in rows], np.int32)
        cur.executemany(
            self._sql(f"INSERT INTO {queue} (key_id, rolling_start, rolling_end, record) VALUES (?, ?, ?, ?)"),
            queue_rows(ids, keys, revised),
        )

    def _lock_key_inserts(self, cur: Any) -> None:
        """Hold off other connections' key inserts until this transaction ends (SQLite: BEGIN IMMEDIATE does)."""

    # -- exports --
    def pending_keys(self, max_end_interval: int, min_start_interval: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys not yet exported whose validity ended by ``max_end_interval`` (the embargo), their ids,
        and whether each was revised when read.

        A key revised before its first export is exported as it stands now, its revision with it
        (``export_transaction`` is told which); one revised after this read goes out later, in ``revised_keys``."""
        return self._read_queue(
            "export_queue", "q.rolling_end <= ? AND q.rolling_start >= ?", [max_end_interval, min_start_interval]
        )

    def embargoed_keys(self, max_end_interval: int) -> tuple[int, int | None, int | None]:
        """Keys not exported because they are still valid after ``max_end_interval``: how many, and
        the first and last interval at which one's validity ends (what ``server export`` reports)."""
        with self._transaction(write=False) as cur:
            count, first, last = self._exec(
                cur,
                "SELECT COUNT(*), MIN(rolling_end), MAX(rolling_end) FROM export_queue WHERE rolling_end > ?",
                [max_end_interval],
            ).fetchone()
        return int(count), None if first is None else int(first), None if last is None else int(last)

    def pending_revisions(self, min_start_interval: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exported keys revised since, not yet in a batch's ``revised_keys``, with their new report type
        (ids and flags as ``pending_keys``).  A key still waiting for its first export is left out: its
        revision goes out with it."""
        return self._read_queue(
            "revision_queue",
            "q.rolling_start >= ? AND NOT EXISTS (SELECT 1 FROM export_queue e WHERE e.key_id = q.key_id)",
            [min_start_interval],
        )

    def _read_queue(self, queue: str, where: str, params: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(KEY_DTYPE keys, their ids, revised or not) of the rows ``q`` of ``queue`` that ``where`` selects.

        Their records come back end to end in one value (``_joined_records``): a million keys as
        tuples of Python objects took longer than the database's own scan.  A read-only transaction:
        SQLite holds off no upload of another process while it reads."""
        with self._transaction(write=False) as cur:
            count, data = self._joined_records(cur, f"FROM {queue} q WHERE {where}", params)
        if len(data) != count * QUEUE_RECORD.itemsize:
            raise ServerStorageError(f"reading {count} queued keys gave {len(data)} bytes: database damaged?")
        records = np.frombuffer(data, QUEUE_RECORD)
        keys = empty_keys(count)
        for name in KEY_DTYPE.names or ():
            keys[name] = records[name]
        return keys, records["key_id"].astype(np.int64), records["revised"].astype(bool)

    def _joined_records(self, cur: Any, source: str, params: Sequence[Any]) -> tuple[int, bytes]:
        """How many rows ``source`` (FROM and WHERE) selects, and their records end to end.  The bytes
        are joined as they are (as text, then cast back) only where text is stored as UTF-8, as SQLite
        would convert them from UTF-16; there in hex."""
        records = "CAST(group_concat(q.record, '') AS BLOB)" if self._utf8 else "group_concat(hex(q.record), '')"
        count, data = self._exec(cur, f"SELECT COUNT(*), {records} {source}", params).fetchone()
        return count, bytes(data or b"") if self._utf8 else bytes.fromhex(data or "")

    @contextmanager
    def export_transaction(self, key_ids: np.ndarray, revision_ids: np.ndarray) -> Iterator[list[BatchRecord]]:
        """Take the keys ``key_ids`` out of export_queue and the revisions ``revision_ids`` (ids of the
        keys whose revision the files carry) out of revision_queue, and record the batch files the
        caller puts in the list it is given, in one transaction committed when the block ends (write
        and sync the files inside it); if the block raises, nothing changes.  Ids ascending, distinct.

        A revision made after the keys were read is in no file and stays queued; keys uploaded
        meanwhile have other ids and stay queued.  Keys another export took out of the queue
        meanwhile (two exporters at once) would be published twice: then nothing is recorded
        (ServerStorageError) and the caller drops its files.  SQLite: all of it once the block has
        ended (a write transaction held while the files are written would hold off every upload)."""
        batches: list[BatchRecord] = []
        yield batches
        with self._transaction() as cur:
            self._take_out(cur, key_ids, revision_ids)
            self._record_batches(cur, batches)

    def _take_out(self, cur: Any, key_ids: np.ndarray, revision_ids: np.ndarray) -> None:
        for queue, ids in (("export_queue", key_ids), ("revision_queue", revision_ids)):
            if len(ids) and self._dequeue(cur, queue, ids) != len(ids):
                raise ServerStorageError(
                    f"another export published some of these {len(ids)} keys (from {queue}) meanwhile: nothing recorded"
                )

    def _record_batches(self, cur: Any, batches: Sequence[BatchRecord]) -> None:
        cur.executemany(self._sql(_INSERT_BATCH), [astuple(b) for b in batches])

    def _record_batch(self, cur: Any, record: BatchRecord) -> int:
        """Record one batch file; its id."""
        return int(self._exec(cur, _INSERT_BATCH + " RETURNING id", list(astuple(record))).fetchone()[0])

    def _dequeue(self, cur: Any, queue: str, ids: np.ndarray) -> int:
        """Delete ``ids`` (ascending, distinct) from ``queue``; how many were there.

        One range per run of consecutive ids (an upload's keys get consecutive ids, and so do the runs
        of keys between today's, still embargoed): a range holds no id but the run's, so nothing else
        is taken.  A million keys: 0.2-0.5 s, where finding each id from a JSON array took 1.0-1.1 s."""
        first, last = _runs(ids)
        cur.executemany(self._sql(f"DELETE FROM {queue} WHERE key_id BETWEEN ? AND ?"), zip(first.tolist(), last.tolist()))
        return int(cur.rowcount)

    def _mark_exported(self, cur: Any, table: str, column: str, batch_ids: np.ndarray, ids: np.ndarray) -> int:
        """Set ``column`` (venue reports' batch_id) of the rows ``ids`` (ascending) of ``table`` to ``batch_ids``,
        where it is still NULL; how many rows were set.

        One statement, one pass over the rows in the table's own order: each (id, batch) is packed into
        one integer of a JSON array that SQLite unpacks as it goes.  A million keys: ~1.4x faster than
        one prepared UPDATE per row, which was 2.4x faster than one ``IN (json_each)`` per batch (that
        visits the table once per batch, its ids scattered through it)."""
        if not len(ids):
            return 0
        shift = int(batch_ids.max()).bit_length()
        if int(ids.max()).bit_length() + shift > 62:  # not in an int64: one UPDATE per row instead
            cur.executemany(
                f"UPDATE {table} SET {column} = ? WHERE id = ? AND {column} IS NULL", zip(batch_ids.tolist(), ids.tolist())
            )
            return int(cur.rowcount)
        packed = (ids.astype(np.int64) << shift) | batch_ids.astype(np.int64)
        return int(self._exec(
            cur,
            f"UPDATE {table} SET {column} = j.value & ? FROM json_each(?) AS j"
            f" WHERE {table}.id = j.value >> ? AND {table}.{column} IS NULL",
            [(1 << shift) - 1, json.dumps(packed.tolist()), shift],
        ).rowcount)

    def pending_venue_reports(self, min_day: int) -> list[tuple[int, int, bytes]]:
        """(id, day, report) of every venue report not yet exported whose day is ``min_day`` or later."""
        with self._transaction() as cur:
            rows = self._exec(
                cur, "SELECT id, day, report FROM venue_reports WHERE batch_id IS NULL AND day >= ? ORDER BY id", [min_day]
            ).fetchall()
        return [(int(i), int(d), bytes(r)) for i, d, r in rows]

    def add_venue_batch(self, record: BatchRecord, report_ids: Sequence[int]) -> None:
        """Record a written venue-warning file and mark its reports exported, in one transaction; if
        another export published some of them meanwhile, nothing is recorded (ServerStorageError) and
        the caller drops its file, as ``add_batches`` does for keys."""
        with self._transaction() as cur:
            batch_id = self._record_batch(cur, record)
            ids = np.sort(np.asarray(report_ids, dtype=np.int64))
            if self._mark_exported(cur, "venue_reports", "batch_id", np.full(len(ids), batch_id), ids) != len(ids):
                raise ServerStorageError(
                    f"another export published some of these {len(ids)} check-ins meanwhile: nothing recorded"
                )

    def replace_batches(self, old_names: Sequence[str], new: Sequence[BatchRecord]) -> None:
        """Record the roll-up files ``new`` in place of the files ``old_names``, in one transaction (check-ins
        published in an old file count as published in the new file of their day).  If another exporter
        replaced some of them first, nothing is recorded (ServerStorageError) and the caller drops its files."""
        with self._transaction() as cur:
            new_ids: dict[int, int] = {}  # day start -> the first new file of that day
            for record in new:
                batch_id = self._record_batch(cur, record)
                new_ids.setdefault(record.start_timestamp, batch_id)
            replaced = 0
            for name in old_names:
                row = self._exec(cur, "SELECT id, start_timestamp FROM batches WHERE name = ?", [name]).fetchone()
                if row is None:
                    break
                if row[1] in new_ids:
                    self._exec(cur, "UPDATE venue_reports SET batch_id = ? WHERE batch_id = ?", [new_ids[row[1]], row[0]])
                replaced += self._exec(cur, "DELETE FROM batches WHERE id = ?", [row[0]]).rowcount
            if replaced != len(old_names):
                raise ServerStorageError(
                    f"another export replaced some of these {len(old_names)} files meanwhile: nothing recorded"
                )

    def padding_secret(self, day: int, new_secret: bytes | None = None) -> bytes | None:
        """The secret of export day ``day``'s fake keys (``padding.fake_keys``); ``new_secret`` becomes it
        if the day has none yet (two exporters at once get the same one).  None: the day has none."""
        with self._transaction(write=new_secret is not None) as cur:
            if new_secret is not None:
                self._exec(
                    cur, "INSERT INTO padding_secrets (day, secret) VALUES (?, ?) ON CONFLICT (day) DO NOTHING",
                    [day, new_secret],
                )
            row = self._exec(cur, "SELECT secret FROM padding_secrets WHERE day = ?", [day]).fetchone()
        return None if row is None else bytes(row[0])

    def note_signing_key(self, public_key: str, now: float) -> None:
        """Remember that the exporter signs with ``public_key`` (base64 DER) at ``now``."""
        with self._transaction() as cur:
            self._exec(
                cur,
                "INSERT INTO export_signing_keys (public_key, last_used) VALUES (?, ?)"
                " ON CONFLICT (public_key) DO UPDATE SET last_used = excluded.last_used",
                [public_key, now],
            )

    def signing_keys(self, since: float) -> list[str]:
        """The public keys (base64 DER) the exporter signed with at ``since`` or later, the latest first."""
        with self._transaction(write=False) as cur:
            rows = self._exec(
                cur, "SELECT public_key FROM export_signing_keys WHERE last_used >= ? ORDER BY last_used DESC", [since]
            ).fetchall()
        return [str(key) for (key,) in rows]

    def count_venue_reports(self) -> int:
        with self._transaction() as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM venue_reports").fetchone()[0])

    def claim_for_benchmark(self) -> None:
        """Mark the database as a benchmark's scratch, or refuse one that holds a key server's own data.

        The benchmark adds random keys and re-exports every key, forgetting the batches: on a real
        server's database it would publish nonsense and keep the real keys waiting from ever being
        published.  An empty database, or one an earlier benchmark marked, may be used."""
        with self._transaction() as cur:
            if self._exec(cur, "SELECT 1 FROM meta WHERE name = 'benchmark_scratch'").fetchone():
                return
            held = [
                table
                for table in ("exposure_keys", "codes", "batches", "venue_reports")
                if self._exec(cur, f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            ]
            if held:
                raise NotScratchDatabaseError(
                    f"the database holds a key server's data ({', '.join(held)}): the benchmark adds random keys and "
                    "re-exports every key, so it needs a scratch database (a new one, or one an earlier benchmark used)"
                )
            self._exec(cur, "INSERT INTO meta (name, value) VALUES ('benchmark_scratch', '1')")

    def release_from_benchmark(self) -> None:
        """A key server's command uses this database: an earlier benchmark's mark goes, so that a later
        benchmark refuses it once it holds the server's data (marked, it was taken as scratch for good)."""
        with self._transaction(write=False) as cur:
            marked = self._exec(cur, "SELECT 1 FROM meta WHERE name = 'benchmark_scratch'").fetchone()
        if marked:
            with self._transaction() as cur:
                self._exec(cur, "DELETE FROM meta WHERE name = 'benchmark_scratch'")

    def reset_exported(self) -> None:
        """Put every key back in the export queue and forget the batches (benchmarks only)."""
        with self._transaction() as cur:
            self._exec(cur, "DELETE FROM export_queue")
            self._exec(cur, "DELETE FROM revision_queue")
            self._queue_keys(cur, "export_queue", "1 = 1")
            self._queue_keys(cur, "revision_queue", "k.revised_at IS NOT NULL")
            self._exec(cur, "DELETE FROM batches")

    def batches(self, since: float = 0.0) -> list[BatchRecord]:
        with self._transaction(write=False) as cur:
            rows = self._exec(
                cur,
                "SELECT name, created_at, start_timestamp, end_timestamp, batch_num, batch_size, num_keys, padding_keys"
                " FROM batches WHERE end_timestamp >= ? ORDER BY id",
                [since],
            ).fetchall()
        return [BatchRecord(*r) for r in rows]

    def purge(self, before_interval: int, records_before: float, batches_before: float | None = None) -> int:
        """Drop keys that ended before ``before_interval``, and failure records and codes (used or
        not) that expired before ``records_before``: a code past its expiry opens nothing, and the
        table would otherwise grow for ever and make new codes collide with old ones.  With
        ``batches_before``, the records of export files whose day ended before it (their files gone)."""
        with self._transaction() as cur:
            # the expired keys' ids by their index (schema 8), then out of the queues by id (keys never exported:
            # a server off for weeks): PostgreSQL took a queue just emptied by an export for empty and walked
            # all its dead entries (1M: 0.1-0.3 s), when it would look up no expired key
            expired = self._exec(
                cur, "SELECT id FROM exposure_keys WHERE rolling_start + rolling_period < ? ORDER BY id", [before_interval]
            ).fetchall()
            if expired:
                for queue in ("export_queue", "revision_queue"):
                    self._dequeue(cur, queue, np.array([i for (i,) in expired], np.int64))
            n = self._exec(
                cur, "DELETE FROM exposure_keys WHERE rolling_start + rolling_period < ?", [before_interval]
            ).rowcount
            self._exec(cur, "DELETE FROM venue_reports WHERE day < ?", [before_interval // ROLLING_PERIOD])
            if batches_before is not None:  # (a file whose check-ins are still kept stays recorded with them)
                self._exec(
                    cur,
                    "DELETE FROM batches WHERE end_timestamp < ?"
                    " AND id NOT IN (SELECT batch_id FROM venue_reports WHERE batch_id IS NOT NULL)",
                    [batches_before],
                )
            # an export day's files hold keys of that day at the latest, gone 14 days on: its secret a day after
            self._exec(cur, "DELETE FROM padding_secrets WHERE day < ?", [before_interval // ROLLING_PERIOD - 2])
            # and a signing key once the last file it signed has left (no roll-up reads that file again)
            self._exec(cur, "DELETE FROM export_signing_keys WHERE last_used < ?",
                       [(before_interval // ROLLING_PERIOD - 2) * ROLLING_PERIOD * INTERVAL_SECONDS])
            self._exec(cur, "DELETE FROM code_tries WHERE window_start < ?", [records_before])
            self._exec(cur, "DELETE FROM codes WHERE expires_at < ?", [records_before])
        return max(n, 0)


def _runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last id of each run of consecutive integers in ``ids`` (ascending, distinct)."""
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    return ids[np.r_[0, breaks]], ids[np.r_[breaks - 1, len(ids) - 1]]


def without_password(message: str, dsn: str) -> str:
    """``message`` with the password of ``dsn`` masked: psycopg quotes a malformed URL whole in its
    error ("... in URI: "postgresql://u:secret@[bad/x""), which would put it in the journal."""
    found = re.search(r"://[^/@:]*:([^@]*)@", dsn) or re.search(r"\bpassword\s*=\s*'?([^'\s]+)", dsn)
    if found and found.group(1):
        message = message.replace(found.group(1), "***")
    return re.sub(r"(\bpassword\s*=\s*)'?[^'\s]+'?", r"\1***", message)


#: What PostgreSQL (or libpq) says when the URL's user, password or database is wrong: no retry fixes it.
_LOGIN_REFUSALS = re.compile(
    r"(password authentication failed for user \S+|no password supplied|role \S+ does not exist|database \S+ does not"
    r" exist|(?:peer|ident) authentication failed for user \S+|no pg_hba\.conf entry for .*"
    r"|permission denied for database \S+)",
    re.IGNORECASE,
)


def login_refusal(message: str) -> str | None:
    """The part of a connection error that says the login itself was refused (wrong user, password,
    database, or pg_hba.conf), else None: a server down, starting up or full is worth retrying."""
    found = _LOGIN_REFUSALS.search(message)
    return found.group(1) if found else None


class SQLiteStorage(Storage):
    """The embedded default: one SQLite file in WAL mode."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():  # a directory, FIFO or device: SQLite's "disk I/O error"
            raise InputError(f"key server database {self.path} is not a regular file: give a database file")
        if not create and not self.path.exists():
            # a typo in --server-db must not hand out codes (or export) from a new, empty database nobody serves
            raise InputError(f"key server database {self.path} does not exist (the server creates it on its first"
                             " start; add --create-db to create it here)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # 0600 before SQLite opens it (its -wal/-shm take the same mode): the code hashes are of
            # 8 digits, so anyone who can read this file can recover the codes still unused.
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
                os.chmod(self.path, 0o600)  # the mode above is filtered by the umask
            elif self.path.is_file() and stat.S_IMODE(self.path.stat().st_mode) & 0o077:
                log.warning("key server database %s is readable by others; chmod 600 it", self.path)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("PRAGMA foreign_keys=ON")
            # 128 MiB of page cache at most (SQLite's default is 2 MiB): an export reads, then marks, a million
            # rows; with the table and the queue's index kept in cache between the passes it took 3.4 s, not 4.4
            self._conn.execute("PRAGMA cache_size=-131072")
            self._utf8 = self._conn.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"
            tables = sorted(row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            if tables and "meta" not in tables:
                # another program's file, or a node's sighting store: the server's tables added to it (as
                # `server status --server-db ~/.local/share/bluezone/bluezone.db` did) mix two databases for good
                self._conn.close()
                raise InputError(
                    f"{self.path} is not a key server database (it has tables {', '.join(tables[:3])}): check --server-db"
                )
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                # the operator named the wrong file: a usage error (exit 2, which systemd does not restart)
                raise InputError(f"{self.path} is not a key server database (SQLite: {exc}): check --server-db") from None
            raise ServerStorageError(f"cannot open key server database {self.path}: {exc}") from None
        self._create_schema()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                # IMMEDIATE: the write lock from the start, so two writers never meet half way (SQLITE_BUSY
                # deadlocks); a reader in WAL mode reads a snapshot and needs no lock writers wait for
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()
            finally:
                cur.close()

    def close(self) -> None:
        # once a transaction under way has ended: a connection closed under another thread's statement
        # crashed the process (a server stopped while a request or an export still ran)
        with self._lock:
            self._conn.close()


class PostgresStorage(Storage):
    """PostgreSQL through psycopg 3: the same SQL with %s placeholders."""

    _param = "%s"
    _serial = "BIGSERIAL"
    _int64 = "BIGINT"
    _blob = "BYTEA"

    def _joined_records(self, cur: Any, source: str, params: Sequence[Any]) -> tuple[int, bytes]:
        # binary=True: the bytea as it is, not as hex text twice its size to parse
        sql = f"SELECT COUNT(*), string_agg(q.record, ''::bytea) {source}"
        count, data = cur.execute(self._sql(sql), tuple(params), binary=True).fetchone()
        return count, bytes(data or b"")

    def _mark_exported(self, cur: Any, table: str, column: str, batch_ids: np.ndarray, ids: np.ndarray) -> int:
        """One ``= ANY`` statement per batch: PostgreSQL takes an id array as one parameter."""
        return sum(
            int(self._exec(
                cur, f"UPDATE {table} SET {column} = ? WHERE id = ANY(?) AND {column} IS NULL",
                [batch, ids[batch_ids == batch].tolist()],
            ).rowcount)
            for batch in np.unique(batch_ids).tolist()
        )

    def _dequeue(self, cur: Any, queue: str, ids: np.ndarray) -> int:
        """As SQLite's, the runs as two arrays in one statement (a million ids: 0.7 s, against 3.9 s
        for ``key_id = ANY(ids)``).  Uploads committed while the export ran have other ids and stay,
        whatever order their ids were drawn in."""
        first, last = _runs(ids)
        return int(self._exec(
            cur,
            f"DELETE FROM {queue} q USING unnest(?::int8[], ?::int8[]) AS r(lo, hi) WHERE q.key_id BETWEEN r.lo AND r.hi",
            [first.tolist(), last.tolist()],
        ).rowcount)

    @contextmanager
    def export_transaction(self, key_ids: np.ndarray, revision_ids: np.ndarray) -> Iterator[list[BatchRecord]]:
        """As SQLite's, but the keys leave the queues while the caller writes the files: the deletes
        run in the server on a connection of their own (a thread waits for them), uncommitted until
        the files are recorded.  The server's CPU works beside the signing instead of after it (1M
        keys: 0.35-0.5 s of deletes and their WAL).  Until the commit the rows taken stay locked:
        another exporter taking the same keys waits, then finds them gone; a revision of one of them
        waits too (then goes out in a later file's revised_keys)."""
        from concurrent.futures import ThreadPoolExecutor, wait

        conn = self._connect()  # not the storage's: uploads through it go on meanwhile
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="bluezone-export") as pool:
                cur = conn.cursor()
                taking = pool.submit(self._take_out, cur, key_ids, revision_ids)
                batches: list[BatchRecord] = []
                try:
                    yield batches
                except BaseException:
                    wait([taking])  # then the connection closes uncommitted: nothing taken
                    raise
                taking.result()
                self._record_batches(cur, batches)
                conn.commit()
        finally:
            conn.close()

    def _lock_name(self, cur: Any, name: str) -> None:
        # two server processes would each count what the other is doing as not done yet
        self._exec(cur, "SELECT pg_advisory_xact_lock(hashtext(?))", [name])

    def _try_lock_name(self, cur: Any, name: str) -> bool:
        return bool(self._exec(cur, "SELECT pg_try_advisory_xact_lock(hashtext(?))", [name]).fetchone()[0])

    def _lock_key_inserts(self, cur: Any) -> None:
        # SHARE ROW EXCLUSIVE waits for open inserts and holds off new ones, reads go on
        self._exec(cur, "LOCK TABLE exposure_keys IN SHARE ROW EXCLUSIVE MODE")

    def __init__(self, dsn: str, create: bool = True) -> None:
        super().__init__()
        self._dsn = dsn
        self._conn = self._connect(autocommit=True)  # transaction() below is BEGIN ... COMMIT
        if not create:
            with self._transaction() as cur:
                found = self._exec(cur, "SELECT to_regclass('meta')").fetchone()[0]
            if found is None:
                self._conn.close()
                raise InputError("this PostgreSQL database has no key server tables (the server creates them on its"
                                 " first start; add --create-db to create them here)")
        self._create_schema()

    def _connect(self, autocommit: bool = False) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            if exc.name is None or exc.name.split(".")[0] != "psycopg":
                raise
            # a usage error (exit 2): exit 1 has systemd restart the server every 5 s for ever
            raise ConfigError("PostgreSQL needs psycopg: pip install 'bluezone[postgres]'") from None
        try:
            return psycopg.connect(self._dsn, autocommit=autocommit)
        except psycopg.Error as exc:
            everything = without_password(str(exc).strip(), self._dsn)
            message = everything.splitlines()[0]
            if isinstance(exc, psycopg.ProgrammingError):  # the URL itself: a usage error, not an outage
                raise InputError(f"not a usable PostgreSQL URL: {message}") from None
            # every line: with several hosts (localhost is ::1, then 127.0.0.1) the refusal is a later attempt's
            refusal = login_refusal(everything)
            if refusal:  # exit 2: systemd restarted the server every 5 s for ever on a wrong password
                raise ConfigError(f"PostgreSQL refused the login: {refusal}: check the user, password and database"
                                  " name in --server-db") from None
            raise ServerStorageError(f"cannot connect to PostgreSQL: {message}") from None

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        import psycopg

        with self._lock, ExitStack() as stack:
            try:
                stack.enter_context(self._conn.transaction())
            except psycopg.OperationalError:
                # the connection was lost (PostgreSQL restarted or failed over) before this transaction began:
                # nothing of it ran, so it begins again on a new one (each process answered 500 for ever)
                self._conn.close()
                self._conn = self._connect(autocommit=True)
                stack.enter_context(self._conn.transaction())
            yield stack.enter_context(self._conn.cursor())

    def close(self) -> None:
        self._conn.close()


def open_storage(db: str | Path, create: bool = True) -> Storage:
    """``postgresql://...`` (or ``postgres://``) opens PostgreSQL; anything else is a SQLite file path,
    created (with its directory) only if ``create``."""
    text = str(db)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(text, create=create)
    if text.lower().startswith(("postgresql:", "postgres:")):  # 'postgresql:/db' was taken for a file of that name
        raise InputError(
            f"{without_password(repr(text), text)} is not a PostgreSQL URL: give postgresql://user@host/dbname"
        )
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise InputError(
            f"unsupported database URL {without_password(repr(text), text)}: give a SQLite file path or postgresql://..."
        )
    return SQLiteStorage(text, create=create)
