"""The node's side of the key server: upload own keys, download and verify batches, check.

``KeyServerClient`` talks HTTP through httpx; pass ``http=`` (any ``httpx.Client``, e.g.
one with an in-process transport) or ``transport=`` so tests need no network.  What a
node remembers about servers (the pinned signing key, the batches already processed)
lives in two small tables of its own sighting database (``ServerState``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from bluezone.config import RETENTION_DAYS
from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import BluezoneError, InputError
from bluezone.matching.check import REPORT_TYPE_REVOKED, Exposure, check_sightings, sightings_span
from bluezone.matching.export import ExportSignatureError, apply_revisions, open_signed_export
from bluezone.matching.keyfile import KEY_DTYPE, MAX_KEY_FILE_BYTES, empty_keys, keys_from_daily
from bluezone.matching.levels import WarningMemory
from bluezone.matching.scoring import Scorer
from bluezone.server.publish import MAX_REVISION_TOKEN_CHARS
from bluezone.server.signing import PinnedKey
from bluezone.keyformat.venue_export import is_venue_file, open_signed_venue_zip  # venue warnings share the index
from bluezone.venues.matching import match_venue_reports

log = logging.getLogger(__name__)

UPLOAD_DAYS = 14
MAX_ANSWER_BYTES = 1024 * 1024  # signing key, index and publish answers are a few kB at most
BATCH_NAME = re.compile(r"^[A-Za-z0-9_-]+\.zip$")  # what the server's exports are called


class KeyServerError(BluezoneError):
    """The key server refused a request or could not be reached; ``code`` is its error code."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class UploadRefusedError(KeyServerError, InputError):
    """The server refused an upload for something the user can fix (a used, wrong or expired code,
    keys from before a close contact's exposure date): exit code 2."""

    exit_code = 2


#: Publish refusals that are the user's input, not the server's trouble.
USER_REFUSALS = {
    "verification_code_invalid": "the verification code is not valid",
    "verification_code_used": "the verification code was already used (each code works once)",
    "verification_code_expired": "the verification code has expired: ask the health authority for a new one",
    "key_before_exposure": "",
}


class ServerKeyChangedError(BluezoneError):
    """The server's export key is not the pinned one: someone may be impersonating it."""


