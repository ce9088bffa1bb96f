"""The key server's export signing key as a node pins it: given (``--server-key``) or trusted on
first use, then required of every batch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.errors import ExportSignatureError, InputError
from bluezone.keyformat.export import load_public_key, public_key_base64


MAX_SERVER_KEY_BYTES = 64 * 1024  # a PEM or signing_key.json is well under 1 kB


@dataclass(frozen=True)
class PinnedKey:
    """A server's export key as a client pins it."""

    public_key: str  # base64 DER
    key_id: str | None = None
    key_version: str | None = None

    @property
    def key(self) -> ec.EllipticCurvePublicKey:
        return load_public_key(self.public_key)


def read_server_key(path: str | Path) -> PinnedKey:
    """``--server-key FILE``: a ``signing_key.json``, a PEM public key, or base64 DER."""
    from bluezone.readfile import read_regular_file

    data = read_regular_file(path, MAX_SERVER_KEY_BYTES, "server key")
    pinned = None
    if data.lstrip().startswith(b"{"):
        try:
            doc = json.loads(data)
            pinned = PinnedKey(str(doc["public_key"]), doc.get("key_id"), doc.get("key_version"))
        except (ValueError, KeyError, TypeError, RecursionError):
            raise InputError(f"{path}: not a signing_key.json (needs 'public_key')") from None
        if not all(isinstance(v, (str, type(None))) for v in (pinned.key_id, pinned.key_version)):
            # kept in the store with the pin: a list there failed the check after its downloads, blaming the store
            raise InputError(f"{path}: 'key_id' and 'key_version' must be text, as `bluezone server keygen` writes them")
    try:
        if pinned is None:
            return PinnedKey(public_key_base64(load_public_key(data)))
        pinned.key  # validates
        return pinned
    except ExportSignatureError:  # whose message names neither the file nor what to give instead
        raise ExportSignatureError(
            f"{path}: not the server's signing key (an ECDSA P-256 public key): give the signing_key.json"
            " or public.pem that `bluezone server keygen` wrote"
        ) from None
