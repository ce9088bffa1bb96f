"""What the key-server client remembers: small tables of schema 7 (``schema._KEYSERVER_TABLES``);
``bluezone.client.ServerState`` is the typed view of them."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.store.base import StoreBase
from bluezone.proximity.store.retention import _first_day

log = logging.getLogger(__package__)  # the store's one logger, as before it was a package


class KeyServerMemory(StoreBase):
    """Pinned keys, processed and rejected files, the upload's revision token, the levels and exposures told."""

    def keyserver_pin(self, server: str) -> tuple[str, str | None, str | None] | None:
        """(public key, key id, key version) pinned for ``server``, if any."""
        return self._server_key("keyserver_pins", server)

    def _server_key(self, table: str, server: str) -> tuple[str, str | None, str | None] | None:
        row = self._conn.execute(
            f"SELECT public_key, key_id, key_version FROM {table} WHERE server = ?", (server,)
        ).fetchone()
        return None if row is None else (str(row[0]), row[1], row[2])

    def save_keyserver_pin(
        self, server: str, public_key: str, key_id: str | None, key_version: str | None, now: float,
        *, replacing: str | None = None,
    ) -> bool:
        """Pin ``server``'s export key if its pin is still ``replacing`` (the public key pinned when the
        check began; None: none).  False, and nothing written, if another check pinned meanwhile: one
        statement compares and sets, so two first checks at once cannot re-pin each other's key."""
        with self._conn as conn:
            if replacing is None:
                cur = conn.execute(
                    "INSERT INTO keyserver_pins (server, public_key, key_id, key_version, pinned_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (server) DO NOTHING",
                    (server, public_key, key_id, key_version, now),
                )
            else:
                cur = conn.execute(
                    "UPDATE keyserver_pins SET public_key = ?, key_id = ?, key_version = ?, pinned_at = ?"
                    " WHERE server = ? AND public_key = ?",
                    (public_key, key_id, key_version, now, server, replacing),
                )
            if cur.rowcount != 1:
                return False
            conn.execute("DELETE FROM keyserver_given_keys WHERE server = ?", (server,))  # confirmed: the pin now
        return True

    def keyserver_given_key(self, server: str) -> tuple[str, str | None, str | None] | None:
        """(public key, key id, key version) given for ``server`` with --server-key and not yet confirmed."""
        return self._server_key("keyserver_given_keys", server)

    def save_keyserver_given_key(
        self, server: str, public_key: str, key_id: str | None, key_version: str | None, now: float
    ) -> None:
        """Keep the key given for ``server`` until a file confirms it (``save_keyserver_pin`` then drops it)."""
        with self._conn as conn:
            conn.execute(
                "INSERT OR REPLACE INTO keyserver_given_keys (server, public_key, key_id, key_version, given_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (server, public_key, key_id, key_version, now),
            )

    def forget_keyserver_given_key(self, server: str) -> None:
        """Drop the key given for ``server`` (it rejected the server's files: no longer to be used unasked)."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_given_keys WHERE server = ?", (server,))

    def keyserver_batches(self, server: str) -> set[str]:
        """Names of ``server``'s batches already verified and matched."""
        rows = self._conn.execute(
            "SELECT name FROM keyserver_batches WHERE server = ?", (server,)
        ).fetchall()
        return {r[0] for r in rows}

    def save_keyserver_batches(self, server: str, batches: dict[str, int], now: float) -> None:
        """Remember batches (name -> keys in it) as processed."""
        with self._conn as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO keyserver_batches (server, name, keys, processed_at) VALUES (?, ?, ?, ?)",
                [(server, name, n, now) for name, n in batches.items()],
            )

    def rejected_batches(self, server: str, public_key: str, now: float) -> dict[str, str]:
        """Name -> why, of ``server``'s files a check rejected (verifying with ``public_key``) within the
        retention at ``now``."""
        rows = self._conn.execute(
            "SELECT name, reason FROM keyserver_rejected WHERE server = ? AND public_key = ? AND rejected_at >= ?",
            (server, public_key, now - RETENTION_DAYS * DAY_SECONDS),
        ).fetchall()
        return {str(name): str(reason) for name, reason in rows}

    def rejecting_keys(self, server: str, now: float) -> set[str]:
        """The public keys with which a check rejected files of ``server`` within the retention at ``now``."""
        rows = self._conn.execute(
            "SELECT DISTINCT public_key FROM keyserver_rejected WHERE server = ? AND rejected_at >= ?",
            (server, now - RETENTION_DAYS * DAY_SECONDS),
        ).fetchall()
        return {str(key) for (key,) in rows}

    def save_rejected_batches(self, server: str, public_key: str, rejected: dict[str, str], now: float) -> None:
        """Remember files (name -> why) rejected when verified with ``public_key``; forget those past retention."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_rejected WHERE rejected_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,))
            conn.executemany(
                "INSERT OR REPLACE INTO keyserver_rejected (server, public_key, name, reason, rejected_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(server, public_key, name, reason, now) for name, reason in rejected.items()],
            )

    def revision_token(self, server: str, now: float | None = None) -> str | None:
        """The token of the last upload to ``server``; None after 14 days (``now``), when every key it
        covered has left the server, and then it is deleted."""
        conn = self._conn
        if now is not None:
            with conn:
                conn.execute(
                    "DELETE FROM keyserver_revision_tokens WHERE saved_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,)
                )
        row = conn.execute("SELECT token FROM keyserver_revision_tokens WHERE server = ?", (server,)).fetchone()
        return str(row[0]) if row else None

    def save_warning_levels(self, rows: Sequence[tuple[bytes, str, str]], now: float) -> None:
        """Remember the level (F1, F2) told per (diagnosis key hash, day); forget those past retention."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_warnings WHERE reported_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,))
            conn.executemany(
                "INSERT OR REPLACE INTO keyserver_warnings (key_hash, day, level, reported_at) VALUES (?, ?, ?, ?)",
                [(key_hash, day, level, now) for key_hash, day, level in rows],
            )

    def warning_level(self, key_hash: bytes, day: str) -> str | None:
        """The level told before for this diagnosis key hash and day, if any."""
        row = self._conn.execute(
            "SELECT level FROM keyserver_warnings WHERE key_hash = ? AND day = ?", (key_hash, day)
        ).fetchone()
        return None if row is None else str(row[0])

    def save_reported_exposures(
        self, server: str, rows: Sequence[tuple[bytes, str, float, float, dict[str, Any]]], now: float
    ) -> None:
        """Keep what a check against ``server`` reported ((key hash, day, start, end, exposure)),
        so a later check can repeat what is still in force; older than the retention: deleted."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_exposures WHERE end_time < ?", (now - RETENTION_DAYS * DAY_SECONDS,))
            conn.executemany(
                "INSERT OR REPLACE INTO keyserver_exposures"
                " (server, key_hash, day, start_time, end_time, exposure, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(server, h, day, start, end, json.dumps(e), now) for h, day, start, end, e in rows],
            )

    def forget_reported_exposures(self, server: str, rows: Sequence[tuple[bytes, str]]) -> None:
        """Forget the exposures reported for these (key hash, day): withdrawn, or reported anew."""
        with self._conn as conn:
            conn.executemany(
                "DELETE FROM keyserver_exposures WHERE server = ? AND key_hash = ? AND day = ?",
                [(server, h, day) for h, day in rows],
            )

    def save_withdrawn_exposures(self, server: str, rows: Sequence[tuple[bytes, str]], now: float) -> None:
        """Remember that the exposures to these (key hash, day) were withdrawn (a negative test), so a
        replayed old batch cannot bring them back; days older than the retention (``now``): deleted."""
        with self._conn as conn:
            conn.execute("DELETE FROM keyserver_withdrawn WHERE day < ?", (_first_day(now - RETENTION_DAYS * DAY_SECONDS),))
            conn.executemany(
                "INSERT OR IGNORE INTO keyserver_withdrawn (server, key_hash, day) VALUES (?, ?, ?)",
                [(server, h, day) for h, day in rows],
            )

    def withdrawn_exposures(self, server: str) -> set[tuple[bytes, str]]:
        """(key hash, day) of the exposures checks against ``server`` saw withdrawn."""
        rows = self._conn.execute(
            "SELECT key_hash, day FROM keyserver_withdrawn WHERE server = ?", (server,)
        ).fetchall()
        return {(bytes(h), str(day)) for h, day in rows}

    def reported_exposures(self, server: str, now: float) -> list[tuple[bytes, str, dict[str, Any]]]:
        """(key hash, day, exposure) of what checks against ``server`` reported, still within the retention."""
        rows = self._conn.execute(
            "SELECT key_hash, day, exposure FROM keyserver_exposures WHERE server = ? AND end_time >= ?"
            " ORDER BY start_time",
            (server, now - RETENTION_DAYS * DAY_SECONDS),
        ).fetchall()
        out = []
        for h, day, text in rows:
            try:
                out.append((bytes(h), str(day), json.loads(text)))
            except (TypeError, ValueError):  # a damaged row: advisory only
                log.warning("an exposure reported before cannot be read from %s; skipped", self.path)
        return out

    def close_exposure_starts(self, since: float, until: float) -> list[float]:
        """When the close contacts that checks told (F1 exposures and venue stays of 15 minutes or more, against
        any server, still kept) began, of those beginning in [``since``, ``until``)."""
        rows = self._conn.execute(
            "SELECT start_time, exposure FROM keyserver_exposures WHERE start_time >= ? AND start_time < ?", (since, until)
        ).fetchall()
        starts = []
        for start, text in rows:
            try:
                told = json.loads(text)
            except (TypeError, ValueError):  # a damaged row: advisory only (``reported_exposures``)
                continue
            if isinstance(told, dict) and (told.get("level") == "F1" or told.get("fifteen_minutes_or_more") is True):
                starts.append(float(start))
        return starts

    def save_revision_token(self, server: str, token: str, now: float) -> None:
        """Keep the token the server gave with an upload (0600, like the daily keys it stands for)."""
        with self._conn as conn:
            conn.execute(
                "INSERT OR REPLACE INTO keyserver_revision_tokens (server, token, saved_at) VALUES (?, ?, ?)",
                (server, token, now),
            )
