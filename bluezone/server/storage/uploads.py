"""A publish as the database sees it: one transaction that burns the code, stores new keys (queued for
export), revises keys already stored when the uploader proves it owns them, and keeps the check-in
reports; plus the bulk insert the benchmarks and exporter tests use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bluezone.errors import RevisionRefused
from bluezone.keyformat.keys import NO_DAYS_SINCE_ONSET, REPORT_TYPE_CERTAINTY, empty_keys
from bluezone.server.storage.codes import CODE_MATCH, CodeRecord
from bluezone.server.storage.queues import ExportQueues, queue_revision_sql, queue_rows

#: GAEN report types (TemporaryExposureKey.ReportType) that revision concerns.  RECURSIVE marks the
#: keys of a close contact (F1) of a case, published so that *their* close contacts (F2) are told.
CONFIRMED, LIKELY, RECURSIVE, REVOKED = 1, 2, 4, 5


def revision_refusal(current_type: int, revised: bool, new_type: int) -> str | None:
    """Why a key standing as ``current_type`` (its revised type where ``revised``) may not become
    ``new_type`` (None: it may).

    GAEN's reference server lets a likely report become confirmed or negative, once.  Here a stronger
    report always wins: recursive -> likely -> confirmed (an F1 who uploaded for F2 warnings, later
    diagnosed, then tested), each step once, or revoked by a negative test while not confirmed; confirmed
    and revoked are final and nothing goes down, so a key has at most two revisions.  Each is kept
    (key_revisions, schema 17): ``server revoke-code`` undoes exactly its own code's."""
    if current_type not in (RECURSIVE, LIKELY):
        return "key_already_revised" if revised else "invalid_report_type_transition"
    # up the ladder (an F1's recursive report, a likely diagnosis, a confirmed test), or revoked (a negative test)
    if new_type == REVOKED or REPORT_TYPE_CERTAINTY.get(new_type, 0) > REPORT_TYPE_CERTAINTY[current_type]:
        return None
    return "invalid_report_type_transition"


@dataclass(frozen=True)
class PublishOutcome:
    """What one publish transaction wrote."""

    inserted: int  # new keys stored
    revised: int  # keys already stored whose report type changed
    venue_reports: int = 0  # check-in reports stored, fakes included