class KeyServerClient:
    """HTTP calls to one key server (sync; one ``httpx.Client``)."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"server URL must start with http:// or https://, got {base_url!r}")
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise InputError(f"not a usable server URL {base_url!r}: {exc}") from None
        if not url.host:
            raise InputError(f"server URL {base_url!r} has no host")
        if url.port is not None and not 0 < url.port < 65536:
            raise InputError(f"server URL {base_url!r}: port {url.port} is not 1-65535")
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(transport=transport, timeout=timeout)
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> KeyServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, max_bytes: int = MAX_ANSWER_BYTES, **kwargs: Any) -> bytes:
        """The body of a successful answer, read at most ``max_bytes`` far: a broken or hostile
        server must not be able to fill this device's memory."""
        url = self.base_url + path
        try:
            with self._http.stream(method, url, **kwargs) as response:
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise KeyServerError(f"{url}: the answer is larger than {max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise KeyServerError(f"cannot reach the key server at {url}: {exc}") from None
        if response.status_code >= 400:
            try:
                doc = json.loads(data)
                code, message = str(doc.get("code", "")), str(doc.get("error", ""))
            except (ValueError, AttributeError):
                code, message = "", bytes(data[:200]).decode("utf-8", "replace")
            raise KeyServerError(f"{url}: {response.status_code} {code}: {message}", code, response.status_code)
        return bytes(data)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = self._request(method, path, **kwargs)
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise KeyServerError(f"{self.base_url}{path}: the answer is not a JSON object")
        return doc

    def publish(
        self, keys: np.ndarray, code: str, symptom_onset_interval: int | None = None, revision_token: str | None = None,
        checkins: Sequence[dict[str, Any]] = (),
    ) -> PublishReceipt:
        """Upload ``keys`` (KEY_DTYPE) with a verification code (and the token of an earlier upload,
        to revise those keys; and sealed check-ins, ``venues.upload``); what the server took."""
        body = publish_body(keys, code, symptom_onset_interval, revision_token, checkins)
        try:
            doc = self._json("POST", "/v1/publish", json=body)
        except KeyServerError as exc:
            if exc.code in USER_REFUSALS:
                what = USER_REFUSALS[exc.code] or str(exc).split(": ", 2)[-1]
                raise UploadRefusedError(f"upload refused: {what}", exc.code, exc.status) from None
            raise
        token = doc.get("revisionToken")
        return PublishReceipt(
            _count(doc.get("insertedExposures")),
            _count(doc.get("revisedExposures")),
            token if isinstance(token, str) and 0 < len(token) <= MAX_REVISION_TOKEN_CHARS else None,
            checkins=_count(doc.get("insertedCheckIns")),
        )

    def signing_key(self) -> PinnedKey:
        doc = self._json("GET", "/v1/signing-key")
        key = doc.get("public_key")
        if not isinstance(key, str) or not key:
            raise KeyServerError(f"{self.base_url}/v1/signing-key: no public_key in the answer")
        key_id, version = doc.get("key_id"), doc.get("key_version")
        return PinnedKey(key, key_id if isinstance(key_id, str) else None, version if isinstance(version, str) else None)

    def index(self) -> list[str]:
        """Batch names, oldest first; a name that is not a plain file name is an error (no paths)."""
        text = self._request("GET", "/v1/exports/index.txt").decode("utf-8", "replace")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        for name in names:
            if not BATCH_NAME.match(name):
                raise KeyServerError(f"{self.base_url}/v1/exports/index.txt lists {name[:60]!r}, not a batch file name")
        return names

    def batch(self, name: str) -> bytes:
        return self._request("GET", f"/v1/exports/{name}", max_bytes=MAX_KEY_FILE_BYTES)


@dataclass(frozen=True)
class PublishReceipt:
    inserted: int  # keys the server stored new
    revised: int  # keys it had, whose report type this upload changed
    revision_token: str | None  # show it with a later upload of the same keys (None: the server gave none)
    checkins: int = 0  # check-ins (venue reports) the server took


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def publish_body(
    keys: np.ndarray, code: str, symptom_onset_interval: int | None = None, revision_token: str | None = None,
    checkins: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``/v1/publish`` JSON, padded with random bytes so its size says little."""
    body: dict[str, Any] = {
        "temporaryExposureKeys": [
            {
                "key": base64.b64encode(bytes(k["key"])).decode("ascii"),
                "rollingStartNumber": int(k["rolling_start"]),
                "rollingPeriod": int(k["rolling_period"]),
                "transmissionRisk": int(k["transmission_risk"]),
            }
            for k in keys
        ],
        "verificationPayload": code,
        "padding": base64.b64encode(secrets.token_bytes(secrets.randbelow(512) + 64)).decode("ascii"),
    }
    if symptom_onset_interval is not None:
        body["symptomOnsetInterval"] = symptom_onset_interval
    if revision_token is not None:
        body["revisionToken"] = revision_token
    if checkins:
        body["checkInProtectedReports"] = list(checkins)  # {"day", "report"}: bluezone/venues/upload.py
    return body


def keys_to_upload(daily: Iterable[DailyKey], now: float, include_today: bool, days: int = UPLOAD_DAYS) -> np.ndarray:
    """The device's keys of the last ``days`` days, oldest first; today's only if ``include_today``.

    Today's key is released the same day (as GAEN does since v1.5): it is cut short to end with
    the current 10-minute interval, so the server may publish it as soon as that interval is
    over, when the daemon has replaced it with a fresh key for the rest of the day.
    """
    return keys_from_daily(_upload_selection(daily, now, include_today, days))


def _upload_selection(daily: Iterable[DailyKey], now: float, include_today: bool, days: int) -> list[DailyKey]:
    today = rolling_start(now)
    current = interval_number(now)
    first = today - days * ROLLING_PERIOD
    chosen: list[DailyKey] = []
    for key in sorted(daily, key=lambda k: k.rolling_start):
        if key.end <= first or key.rolling_start > current:
            continue  # too old, or not started yet
        if key.end > current:  # on air now: today's key
            if not include_today:
                continue
            if key.end > current + 1:
                # ends with the current interval: its RPIs sent so far all match, the daemon stops it at
                # the interval's end, and the server's embargo holds it until then (at most 10 minutes)
                key = DailyKey(key.key, key.rolling_start, current + 1 - key.rolling_start)
        chosen.append(key)
    return chosen


def today_key_in_use(daily: Iterable[DailyKey], now: float) -> bool:
    """Whether one of ``daily`` is still being broadcast now (so uploading it is a choice)."""
    current = interval_number(now)
    return any(k.rolling_start <= current < k.end for k in daily)


def upload_own_keys(
    store: Any, client: KeyServerClient, code: str, now: float, *,
    include_today: bool, symptom_onset_interval: int | None = None, days: int = UPLOAD_DAYS,
    exposure_date: dt.date | None = None,
    checkins: Sequence[dict[str, Any]] = (),
) -> tuple[np.ndarray, PublishReceipt]:
    """Publish the device's keys; returns (keys sent, what the server took).

    The revision token of this device's last upload to the same server goes with them, so a
    later code (a "likely" diagnosis confirmed, or a negative test) can change the report type
    of keys sent before; the server's new token replaces it in the node's database.
    Only after the server accepted them is a released key of today cut short in the store, so
    the daemon stops broadcasting it when the current interval ends and starts a new key for the
    rest of the day.
    With ``exposure_date`` (a close contact, F1, with a recursive code) only the keys from that day
    on go: before it the F1 could pass nothing on.
    """
    chosen = _upload_selection(store.daily_keys(), now, include_today, days)
    if exposure_date is not None:
        first = (exposure_date - dt.date(1970, 1, 1)).days * ROLLING_PERIOD
        chosen = [k for k in chosen if k.end > first]
    if not chosen:
        raise InputError(f"no daily keys of the last {days} days in this database: nothing to upload")
    keys = keys_from_daily(chosen)
    state = ServerState(store.db.conn)
    receipt = client.publish(keys, code, symptom_onset_interval, state.revision_token(client.base_url, now), checkins)
    if receipt.revision_token is not None:
        state.save_revision_token(client.base_url, receipt.revision_token, now)
    current = interval_number(now)
    for key in chosen:
        if key.end == current + 1 and key.rolling_period < ROLLING_PERIOD:
            store.save_daily_key(key)  # updates the period: the key ends with this interval
    return keys, receipt


# --- what a node remembers about servers ------------------------------------------------------


class ServerState:
    """Pinned keys, processed batches and the last upload's revision token, in tables of the
    node's SQLite database (0600, like the daily keys the token stands for)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS keyserver_pins (server TEXT PRIMARY KEY, public_key TEXT NOT NULL,"
                " key_id TEXT, key_version TEXT, pinned_at REAL NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS keyserver_batches (server TEXT NOT NULL, name TEXT NOT NULL,"
                " keys INTEGER NOT NULL, processed_at REAL NOT NULL, PRIMARY KEY (server, name))"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS keyserver_revision_tokens (server TEXT PRIMARY KEY, token TEXT NOT NULL,"
                " saved_at REAL NOT NULL)"
            )

    def revision_token(self, server: str, now: float | None = None) -> str | None:
        """The token of the last upload to ``server``; None after 14 days (``now``), when every key it
        covered has left the server, and then it is deleted."""
        if now is not None:
            with self.conn:
                self.conn.execute(
                    "DELETE FROM keyserver_revision_tokens WHERE saved_at < ?", (now - RETENTION_DAYS * DAY_SECONDS,)
                )
        row = self.conn.execute("SELECT token FROM keyserver_revision_tokens WHERE server = ?", (server,)).fetchone()
        return str(row[0]) if row else None

    def save_revision_token(self, server: str, token: str, now: float) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO keyserver_revision_tokens (server, token, saved_at) VALUES (?, ?, ?)",
                (server, token, now),
            )

    def pinned(self, server: str) -> PinnedKey | None:
        row = self.conn.execute(
            "SELECT public_key, key_id, key_version FROM keyserver_pins WHERE server = ?", (server,)
        ).fetchone()
        return PinnedKey(*row) if row else None

    def pin(self, server: str, key: PinnedKey, now: float) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO keyserver_pins (server, public_key, key_id, key_version, pinned_at) VALUES (?, ?, ?, ?, ?)",
                (server, key.public_key, key.key_id, key.key_version, now),
            )

    def processed(self, server: str) -> set[str]:
        rows = self.conn.execute("SELECT name FROM keyserver_batches WHERE server = ?", (server,)).fetchall()
        return {r[0] for r in rows}

    def mark_processed(self, server: str, batches: dict[str, int], now: float) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT OR IGNORE INTO keyserver_batches (server, name, keys, processed_at) VALUES (?, ?, ?, ?)",
                [(server, name, n, now) for name, n in batches.items()],
            )


