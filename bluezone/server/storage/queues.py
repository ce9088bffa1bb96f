"""The export queues: each key waiting for its first file (export_queue) or its revision waiting for a
batch's revised_keys (revision_queue, by revision: schema 17), as one packed 48-byte record, so an export
reads one column of one table and takes what it published out by runs of ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from bluezone.errors import ServerStorageError
from bluezone.keyformat.keys import KEY_DTYPE, NO_DAYS_SINCE_ONSET, empty_keys
from bluezone.server.storage.batches import BatchRecord, ExportBookkeeping

#: A queue row's record (schema 9): the key as its file carries it and its id, little-endian.  ``revised``:
#: the id of the revision (in key_revisions) its type and onset are, 0 for none (schema 17; 1 before), so
#: that an export takes out of revision_queue exactly the revisions its files carry.  Another layout needs a
#: migration of its own.
QUEUE_RECORD = np.dtype(
    [("key", "V16"), ("rolling_start", "<i4"), ("rolling_period", "<i4"), ("transmission_risk", "<i4"),
     ("report_type", "<i4"), ("days_since_onset", "<i4"), ("revised", "<i4"), ("key_id", "<i8")]
)
assert QUEUE_RECORD.itemsize == 48  # the queues' CHECK

log = logging.getLogger(__name__)


def queue_rows(ids: np.ndarray, keys: np.ndarray, revised: np.ndarray | int) -> list[tuple[int, int, int, bytes]]:
    """Rows (key_id, rolling_start, rolling_end, record) of a queue for the KEY_DTYPE ``keys`` of ``ids``
    (``revised``: their revisions' ids, 0 for none)."""
    records = np.zeros(len(keys), QUEUE_RECORD)
    for name in KEY_DTYPE.names or ():
        records[name] = keys[name]
    records["revised"], records["key_id"] = revised, ids
    ends = keys["rolling_start"].astype(np.int64) + keys["rolling_period"]
    blobs = np.frombuffer(records.tobytes(), f"V{QUEUE_RECORD.itemsize}")
    return list(zip(np.asarray(ids, np.int64).tolist(), keys["rolling_start"].tolist(), ends.tolist(), map(bytes, blobs)))


def queue_revision_sql(queue: str = "revision_queue") -> str:
    """A revision's row into ``queue`` (revision id, then ``queue_rows``' row); one already there stays."""
    return (f"INSERT INTO {queue} (revision_id, key_id, rolling_start, rolling_end, record) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (revision_id) DO NOTHING")


def id_runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last id of each run of consecutive integers in ``ids`` (ascending, distinct)."""
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    return ids[np.r_[0, breaks]], ids[np.r_[breaks - 1, len(ids) - 1]]


#: A revision ``r`` that repeats an earlier one of its key: a vouch (``Uploads._vouch``: the keys uploaded again
#: under another code as they stood; a revision proper always changes the type).
VOUCH = "EXISTS (SELECT 1 FROM key_revisions e WHERE e.key_id = r.key_id AND e.id < r.id AND e.report_type = r.report_type)"

#: The id of the revision a key (``k``) stands as, 0 for none: its latest in key_revisions (schema 17) that is not
#: a vouch (a vouch stood as queued the key a second time beside the revision it repeats: one file carried the key
#: twice, or a later one "revised" it to the type it already had, which tells a real key from the fakes).
#: ``+ 0``: PostgreSQL otherwise reads MAX(r.id) as the first row of the primary key's index, backwards, whose
#: key_id matches, whenever key_revisions has no statistics yet (as in schema 17's migration, which fills it and
#: queues from it in one transaction): every revision above the key's was read, for each key queued (20,000
#: revisions, 2,000 queued: 5.9 s; 30,000 and 3,000: the migration 37 s, quadratic).  Now its key's index.
STANDING_REVISION = (
    "CASE WHEN k.revised_at IS NULL THEN 0 ELSE (SELECT MAX(r.id + 0) FROM key_revisions r WHERE r.key_id = k.id"
    f" AND NOT {VOUCH}) END"
)

def carriable(queue: str = "q") -> str:
    """A ``queue`` row of revision_queue a file may carry: its revision is still kept (no revocation undid it)
    and no file carried it yet.  Any other row is stale: read, its ``carried = 0`` count never matched, and
    every export recorded nothing until its key aged out (``ExportQueues.settle_revision_queue``)."""
    return f"EXISTS (SELECT 1 FROM key_revisions c WHERE c.id = {queue}.revision_id AND c.carried = 0)"


#: Why an export records nothing: ``{}`` keys read, taken out of ``{}``.
_LOST = (
    "another export published, or a code revocation withheld, some of these {} keys (from {}) meanwhile:"
    " nothing recorded (the next export writes the rest)"
)


class ExportQueues(ExportBookkeeping):
    """Keys and revisions waiting for export, read in bulk and taken out with the files' records."""

    def _queue_keys(
        self, cur: Any, queue: str, where: str, params: Sequence[Any] = (), *, revision: str = STANDING_REVISION
    ) -> None:
        """Put the keys (``k``) ``where`` selects into ``queue`` as they stand (revised or not).
        ``revision``: what the records' ``revised`` holds (the migrations before schema 17: a flag).
        revision_queue's rows are keyed by their revision (schema 17), each once."""
        rows = self._exec(
            cur,
            "SELECT k.id, k.key_data, k.rolling_start, k.rolling_period, k.transmission_risk,"
            " COALESCE(k.revised_report_type, k.report_type),"
            " COALESCE(CASE WHEN k.revised_at IS NULL THEN k.days_since_onset ELSE k.revised_days_since_onset END,"
            f" {int(NO_DAYS_SINCE_ONSET)}), {revision}"
            f" FROM exposure_keys k WHERE {where} ORDER BY k.id",
            params,
        ).fetchall()
        keys = empty_keys(len(rows))
        for field, column in zip(KEY_DTYPE.names or (), list(zip(*rows))[1:7] if rows else ()):
            keys[field] = [bytes(v) for v in column] if field == "key" else column
        ids, revised = np.array([r[0] for r in rows], np.int64), np.array([r[7] for r in rows], np.int64)
        queued = queue_rows(ids, keys, revised)
        if queue.startswith("revision_queue") and revision is STANDING_REVISION:
            self._queue_revisions(cur, queue, queued, revised.tolist())
            return
        cur.executemany(
            self._sql(f"INSERT INTO {queue} (key_id, rolling_start, rolling_end, record) VALUES (?, ?, ?, ?)"), queued
        )

    def _queue_revisions(
        self, cur: Any, queue: str, queued: list[tuple[int, int, int, bytes]], revision_ids: list[int]
    ) -> None:
        """Rows of ``queue_rows`` into revision_queue under their revisions' ids (one already there stays)."""
        cur.executemany(
            self._sql(queue_revision_sql(queue)), [(revision, *row) for revision, row in zip(revision_ids, queued)]
        )

    def pending_keys(self, max_end_interval: int, min_start_interval: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys not yet exported whose validity ended by ``max_end_interval`` (the embargo), their ids,
        and the id of the revision each stood as when read (0: none).

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
        (key ids and revision ids as ``pending_keys``).  A key still waiting for its first export is left
        out: its revision goes out with it, and so is a stale row (``carriable``): no file carries it twice,
        nor one undone."""
        return self._read_queue(
            "revision_queue",
            "q.rolling_start >= ? AND NOT EXISTS (SELECT 1 FROM export_queue e WHERE e.key_id = q.key_id)"
            f" AND {carriable()}",
            [min_start_interval],
        )

    def published_onsets(self, key_ids: Sequence[int]) -> dict[bytes, int]:
        """The days since onset the files last published for each of ``key_ids`` (exported keys): that of its
        latest revision a file carried (with its key's first file, or in a batch's revised_keys), else as
        uploaded; NO_DAYS_SINCE_ONSET where unknown.  How far a revision now moves it (padding)."""
        onsets: dict[bytes, int] = {}
        for start in range(0, len(key_ids), 10_000):  # (SQLite takes up to 32,766 parameters a statement)
            part = [int(i) for i in key_ids[start : start + 10_000]]
            with self._transaction(write=False) as cur:
                rows = self._exec(
                    cur,
                    "SELECT k.key_data, k.days_since_onset, r.id, r.days_since_onset FROM exposure_keys k"  # (+ 0: STANDING_REVISION)
                    " LEFT JOIN key_revisions r ON r.id = (SELECT MAX(c.id + 0) FROM key_revisions c WHERE c.key_id = k.id"
                    f" AND c.carried = 1) WHERE k.id IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
            for key, uploaded, revision, revised in rows:
                onset = uploaded if revision is None else revised
                onsets[bytes(key)] = int(NO_DAYS_SINCE_ONSET) if onset is None else int(onset)
        return onsets

    def stale_revisions(self) -> tuple[int, int]:
        """Rows of revision_queue no file may carry (``carriable``) waiting now, and how many exports dropped
        so far (``settle_revision_queue``): what ``server status`` reports."""
        with self._transaction(write=False) as cur:
            (waiting,) = self._exec(cur, f"SELECT COUNT(*) FROM revision_queue q WHERE NOT {carriable()}").fetchone()
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'revisions_dropped'").fetchone()
        return int(waiting), 0 if row is None else int(row[0])

    def settle_revision_queue(self) -> tuple[int, int]:
        """Drop the rows of revision_queue no file may carry (``carriable``: one a file carried already, one a
        revocation undid), and queue their keys as they stand where no file carried that revision yet and
        nothing else of theirs waits; (rows dropped, keys queued again).  Read first, written only if any.

        No path known since 26ea10c leaves such a row, but one did, and each stopped all publishing: the
        export skips them (``pending_revisions``) and settles them here, counted in meta for ``server status``."""
        with self._transaction(write=False) as cur:
            stale = [int(i) for (i,) in self._exec(
                cur, f"SELECT q.revision_id FROM revision_queue q WHERE NOT {carriable()}"
            ).fetchall()]
        if not stale:
            return 0, 0
        first, last = id_runs(np.unique(np.array(stale, np.int64)))
        with self._transaction() as cur:
            # their keys locked first (PostgreSQL), as a revocation takes them (keys, then queue rows): a revocation
            # deleting a key's queue rows while this held one and waited for the key deadlocked with it
            self._exec(cur, "SELECT k.id FROM exposure_keys k WHERE k.id IN (SELECT q.key_id FROM revision_queue q"
                            f" WHERE NOT {carriable()}){self._lock_keys}").fetchall()
            dropped = [int(k) for a, b in zip(first.tolist(), last.tolist()) for (k,) in self._exec(
                cur, "DELETE FROM revision_queue WHERE revision_id BETWEEN ? AND ?"  # judged again: an export or
                f" AND NOT {carriable('revision_queue')} RETURNING key_id", [a, b]).fetchall()]  # revocation came first?
            keys, requeued = sorted(set(dropped)), 0
            for start in range(0, len(keys), 10_000):  # (SQLite takes up to 32,766 parameters a statement)
                part = keys[start : start + 10_000]
                marks = ", ".join("?" * len(part))
                self._exec(cur, f"SELECT k.id FROM exposure_keys k WHERE k.id IN ({marks}){self._lock_keys}", part).fetchall()
                standing = (  # as it stands, if no file carried that and nothing else of the key waits
                    f"k.id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM export_queue e WHERE e.key_id = k.id)"
                    " AND NOT EXISTS (SELECT 1 FROM revision_queue q WHERE q.key_id = k.id)"
                    f" AND EXISTS (SELECT 1 FROM key_revisions s WHERE s.id = {STANDING_REVISION} AND s.carried = 0)"
                )
                requeued += int(self._exec(cur, f"SELECT COUNT(*) FROM exposure_keys k WHERE {standing}", part).fetchone()[0])
                self._queue_keys(cur, "revision_queue", standing, part)
            if dropped:
                self._add_to_meta(cur, "revisions_dropped", len(dropped))
        return len(dropped), requeued

    def _read_queue(self, queue: str, where: str, params: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(KEY_DTYPE keys, their ids, their revisions' ids) of the rows ``q`` of ``queue`` that ``where`` selects.

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
        return keys, records["key_id"].astype(np.int64), records["revised"].astype(np.int64)

    def _joined_records(self, cur: Any, source: str, params: Sequence[Any]) -> tuple[int, bytes]:
        """How many rows ``source`` (FROM and WHERE) selects, and their records end to end.  The bytes
        are joined as they are (as text, then cast back) only where text is stored as UTF-8, as SQLite
        would convert them from UTF-16; there in hex."""
        records = "CAST(group_concat(q.record, '') AS BLOB)" if self._utf8 else "group_concat(hex(q.record), '')"
        count, data = self._exec(cur, f"SELECT COUNT(*), {records} {source}", params).fetchone()
        return count, bytes(data or b"") if self._utf8 else bytes.fromhex(data or "")

    def keys_withheld(self) -> int:
        """How many times a code's revocation has deleted keys waiting for export: read before the keys an
        export takes, and again when it takes them out (``export_transaction``'s ``withheld``)."""
        with self._transaction(write=False) as cur:
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'keys_withheld'").fetchone()
        return 0 if row is None else int(row[0])

    def _count_withheld(self, cur: Any) -> None:
        """A revocation deleted waiting keys: the exports that read them before find it out."""
        self._add_to_meta(cur, "keys_withheld", 1)

    def _add_to_meta(self, cur: Any, name: str, count: int) -> None:
        """Add ``count`` to the counter ``name`` in meta (made at 0)."""
        self._exec(
            cur, "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
            " SET value = CAST(CAST(meta.value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)", [name, str(count)],
        )

    @contextmanager
    def export_transaction(
        self, key_ids: np.ndarray, revision_ids: np.ndarray, withheld: int | None = None
    ) -> Iterator[list[BatchRecord]]:
        """Take the keys ``key_ids`` out of export_queue and the revisions ``revision_ids`` (the revisions'
        own ids, not their keys') the files carry out of revision_queue, marked carried, and record the
        batch files the caller puts in the list it is given, in one transaction committed when the block
        ends (write and sync the files inside it); if the block raises, nothing changes.  Ids ascending,
        distinct.

        A revision made after the keys were read is in no file and stays queued (a later revision of a
        key read takes the earlier one's place in the queue: then nothing is recorded); keys uploaded
        meanwhile have other ids and stay queued.  Keys another export took out of the queue
        meanwhile (two exporters at once) would be published twice, and keys a code's revocation withheld
        meanwhile would be published at all: then nothing is recorded
        (ServerStorageError) and the caller drops its files.  SQLite: all of it once the block has
        ended (a write transaction held while the files are written would hold off every upload).
        ``withheld``: ``keys_withheld()`` as it was before the keys were read; changed, nothing is recorded
        either (SQLite draws a deleted largest id again: a key uploaded after the revocation took the id of
        one withheld, and the export took it out of the queue in the withheld key's place)."""
        batches: list[BatchRecord] = []
        yield batches
        with self._transaction() as cur:
            self._take_out(cur, key_ids, revision_ids, withheld)
            self._record_batches(cur, batches)

    def _take_out(self, cur: Any, key_ids: np.ndarray, revision_ids: np.ndarray, withheld: int | None = None) -> None:
        if withheld is not None:
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'keys_withheld'").fetchone()
            if (0 if row is None else int(row[0])) != withheld:
                raise ServerStorageError(
                    "another export published, or a code revocation withheld, keys waiting for export meanwhile:"
                    " nothing recorded (the next export writes the rest)"
                )
        # in the order a revocation and a revision change them (revisions, their queue, the keys' queue): two
        # PostgreSQL transactions waiting for each other's rows would be a deadlock
        if len(revision_ids):
            first, last = id_runs(revision_ids)
            cur.executemany(self._sql("UPDATE key_revisions SET carried = 1 WHERE id BETWEEN ? AND ? AND carried = 0"),
                            zip(first.tolist(), last.tolist()))
            if cur.rowcount != len(revision_ids):  # one undone by a revocation, or carried by another export
                raise ServerStorageError(_LOST.format(len(revision_ids), "key_revisions"))
            taken = self._dequeue(cur, "revision_queue", revision_ids, "revision_id")
            if taken != len(revision_ids) and self._replaced(cur, revision_ids) != len(revision_ids) - taken:
                raise ServerStorageError(_LOST.format(len(revision_ids), "revision_queue"))
        if len(key_ids) and self._dequeue(cur, "export_queue", key_ids) != len(key_ids):
            raise ServerStorageError(_LOST.format(len(key_ids), "export_queue"))

    def _replaced(self, cur: Any, revision_ids: np.ndarray) -> int:
        """How many of ``revision_ids`` (still kept, carried by no other file) a later revision of their key
        replaced in revision_queue meanwhile: that one waits there, so a file may carry these as read (the
        key's files still go up the ladder: this file, then the later revision in the next).  PostgreSQL
        locks the later ones' rows: an export taking them, or a revocation undoing them, is waited for and
        then counts as having come first."""
        earlier = self._exec(
            cur, "SELECT r.id FROM revision_queue q JOIN key_revisions r ON r.key_id = q.key_id AND r.id < q.revision_id"
            f"{self._lock_queued}",
        ).fetchall()
        replaced = int(np.isin(np.unique(np.array([i for (i,) in earlier], np.int64)), revision_ids).sum())
        if replaced:
            log.info("%d revision(s) this export read were replaced by a later one meanwhile: carried as read,"
                     " the later one goes out in a later file", replaced)
        return replaced

    def _dequeue(self, cur: Any, queue: str, ids: np.ndarray, column: str = "key_id") -> int:
        """Delete the rows of ``ids`` (ascending, distinct; in ``column``) from ``queue``; how many were there.

        One range per run of consecutive ids (an upload's keys get consecutive ids, and so do the runs
        of keys between today's, still embargoed): a range holds no id but the run's, so nothing else
        is taken.  A million keys: 0.2-0.5 s, where finding each id from a JSON array took 1.0-1.1 s."""
        first, last = id_runs(ids)
        cur.executemany(self._sql(f"DELETE FROM {queue} WHERE {column} BETWEEN ? AND ?"), zip(first.tolist(), last.tolist()))
        return int(cur.rowcount)
