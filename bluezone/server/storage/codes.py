"""Verification codes as the key server stores them (issued, used; only their keyed hash; revoked in
revocation.py) and the budgets of failed code tries, one row per client and window.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bluezone.server.storage.database import Database

#: Rows of ``code_tries`` keyed with this prefix count tries several clients share (an IPv6 /48's, everybody's).
SHARED_BUDGET = "shared:"


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


#: A code's row by its keyed hash, or by the plain SHA-256 of a code stored before the code key (schema < 3).
CODE_MATCH = "((code_hash = ? AND keyed = 1) OR (code_hash = ? AND keyed = 0))"


class VerificationCodes(Database):
    """Codes issued, looked up, revoked and counted; failed tries counted before they are made."""

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

    def usable_code_type(self, code_hash: str, now: float, *, legacy_code_hash: str | None = None) -> str:
        """The test type of a code that an upload could use now (its row matched as ``publish`` matches it),
        changing nothing; else LookupError("invalid"|"used"|"revoked"|"expired"), as ``publish`` raises."""
        hashes = [code_hash, legacy_code_hash or ""]
        with self._transaction() as cur:
            row = self._exec(
                cur, f"SELECT test_type, used_at, revoked_at, expires_at FROM codes WHERE {CODE_MATCH}", hashes
            ).fetchone()
        if row is None:
            raise LookupError("invalid")
        test_type, used_at, revoked_at, expires_at = row
        if used_at is not None:
            raise LookupError("used")
        if revoked_at is not None:
            raise LookupError("revoked")
        if not expires_at > now:
            raise LookupError("expired")
        return str(test_type)

    def get_code(self, code_hash: str) -> CodeRecord | None:
        with self._transaction() as cur:
            row = self._exec(
                cur,
                "SELECT code_hash, report_type, test_type, test_day, onset_day, issued_at, expires_at, used_at"
                " FROM codes WHERE code_hash = ?",
                [code_hash],
            ).fetchone()
        return CodeRecord(*row) if row else None

    def count_codes(
        self, report_type: int, *, issued_since: float | None = None, used_since: float | None = None,
        revoked_since: float | None = None,
    ) -> int:
        """Codes of ``report_type`` issued (or used, or revoked) since a time: what the limits on recursive
        codes count, and `server status`."""
        sql = "SELECT COUNT(*) FROM codes WHERE report_type = ?"
        params: list[float] = [report_type]
        for column, since in (("issued_at", issued_since), ("used_at", used_since), ("revoked_at", revoked_since)):
            if since is not None:
                sql += f" AND {column} >= ?"
                params.append(since)
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
        (None: the code was good, or the request was refused before its code was tried), and a row left
        counting nothing deleted: it named a client beside the time of a good code, an upload."""
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
                self._exec(
                    cur, "DELETE FROM code_tries WHERE client = ? AND window_start = ? AND failures <= 0", [key, window_start]
                )

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

    def busiest_blocks(self, kind: str, since: float, limit: int = 8) -> list[tuple[str, int, int]]:
        """The providers' blocks (``kind`` "ipv4": /16s of IPv4 addresses, their first two octets ``198.51``;
        "ipv6": /32s of IPv6 /48s' shared budgets, their first two groups ``2001:db8``) whose clients failed most
        in their windows begun at or after ``since``, most first, at most ``limit``: (block, failed tries,
        clients).  Grouped by the database: a botnet's 100,000 IPv4 addresses read one by one and parsed in
        Python took 1.0-1.2 s of each ``server status`` (srv22; ``benchmarks/status_bench.py``), 65,536 failing
        /48s 1.4 s."""
        rows, block = self._blocks[kind]
        with self._transaction(write=False) as cur:
            found = self._exec(
                cur,
                f"SELECT {block} AS block, SUM(failures) AS tries, COUNT(*) FROM code_tries"
                f" WHERE window_start >= ? AND {rows} GROUP BY block ORDER BY tries DESC, block LIMIT ?",
                [since, limit],
            ).fetchall()
        return [(str(key), int(tries), int(n)) for key, tries, n in found]

    def count_try_rows(self) -> int:
        """Rows the failed-try table holds (one per client with a window): what an attacker can grow."""
        with self._transaction(write=False) as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM code_tries").fetchone()[0])
