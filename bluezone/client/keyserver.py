"""HTTP calls from a node to one key server: publish keys, fetch the signing key and batches.

``KeyServerClient`` talks HTTP through httpx; pass ``http=`` (any ``httpx.Client``, e.g.
one with an in-process transport) or ``transport=`` so tests need no network.  Answers are
read at most a bounded size far, so a broken or hostile server cannot fill the device's memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from bluezone.client.pinning import PinnedKey
from bluezone.errors import InputError, KeyServerError, UploadRefusedError
from bluezone.keyformat.keyfile import publish_body
from bluezone.keyformat.keys import MAX_KEY_FILE_BYTES, MAX_REVISION_TOKEN_CHARS

MAX_ANSWER_BYTES = 1024 * 1024  # signing key, index and publish answers are a few kB at most
BATCH_NAME = re.compile(r"^[A-Za-z0-9_-]+\.zip$")  # what the server's exports are called
#: Publish refusals that are the user's input, not the server's trouble.
USER_REFUSALS = {
    "verification_code_invalid": "the verification code is not valid",
    "verification_code_used": "the verification code was already used (each code works once)",
    "verification_code_expired": "the verification code has expired: ask the health authority for a new one",
    "key_before_exposure": "",
}


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
    """What the server took from an upload."""

    inserted: int  # keys the server stored new
    revised: int  # keys it had, whose report type this upload changed
    revision_token: str | None  # show it with a later upload of the same keys (None: the server gave none)
    checkins: int = 0  # check-ins (venue reports) the server took


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
