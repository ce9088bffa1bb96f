"""The key server database's tables: the first release's, then one migration per schema version,
applied in order in one transaction when a database is opened (a new one is created at version 1
and brought up the same way, so every database takes the same path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluezone.errors import NewerSchemaError
from bluezone.server.storage.database import PING_SQL
from bluezone.server.storage.queues import ExportQueues

#: What a queue record's ``revised`` held before schema 17: whether the key stood revised (1) or not (0).
QUEUED_REVISED_FLAG = "CASE WHEN k.revised_at IS NULL THEN 0 ELSE 1 END"

SCHEMA_VERSION = 18

#: The first release's tables (schema 1), created in a new database before the migrations below.
FIRST_TABLES = [
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
MIGRATIONS: dict[int, list[str | Callable[[ExportQueues, Any], None]]] = {
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
        lambda storage, cur: storage._queue_keys(
            cur, "export_queue_9", "k.id IN (SELECT key_id FROM export_queue)", revision=QUEUED_REVISED_FLAG),
        lambda storage, cur: storage._queue_keys(
            cur, "revision_queue_9", "k.id IN (SELECT key_id FROM revision_queue)", revision=QUEUED_REVISED_FLAG),
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
    14: [  # each file's SHA-256 as written: a roll-up reads only files still as written (a leaked old key and
        # write access to the export directory could otherwise have forged keys signed again with the new key)
        "ALTER TABLE batches ADD COLUMN sha256 TEXT",
    ],
    15: [  # a code revoked after its upload withholds what it brought that is not published yet (`server
        # revoke-code`): the code (its hash) that first stored each key and check-in, and which used codes
        # stored it (those used before this version did not: revoking one can say nothing of its keys)
        "ALTER TABLE exposure_keys ADD COLUMN code_hash TEXT",
        "CREATE INDEX exposure_keys_code ON exposure_keys (code_hash) WHERE code_hash IS NOT NULL",
        "ALTER TABLE venue_reports ADD COLUMN code_hash TEXT",
        "CREATE INDEX venue_reports_code ON venue_reports (code_hash) WHERE code_hash IS NOT NULL",
        "ALTER TABLE codes ADD COLUMN uploads_kept INTEGER NOT NULL DEFAULT 1",
        "UPDATE codes SET uploads_kept = 0 WHERE used_at IS NOT NULL",
    ],
    16: [  # a revision (likely -> confirmed or revoked) made under a code revoked later is taken back with
        # it: the code (its hash) that revised each key.  A revision made before is linked to the code used
        # at the same time to the bit (one publish's clock reading); left unlinked where two codes share it
        "ALTER TABLE exposure_keys ADD COLUMN revised_code_hash TEXT",
        "CREATE INDEX exposure_keys_revised_code ON exposure_keys (revised_code_hash) WHERE revised_code_hash IS NOT NULL",
        "UPDATE exposure_keys SET revised_code_hash = u.code_hash FROM (SELECT used_at, MIN(code_hash) AS code_hash"
        " FROM codes WHERE used_at IS NOT NULL GROUP BY used_at HAVING COUNT(*) = 1) AS u"
        " WHERE exposure_keys.revised_at = u.used_at",
    ],
    17: [  # each revision of a key kept (recursive -> likely -> confirmed: an F1 diagnosed, then tested), so that
        # revoking a code undoes exactly its own revision (the key stands as the one before it) and an export
        # takes out of revision_queue the revisions its files carried, by their own ids (a later revision
        # queued while an export ran had the same key id and was dropped).  exposure_keys.revised_* stay: the
        # revision the key stands as.  Ids never reused (AUTOINCREMENT): an export's read names a revision.
        """CREATE TABLE key_revisions (
            id {unreused_id},
            key_id {int64} NOT NULL,
            report_type INTEGER NOT NULL,
            days_since_onset INTEGER,
            revised_at DOUBLE PRECISION NOT NULL,
            code_hash TEXT,
            carried INTEGER NOT NULL DEFAULT 0)""",
        lambda storage, cur: _link_by_type(storage, cur),
        # a revision still queued is one no file carried yet (queued at the revision, out with the file, or with
        # its key's first file); EXISTS, each a look-up in the queue's key: PostgreSQL ran `id IN (SELECT ...)`
        # as a scan of both queues for every revised key once their statistics said many rows (300,000 keys,
        # 100,000 revised: 25 s of a 28 s migration, srv20)
        "INSERT INTO key_revisions (key_id, report_type, days_since_onset, revised_at, code_hash, carried)"
        " SELECT id, revised_report_type, revised_days_since_onset, revised_at, revised_code_hash,"
        " CASE WHEN EXISTS (SELECT 1 FROM revision_queue q WHERE q.key_id = exposure_keys.id)"
        " OR EXISTS (SELECT 1 FROM export_queue e WHERE e.key_id = exposure_keys.id) THEN 0 ELSE 1 END"
        " FROM exposure_keys WHERE revised_at IS NOT NULL ORDER BY id",
        "CREATE INDEX key_revisions_key ON key_revisions (key_id)",  # built once filled (1M keys, 300k revised: 2.8 -> 1.3 s)
        "CREATE INDEX key_revisions_code ON key_revisions (code_hash) WHERE code_hash IS NOT NULL",
        """CREATE TABLE revision_queue_17 (
            revision_id {int64} PRIMARY KEY,
            key_id {int64} NOT NULL,
            rolling_start INTEGER NOT NULL,
            rolling_end INTEGER NOT NULL,
            record {blob} NOT NULL CHECK (length(record) = 48))""",
        lambda storage, cur: storage._queue_keys(cur, "revision_queue_17", "k.id IN (SELECT key_id FROM revision_queue)"),
        lambda storage, cur: _record_revision_ids(storage, cur),
        "DROP TABLE revision_queue",
        "ALTER TABLE revision_queue_17 RENAME TO revision_queue",
        "CREATE INDEX revision_queue_key ON revision_queue (key_id)",
    ],
    18: [  # each key file's fake keys and fake revisions with its record: an export of revisions pads them with
        # revisions of earlier fakes, which it found by reading back and verifying every file of their days (about
        # half of such an export, srv20).  Files recorded before keep NULL and are still read (14 days at most)
        "ALTER TABLE batches ADD COLUMN fake_keys {blob}",
        "ALTER TABLE batches ADD COLUMN fake_revisions {blob}",
    ],
}


def _link_by_type(storage: ExportQueues, cur: Any) -> None:
    """A revision schema 16 left unlinked (two codes used at its instant) linked to the one code of its type
    used then, if only one (the revising code's type is the revision's: confirmed, likely, negative -> revoked).
    Looked for first: the join over every key (1M: 3 s at load 6) only where some are unlinked."""
    if storage._exec(
        cur, "SELECT 1 FROM exposure_keys WHERE revised_code_hash IS NULL AND revised_at IS NOT NULL LIMIT 1"
    ).fetchone():
        storage._exec(
            cur,
            "UPDATE exposure_keys SET revised_code_hash = u.code_hash FROM (SELECT used_at, report_type,"
            " MIN(code_hash) AS code_hash FROM codes WHERE used_at IS NOT NULL GROUP BY used_at, report_type"
            " HAVING COUNT(*) = 1) AS u WHERE exposure_keys.revised_code_hash IS NULL"
            " AND exposure_keys.revised_at = u.used_at AND exposure_keys.revised_report_type = u.report_type",
        )


def _record_revision_ids(storage: ExportQueues, cur: Any) -> None:
    """Keys revised while waiting for their first file queued again, their records naming the revision,
    which waits in the new revision_queue too (the export takes it out with the key)."""
    revised = [int(i) for (i,) in storage._exec(
        cur, "DELETE FROM export_queue WHERE EXISTS (SELECT 1 FROM key_revisions r WHERE r.key_id = export_queue.key_id)"
        " RETURNING key_id",
    ).fetchall()]
    for start in range(0, len(revised), 10_000):  # (SQLite takes up to 32,766 parameters a statement)
        part = revised[start : start + 10_000]
        where = f"k.id IN ({', '.join('?' * len(part))})"
        storage._queue_keys(cur, "export_queue", where, part)
        storage._queue_keys(cur, "revision_queue_17", where, part)


class Schema(ExportQueues):
    """Creates or upgrades the tables on open (migration 9 fills the export queues in Python)."""

    def _create_schema(self) -> None:
        with self._transaction() as cur:
            # several server processes started at once (workers, or every one after an upgrade) would each
            # create or migrate the tables, and all but one fail on what the first made
            self._lock_name(cur, "schema")
            self._exec(cur, FIRST_TABLES[0])
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is None:  # a new database: the first release's tables, then every migration
                for stmt in FIRST_TABLES[1:]:
                    self._exec(cur, stmt.format(serial=self._serial, blob=self._blob))
                self._exec(cur, "INSERT INTO meta (name, value) VALUES ('schema_version', '1')")
            version = 1 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(
                    f"key server database has schema version {version}, newer than this bluezone ({SCHEMA_VERSION}):"
                    " upgrade bluezone here too, or restore the backup taken before the upgrade"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for change in MIGRATIONS[step]:
                    if callable(change):  # a step SQL alone cannot take (records built in Python)
                        change(self, cur)
                    else:
                        self._exec(cur, change.format(
                            serial=self._serial, blob=self._blob, int64=self._int64, unreused_id=self._unreused_id))
                self._exec(cur, "UPDATE meta SET value = ? WHERE name = 'schema_version'", [str(step)])

    def ping(self, own_connection: bool = False) -> None:
        """Read one row (the schema version): raises if the database cannot answer (readiness, /readyz).
        On PostgreSQL a lost connection is made again first, as for any request.  ``own_connection``: on a
        connection of its own, not behind this object's work under way (the process's own export), kept for
        the next such check; a check without it closes that connection (the export has ended)."""
        if own_connection:
            self._ping_apart()
            return
        self._end_apart()
        with self._transaction(write=False) as cur:
            self._exec(cur, PING_SQL).fetchone()