def resolve_pin(
    client: KeyServerClient, state: ServerState, given: PinnedKey | None, now: float
) -> tuple[PinnedKey, bool]:
    """The key to verify batches with, and whether it was pinned just now.

    ``given`` (``--server-key``) or, on first contact, the key the server announces (trust on
    first use).  A key different from the one pinned is ServerKeyChangedError.
    """
    server = client.base_url
    pinned = state.pinned(server)
    if given is not None:
        if pinned is not None and pinned.public_key != given.public_key:
            raise ServerKeyChangedError(
                f"--server-key differs from the key pinned for {server}: refusing (remove the pin to re-pin)"
            )
        if pinned is None:
            state.pin(server, given, now)
            return given, True
        return pinned, False
    if pinned is not None:
        try:
            announced = client.signing_key()
        except KeyServerError:
            announced = None  # exports may come from a static host with no signing-key endpoint
        if announced is not None and announced.public_key != pinned.public_key:
            raise ServerKeyChangedError(
                f"the key server {server} now announces a different signing key than the one pinned: refusing"
            )
        return pinned, False
    announced = client.signing_key()
    announced.key  # must parse
    state.pin(server, announced, now)
    log.warning("pinned the signing key of %s on first use (key id %s)", server, announced.key_id)
    return announced, True


