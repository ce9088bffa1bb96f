"""What the exporter records of the files it wrote: one row per signed batch (roll-ups replace a
day's files), the secret that makes an export day's fake keys recognisable, the public keys
it signed with (a roll-up after a key rotation verifies older files with the key that signed them),
and when the last exports ran (an export compares its clock with theirs: ``server/exportclock.py``), and the
directory they go to (``server/exportdir.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from typing import Any

from bluezone.errors import ServerStorageError
from bluezone.server.storage.database import Database

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
    sha256: str | None = None  # of the file as written (hex; None: recorded before schema 14)
    #: a key file's fake keys and fake revisions (padding), KEY_DTYPE rows end to end as in the file (schema
    #: 18): what pads a later file of revisions, without reading the file back.  None: not recorded (before
    #: schema 18, or a check-in file).
    fake_keys: bytes | None = field(default=None, compare=False, repr=False)
    fake_revisions: bytes | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        """What `server export --json` says of the file (its fakes are the server's own)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("fake_keys", "fake_revisions")}


#: A batch record's row, its fields in the dataclass's order (``astuple``).
_INSERT_BATCH = (
    "INSERT INTO batches (name, created_at, start_timestamp, end_timestamp, batch_num, batch_size, num_keys,"
    " padding_keys, sha256, fake_keys, fake_revisions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class ExportBookkeeping(Database):
    """Batch records, padding secrets and signing keys: the exporter's memory of its files."""

    def _record_batches(self, cur: Any, batches: Sequence[BatchRecord]) -> None:
        cur.executemany(self._sql(_INSERT_BATCH), [astuple(b) for b in batches])

    def _record_batch(self, cur: Any, record: BatchRecord) -> int:
        """Record one batch file; its id."""
        return int(self._exec(cur, _INSERT_BATCH + " RETURNING id", list(astuple(record))).fetchone()[0])

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

    def batches(self, since: float = 0.0) -> list[BatchRecord]:
        with self._transaction(write=False) as cur:
            rows = self._exec(
                cur,
                "SELECT name, created_at, start_timestamp, end_timestamp, batch_num, batch_size, num_keys, padding_keys,"
                " sha256 FROM batches WHERE end_timestamp >= ? ORDER BY id",
                [since],
            ).fetchall()
        return [BatchRecord(*r) for r in rows]

    def batch_padding(self, since: float, starts: Sequence[int]) -> list[tuple[str, int, bytes | None, bytes | None]]:
        """(name, start_timestamp, fake_keys, fake_revisions) of the files ``batches(since)`` lists whose day of
        keys starts at one of ``starts``, in the same order: what pads a file of revisions of those days."""
        if not starts:
            return []
        with self._transaction(write=False) as cur:
            rows = self._exec(
                cur,
                "SELECT name, start_timestamp, fake_keys, fake_revisions FROM batches WHERE end_timestamp >= ?"
                f" AND start_timestamp IN ({', '.join('?' * len(starts))}) ORDER BY id",
                [since, *starts],
            ).fetchall()
        return [(str(n), int(s), None if k is None else bytes(k), None if r is None else bytes(r)) for n, s, k, r in rows]

    def export_runs(self, last: int) -> list[float]:
        """The clock readings of the ``last`` export runs noted (``note_export_run``), oldest first; in a
        database where none was noted yet, the times of the exports that wrote its newest files."""
        with self._transaction(write=False) as cur:
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'export_runs'").fetchone()
            if row is None:
                rows = self._exec(
                    cur, "SELECT DISTINCT created_at FROM batches ORDER BY created_at DESC LIMIT ?", [last]
                ).fetchall()
                return sorted(float(t) for (t,) in rows)
        return [float(t) for t in json.loads(row[0])][-last:]

    def note_export_run(self, now: float, keep: int) -> None:
        """Remember that an export ran at ``now`` (whatever it did), with the ``keep - 1`` runs before it.
        Runs noted later than ``now`` are dropped: that clock, or this one, was wrong, and a month-ahead run
        kept among them made a cron job's period (its longest gap) a month, so the next jump was not held."""
        with self._transaction() as cur:
            self._lock_name(cur, "export_runs")
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'export_runs'").fetchone()
            runs = [t for t in (float(t) for t in json.loads(row[0])) if t <= now] if row is not None else []
            runs.append(now)
            self._exec(
                cur,
                "INSERT INTO meta (name, value) VALUES ('export_runs', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [json.dumps(runs[-keep:])],
            )

    def export_dir(self) -> str | None:
        """The export directory on record (a resolved path: ``record_export_dir``), None before the first one."""
        with self._transaction(write=False) as cur:
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'export_dir'").fetchone()
        return None if row is None else str(row[0])

    def record_export_dir(self, path: str, replace: bool = False) -> str:
        """Record ``path`` as the export directory if none is on record yet (``replace``: in place of the one
        that is); returns the one on record then (two first exporters at once: the first to commit)."""
        with self._transaction() as cur:
            self._exec(
                cur, "INSERT INTO meta (name, value) VALUES ('export_dir', ?) ON CONFLICT (name) DO "
                + ("UPDATE SET value = excluded.value" if replace else "NOTHING"), [path],
            )
            row = self._exec(cur, "SELECT value FROM meta WHERE name = 'export_dir'").fetchone()
        return str(row[0])