class Uploads(ExportQueues):
    """Keys published under a code (and revised), counted, or inserted without one."""

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
                f"UPDATE codes SET used_at = ? WHERE {CODE_MATCH} AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > ?"
                " RETURNING code_hash, report_type, test_type, test_day, onset_day, issued_at, expires_at, used_at",
                [now, *hashes, now],
            ).fetchone()
            if row is None:
                found = self._exec(cur, f"SELECT used_at, revoked_at FROM codes WHERE {CODE_MATCH}", hashes).fetchone()
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
                        " report_type, days_since_onset, received_at, code_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (key_data) DO NOTHING RETURNING id",
                        [key_data, int(k["rolling_start"]), int(k["rolling_period"]), int(k["transmission_risk"]),
                         report_type, onset, now, record.code_hash],
                    ).fetchone()
                    if new_id is not None:
                        inserted += 1
                        owned.append(int(new_id[0]))
                        queued[int(new_id[0])] = row_number
                        continue
                found = self._exec(
                    cur,
                    "SELECT id, COALESCE(revised_report_type, report_type), revised_at, rolling_start,"
                    " rolling_period, transmission_risk FROM exposure_keys WHERE key_data = ?",
                    [key_data],
                ).fetchone()
                if found is None:
                    continue
                key_id, current_type, revised_at, *stored = found
                if current_type == report_type and revised_at is None:  # uploaded again under another code: both
                    # vouch for it, and a revocation of one withholds it no more (a revision names its code)
                    self._exec(cur, "UPDATE exposure_keys SET code_hash = NULL WHERE id = ? AND code_hash <> ?",
                               [key_id, record.code_hash])
                elif current_type == report_type:  # as it stands revised: this code vouches for that revision
                    self._vouch(cur, key_id, now, record.code_hash)
                shown = token_hash is not None and self._exec(
                    cur, "SELECT 1 FROM revision_tokens WHERE token_hash = ? AND key_id = ?", [token_hash, key_id]
                ).fetchone() is not None
                if current_type != report_type:
                    if not shown:
                        raise RevisionRefused("missing_revision_token" if token_hash is None else "invalid_revision_token")
                    refusal = revision_refusal(current_type, revised_at is not None, report_type)
                    if refusal:
                        raise RevisionRefused(refusal)
                    # compare-and-set on the type read: a concurrent revision of the same key (another server
                    # process) makes this one lose
                    done = self._exec(
                        cur,
                        "UPDATE exposure_keys SET revised_report_type = ?, revised_days_since_onset = ?, revised_at = ?,"
                        " revised_code_hash = ? WHERE id = ? AND COALESCE(revised_report_type, report_type) = ?",
                        [report_type, onset, now, record.code_hash, key_id, current_type],
                    ).rowcount
                    if done != 1:
                        raise RevisionRefused("key_already_revised")
                    self._revise(cur, key_id, report_type, onset, now, record.code_hash, (key_data, *stored, report_type, dsos),
                                 again=revised_at is not None)
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
                    self._sql("INSERT INTO venue_reports (report, day, received_at, code_hash) VALUES (?, ?, ?, ?)"),
                    [(bytes(report), int(day), now, record.code_hash) for day, report in venue_reports],
                )
                stored_reports = len(venue_reports)
            return PublishOutcome(inserted, revised, stored_reports)

    def _revise(
        self, cur: Any, key_id: int, report_type: int, onset: int | None, now: float, code_hash: str,
        stands: tuple[Any, ...], *, again: bool,
    ) -> None:
        """Keep the revision of ``key_id`` (its type and onset, its code) beside the earlier ones and queue
        it: the key as it now ``stands`` (a KEY_DTYPE row) for its first file if it waits for one, else for
        a batch's revised_keys.  ``again``: it was revised before; an earlier revision no file carried yet
        leaves the queue (this one goes out in its place), kept to stand again if this one's code is revoked."""
        (revision_id,) = self._exec(
            cur,
            "INSERT INTO key_revisions (key_id, report_type, days_since_onset, revised_at, code_hash) VALUES (?, ?, ?, ?, ?)"
            " RETURNING id",
            [key_id, report_type, onset, now, code_hash],
        ).fetchone()
        now_stands = empty_keys(1)
        now_stands[0] = stands
        ((_, start, end, as_revised),) = queue_rows(np.array([key_id]), now_stands, revised=int(revision_id))
        if again:
            self._exec(cur, "DELETE FROM revision_queue WHERE key_id = ?", [key_id])
        # a key still waiting for its first export goes out revised (no-op once exported)
        self._exec(cur, "UPDATE export_queue SET record = ? WHERE key_id = ?", [as_revised, key_id])
        self._exec(cur, queue_revision_sql(), [int(revision_id), key_id, start, end, as_revised])

    def _vouch(self, cur: Any, key_id: int, now: float, code_hash: str) -> None:
        """Another code uploaded ``key_id`` as its standing revision has it: kept as a revision of that code
        too (the same type and onset, carried as that one is), so that revoking the revising code leaves the
        key as this one says, and the key's first code can still withhold it once both are revoked.  (Before,
        it cleared the key's first code: after the revision was undone the key stood as first uploaded, yet
        no revocation could withhold it.)  Nothing is queued: the files see no change."""
        self._exec(
            cur,
            "INSERT INTO key_revisions (key_id, report_type, days_since_onset, revised_at, code_hash, carried)"
            " SELECT key_id, report_type, days_since_onset, ?, ?, carried FROM key_revisions WHERE key_id = ?"
            " ORDER BY id DESC LIMIT 1",
            [now, code_hash, key_id],
        )

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
