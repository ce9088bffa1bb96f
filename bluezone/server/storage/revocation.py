"""A verification code withdrawn by the health authority (`server revoke-code`): one not used yet opens
nothing from now on; one used is revoked too, and what it brought that no file has published yet is taken
back: the keys and check-ins its upload stored (deleted) and the revisions it made to keys an earlier code
uploaded (undone: those keys go out as they stood before it, their revision before kept since schema 17).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bluezone.server.storage.codes import CODE_MATCH
from bluezone.server.storage.queues import VOUCH, ExportQueues


@dataclass(frozen=True)
class Withheld:
    """What revoking a used code withheld (before any file published it) and what was already out."""

    keys: int
    checkins: int
    published_keys: int
    published_checkins: int
    revisions: int = 0  # its revisions of keys an earlier code uploaded, undone: those keys go out as before
    published_revisions: int = 0
    #: its uploads of keys as another code's revision already had them (a vouch): withdrawn or kept, nothing
    #: changes in the files (that code's revision stands, or was published, as before)
    vouched: int = 0


@dataclass(frozen=True)
class RevokeOutcome:
    """``Revocations.revoke_code``'s answer: the code's state, since when, and for a used code what its
    upload had stored (None: it was used before schema 15, which keeps which keys a code stored)."""

    state: str
    at: float | None
    withheld: Withheld | None = None


#: A key (``k``) no standing code revised: its own code alone stands for it (a revision by a code revoked
#: since was taken back, or was published: then so was the key, with it or before it).
STANDS_ALONE = (
    "(k.revised_code_hash IS NULL OR EXISTS (SELECT 1 FROM codes c WHERE c.code_hash = k.revised_code_hash"
    " AND c.revoked_at IS NOT NULL))"
)


class Revocations(ExportQueues):
    """Codes revoked, and what a used one brought withheld."""

    def revoke_code(self, code_hash: str, now: float, *, legacy_code_hash: str | None = None) -> RevokeOutcome:
        """Withdraw a code: one not used yet opens nothing from now on (``revoked``); one used is marked
        revoked too and what it brought that no file has published yet is withheld (``used``, and
        ``Withheld`` counts).  Else why nothing changed: ``already_revoked``, ``expired``, ``unknown``
        (no time: never issued, or deleted two days after it expired).  A publish racing it is either
        before (used) or refused; an export racing it either published first (counted as published) or
        finds its keys or revisions gone from their queues and records nothing (its files are dropped)."""
        hashes = [code_hash, legacy_code_hash or ""]
        with self._transaction() as cur:
            done = self._exec(
                cur,
                f"UPDATE codes SET revoked_at = ? WHERE {CODE_MATCH} AND used_at IS NULL AND revoked_at IS NULL"
                " AND expires_at > ?",
                [now, *hashes, now],
            ).rowcount
            if done:
                return RevokeOutcome("revoked", now)
            found = self._exec(
                cur, f"SELECT code_hash, used_at, revoked_at, expires_at, uploads_kept FROM codes WHERE {CODE_MATCH}", hashes
            ).fetchone()
            if found is None:
                return RevokeOutcome("unknown", None)
            stored_hash, used_at, revoked_at, expires_at, kept = found
            if used_at is not None and revoked_at is None:  # (revoked again, it said "now revoked" again)
                self._exec(cur, "UPDATE codes SET revoked_at = ? WHERE code_hash = ? AND revoked_at IS NULL", [now, stored_hash])
                return RevokeOutcome("used", float(used_at), self._withhold(cur, stored_hash) if kept else None)
        if revoked_at is not None:
            return RevokeOutcome("already_revoked", float(revoked_at))
        return RevokeOutcome("expired", float(expires_at))

    def _withhold(self, cur: Any, code_hash: str) -> Withheld:
        """Take back what the used code ``code_hash`` brought that no file has published yet, and count
        what was.  Its revisions first: a key then stands for no code (its own revoked too) is withheld
        with the keys the code stored.  A key another standing code uploaded too, or revised, stays."""
        undone, vouched, restood = self._undo_revisions(cur, code_hash)
        published_revisions, published_vouches = self._exec(  # what is left of its revisions: those a file carried
            cur, f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {VOUCH} THEN 1 ELSE 0 END), 0) FROM key_revisions r"
            " WHERE r.code_hash = ?", [code_hash]
        ).fetchone()
        orphaned = [i for (i,) in self._exec(  # keys of a code revoked before whose last standing revision this was
            cur, "SELECT k.id FROM exposure_keys k JOIN codes c ON c.code_hash = k.code_hash"
            f" WHERE k.id IN ({', '.join('?' * len(restood))}) AND c.revoked_at IS NOT NULL AND {STANDS_ALONE}",
            restood,
        ).fetchall()] if restood else []
        ids = self._delete_keys(cur, f"k.code_hash = ? AND {STANDS_ALONE}", [code_hash])
        ids += self._delete_keys(cur, f"k.id IN ({', '.join('?' * len(orphaned))})", orphaned) if orphaned else []
        self._requeue(cur, sorted(set(restood) - set(ids)))
        checkins = int(self._exec(
            cur, "DELETE FROM venue_reports WHERE code_hash = ? AND batch_id IS NULL", [code_hash]
        ).rowcount)
        (published_keys,) = self._exec(  # a file carried them: out of export_queue (also those a standing revision keeps)
            cur, "SELECT COUNT(*) FROM exposure_keys k WHERE k.code_hash = ?"
            " AND NOT EXISTS (SELECT 1 FROM export_queue q WHERE q.key_id = k.id)", [code_hash]
        ).fetchone()
        (published_checkins,) = self._exec(
            cur, "SELECT COUNT(*) FROM venue_reports WHERE code_hash = ?", [code_hash]
        ).fetchone()
        return Withheld(
            len(ids), checkins, int(published_keys) + len(set(orphaned) - set(ids)), int(published_checkins),
            undone, int(published_revisions) - int(published_vouches), vouched + int(published_vouches),
        )

    def _undo_revisions(self, cur: Any, code_hash: str) -> tuple[int, int, list[int]]:
        """Undo the revisions ``code_hash`` made that no file carried (a revision is carried by a batch's
        revised_keys, or with its key's first file): each key then stands as its revision before (kept,
        schema 17), or as first uploaded; that one goes out if no file carried it yet.  How many were
        undone, how many of those another code's revision of the same keys still says the same of (a
        vouch, or vouched for: nothing changes in the files), and their keys' ids."""
        # the keys locked first (PostgreSQL): a revision of one committing meanwhile is waited for, then seen
        self._exec(
            cur, "SELECT k.id FROM exposure_keys k WHERE k.id IN (SELECT key_id FROM key_revisions WHERE code_hash = ?)"
            f"{self._lock_keys}", [code_hash],
        ).fetchall()
        # then their revisions, before any is deleted: an export holds the one it marks carried and then locks the
        # queue's rows, so a revocation that deleted a queue row first and waited for that revision deadlocked with it
        self._exec(
            cur, "SELECT r.id FROM key_revisions r WHERE r.key_id IN (SELECT key_id FROM key_revisions WHERE code_hash = ?)"
            f"{self._lock_revisions}", [code_hash],
        ).fetchall()
        undone = self._exec(
            cur, "DELETE FROM key_revisions WHERE code_hash = ? AND carried = 0 RETURNING id, key_id, report_type",
            [code_hash],
        ).fetchall()
        cur.executemany(self._sql("DELETE FROM revision_queue WHERE revision_id = ?"), [(int(r),) for r, _, _ in undone])
        keys = sorted({int(k) for _, k, _ in undone})
        # locked: an export marking one of them carried is waited for, so that a key's standing revision a file
        # has just carried is not queued again (its count never matched: every later export recorded nothing)
        said = {(int(k), int(t)) for k, t in self._exec(
            cur, f"SELECT r.key_id, r.report_type FROM key_revisions r WHERE r.key_id IN ({', '.join('?' * len(keys))})"
            f"{self._lock_revisions}", keys,
        ).fetchall()} if keys else set()
        vouched = sum((int(k), int(t)) in said for _, k, t in undone)
        for key_id in keys:
            self._stand_as_last_revision(cur, key_id)
        return len(undone) - vouched, vouched, keys

    def _stand_as_last_revision(self, cur: Any, key_id: int) -> None:
        """The key ``key_id`` stands as its latest revision kept that is not a vouch (``VOUCH``: the same as the
        revision it repeats, which is queued or carried already; none: as first uploaded), queued for a batch's
        revised_keys if no file carried it yet."""
        last = self._exec(
            cur, "SELECT r.report_type, r.days_since_onset, r.revised_at, r.code_hash, r.carried FROM key_revisions r"
            f" WHERE r.key_id = ? AND NOT {VOUCH} ORDER BY r.id DESC LIMIT 1", [key_id],
        ).fetchone()
        kind, onset, at, code, carried = last or (None, None, None, None, 1)
        self._exec(
            cur, "UPDATE exposure_keys SET revised_report_type = ?, revised_days_since_onset = ?, revised_at = ?,"
            " revised_code_hash = ? WHERE id = ?", [kind, onset, at, code, key_id],
        )
        if not carried:
            self._queue_keys(cur, "revision_queue", "k.id = ?", [key_id])

    def _delete_keys(self, cur: Any, where: str, params: list[Any]) -> list[int]:
        """Delete the keys (``k``) ``where`` selects that no file has published (still in export_queue), their
        revisions and tokens with them; their ids.  Out of the queue first: what a running export took
        meanwhile is its (counted as published).  Deleted, not only kept out: the same key uploaded again
        under a good code is stored again."""
        ids = [int(r[0]) for r in self._exec(  # locked: a revision committing meanwhile makes a key its code's too
            cur,
            f"DELETE FROM export_queue WHERE key_id IN (SELECT k.id FROM exposure_keys k WHERE {where}{self._lock_keys})"
            " RETURNING key_id",
            params,
        ).fetchall()]
        for table, column in (
            ("key_revisions", "key_id"), ("revision_queue", "key_id"), ("revision_tokens", "key_id"), ("exposure_keys", "id")
        ):
            cur.executemany(self._sql(f"DELETE FROM {table} WHERE {column} = ?"), [(i,) for i in ids])
        if ids:
            self._count_withheld(cur)
        return ids

    def _requeue(self, cur: Any, ids: list[int]) -> None:
        """Keys of ``ids`` still waiting for their first file queued again as they stand now."""
        if not ids:
            return
        waiting = [int(r[0]) for r in self._exec(
            cur, f"DELETE FROM export_queue WHERE key_id IN ({', '.join('?' * len(ids))}) RETURNING key_id", ids
        ).fetchall()]
        if waiting:
            self._queue_keys(cur, "export_queue", f"k.id IN ({', '.join('?' * len(waiting))})", waiting)