@dataclass
class ServerCheckResult:
    keys: np.ndarray = field(default_factory=lambda: empty_keys(0))
    batches: list[str] = field(default_factory=list)  # verified and used
    rejected: dict[str, str] = field(default_factory=dict)  # name -> why
    exposures: list[Exposure] = field(default_factory=list)
    sightings: int = 0
    revoked: int = 0  # keys with report type "revoked", downloaded but not matched
    revised: int = 0  # revisions in the batches (``revised_keys``): applied before matching
    withdrawn: list[Exposure] = field(default_factory=list)  # exposures to keys of earlier batches, now revoked
    updated: list[Exposure] = field(default_factory=list)  # exposures to keys of earlier batches, now confirmed
    pinned_now: bool = False
    venue_files: list[str] = field(default_factory=list)  # venue-warning files verified and matched
    venue_exposures: list[Any] = field(default_factory=list)  # bluezone.venues.matching.VenueExposure

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": len(self.keys),
            "batches": self.batches,
            "rejected": self.rejected,
            "sightings": self.sightings,
            "revoked_keys": self.revoked,
            "revised_keys": self.revised,
            "exposures": [e.as_dict() for e in self.exposures],
            "withdrawn": [e.as_dict() for e in self.withdrawn],
            "updated": [e.as_dict() for e in self.updated],
            "close_contact": any(e.score.close_contact for e in self.exposures),
            "venue_files": self.venue_files,
            "venue_exposures": [v.as_dict() for v in self.venue_exposures],
        }


