"""The export signing key: a P-256 key pair in a directory, and the identity clients pin.

``keygen`` writes ``private.pem`` (0600), ``public.pem`` and ``signing_key.json`` (0644: key id,
version, algorithm, base64 DER public key: what GAEN apps are configured with), and beside them
the code key ``code_hmac.key`` (0600, see ``codes.CodeKey``), into a directory it creates 0700.
Modes are set explicitly: under umask 000 the defaults would leave the directory open to all.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.errors import ConfigError, InputError
from bluezone.keyformat.export import ECDSA_P256_SHA256, SignatureInfo, public_key_base64

PRIVATE_FILE = "private.pem"
PUBLIC_FILE = "public.pem"
INFO_FILE = "signing_key.json"
MAX_KEY_FILE_BYTES = 64 * 1024  # a P-256 PEM is ~250 bytes


@dataclass(frozen=True)
class Signer:
    """The server's private export key and the identity it signs batches under."""

    private_key: ec.EllipticCurvePrivateKey
    info: SignatureInfo

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def public_info(self) -> dict[str, Any]:
        return {
            "key_id": self.info.key_id,
            "key_version": self.info.key_version,
            "algorithm": self.info.algorithm,
            "public_key": public_key_base64(self.public_key),
        }


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` with exactly ``mode`` (os.open's mode is filtered by the umask, and an existing
    file keeps its old mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)


def _key_dir(out: Path) -> None:
    """Create ``out`` 0700; an existing directory is left as the operator made it."""
    if not out.exists():
        out.mkdir(parents=True)
        os.chmod(out, 0o700)


def keygen(out: str | Path, key_id: str = "bluezone", key_version: str = "v1", force: bool = False) -> Signer:
    """Create a new P-256 signing key (and the code key, unless there is one) in ``out``; refuses to
    overwrite a signing key unless ``force``."""
    from bluezone.server.codes import CODE_KEY_FILE, CodeKey

    out = Path(out)
    if (out / PRIVATE_FILE).exists() and not force:
        # say where the key to publish is and what replacing it means (it said only 'refusing', walk14)
        raise InputError(
            f"{out / PRIVATE_FILE} exists: refusing to replace a signing key clients have pinned (the public key to"
            f" publish is {out / INFO_FILE}); to rotate it after a loss or leak, give --force (docs/server.md,"
            ' "Rotating the signing key")'
        )
    _key_dir(out)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(out / PRIVATE_FILE, pem, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write(out / PUBLIC_FILE, public, 0o644)
    signer = Signer(key, SignatureInfo(key_id, key_version, ECDSA_P256_SHA256))
    _write(out / INFO_FILE, (json.dumps(signer.public_info(), indent=2) + "\n").encode(), 0o644)
    if not (out / CODE_KEY_FILE).exists():  # a new signing key does not invalidate the codes already issued
        CodeKey.generate().save(out)
    return signer


def next_key_version(version: str) -> str | None:
    """The version after ``version`` when it ends in a number (``v1`` -> ``v2``, ``2020-3`` -> ``2020-4``), else None."""
    match = re.fullmatch(r"(.*?)(\d+)", version)
    return None if match is None else f"{match[1]}{int(match[2]) + 1}"


def load_signer(directory: str | Path) -> Signer:
    """The signing key written by ``keygen``."""
    from bluezone.readfile import read_regular_file

    directory = Path(directory)
    try:
        # read_regular_file: a FIFO or a link to /dev/zero here hung the server or ran it out of memory
        info = json.loads(read_regular_file(directory / INFO_FILE, MAX_KEY_FILE_BYTES, "signing key info", ConfigError))
        pem = read_regular_file(directory / PRIVATE_FILE, MAX_KEY_FILE_BYTES, "signing key", ConfigError)
        key = serialization.load_pem_private_key(pem, password=None)
        key_id, key_version = str(info["key_id"]), str(info["key_version"])
    except ConfigError as exc:
        raise ConfigError(f"{exc}; create a signing key with `bluezone server keygen`") from None
    except (ValueError, TypeError, KeyError, RecursionError, UnsupportedAlgorithm) as exc:  # JSON nested thousands deep; a curve OpenSSL lacks
        raise ConfigError(f"no usable signing key in {directory} ({exc!r}); create one with `bluezone server keygen`") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{directory / PRIVATE_FILE} is not a P-256 private key")
    signer = Signer(key, SignatureInfo(key_id, key_version, ECDSA_P256_SHA256))
    if info.get("public_key") != signer.public_info()["public_key"]:
        # a private.pem copied from another key directory signed every batch, and every client given
        # the published signing_key.json refused every one of them
        raise ConfigError(
            f"{directory / PRIVATE_FILE} is not the private key of {directory / INFO_FILE} (the key clients pin):"
            " batches signed with it would be refused; put back the matching pair"
        )
    return signer