def check_server(
    client: KeyServerClient,
    state: ServerState,
    load_sightings: Callable[[float, float], np.ndarray],
    *,
    server_key: PinnedKey | None = None,
    scorer: Scorer | None = None,
    rssi_correction: int = 0,
    now: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    load_visits: Callable[[], list[Any]] | None = None,
) -> ServerCheckResult:
    """Download new batches, verify each, match their keys, remember them.

    A batch whose signature is missing or wrong is not used, not remembered, and listed in
    ``rejected`` (the caller reports it as an error).  Venue-warning files in the same index
    are verified with the same key and matched against ``load_visits()`` (the device's
    check-ins) in the same run.
    """
    now = time.time() if now is None else now
    pin, pinned_now = resolve_pin(client, state, server_key, now)
    public_key = pin.key
    seen = state.processed(client.base_url)
    new = [n for n in client.index() if n not in seen]
    result = ServerCheckResult(pinned_now=pinned_now)
    parts: list[np.ndarray] = []
    revisions: list[np.ndarray] = []
    counts: dict[str, int] = {}
    venue_reports: list[Any] = []
    for i, name in enumerate(new):
        if progress:
            progress(i, len(new), name)
        data = client.batch(name)
        if is_venue_file(name):
            try:
                reports = open_signed_venue_zip(data, public_key, pin.key_id)
            except BluezoneError as exc:
                log.error("venue file %s rejected: %s", name, exc)
                result.rejected[name] = str(exc)
                continue
            venue_reports.extend(reports)
            counts[name] = len(reports)
            result.venue_files.append(name)
            continue
        try:
            export, _ = open_signed_export(data, public_key, pin.key_id)
        except ExportSignatureError as exc:
            log.error("batch %s rejected: %s", name, exc)
            result.rejected[name] = str(exc)
            continue
        except BluezoneError as exc:
            result.rejected[name] = f"malformed batch: {exc}"
            continue
        parts.append(export.keys)
        revisions.append(export.revised_keys)
        counts[name] = len(export.keys) + len(export.revised_keys)
        result.batches.append(name)
    if progress and new:
        progress(len(new), len(new), "")
    plain = np.concatenate(parts) if parts else np.zeros(0, KEY_DTYPE)
    revised = np.concatenate(revisions) if revisions else np.zeros(0, KEY_DTYPE)
    result.revised = len(revised)
    # a revision of a key that came in a batch of an earlier check changes what that check reported:
    # its exposures are listed apart (withdrawn when revoked, updated when confirmed), not as new ones
    here = {bytes(k) for k in plain["key"]}
    earlier = np.array([bytes(k) not in here for k in revised["key"]], bool)
    result.keys = apply_revisions(plain, revised[~earlier])
    is_revoked = revised[earlier]["report_type"] == REPORT_TYPE_REVOKED
    withdrawn_keys, updated_keys = revised[earlier][is_revoked].copy(), revised[earlier][~is_revoked]
    withdrawn_keys["report_type"] = 0  # matched as they were reported before
    # revoked keys (a negative test) are downloaded but never matched: check_sightings skips them
    revoked = result.keys["report_type"] == REPORT_TYPE_REVOKED
    result.revoked = int(revoked.sum()) + len(withdrawn_keys)
    span = sightings_span(np.concatenate([result.keys[~revoked], withdrawn_keys, updated_keys]))
    if span is not None:
        sightings = load_sightings(*span)
        result.sightings = len(sightings)
        result.exposures = check_sightings(result.keys, sightings, scorer, rssi_correction=rssi_correction)
        if len(withdrawn_keys):
            result.withdrawn = check_sightings(withdrawn_keys, sightings, scorer, rssi_correction=rssi_correction)
        if len(updated_keys):
            result.updated = check_sightings(updated_keys, sightings, scorer, rssi_correction=rssi_correction)
    # what earlier checks told about revised keys (an F2 warning that is now F1 is an upgrade, not news)
    memory = WarningMemory(state.conn)
    result.withdrawn = memory.with_earlier_levels(withdrawn_keys, result.withdrawn)
    result.updated = memory.with_earlier_levels(updated_keys, result.updated)
    memory.remember(result.keys, result.exposures, now)
    memory.remember(updated_keys, result.updated, now)
    if venue_reports and load_visits is not None:
        result.venue_exposures = match_venue_reports(load_visits(), venue_reports)
    state.mark_processed(client.base_url, counts, now)
    return result
