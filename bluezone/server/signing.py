"""The export signing key: a P-256 key pair in a directory, and the identity clients pin.

``keygen`` writes ``private.pem`` (0600), ``public.pem`` and ``signing_key.json`` (0644: key id,
version, algorithm, base64 DER public key: what GAEN apps are configured with), and beside them
the code key ``code_hmac.key`` (0600, see ``codes.CodeKey``), into a directory it creates 0700.
Modes are set explicitly: under umask 000 the defaults would leave the directory open to all.
Each file is written whole under a name of its own and renamed into place, never through a link.
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
from bluezone.writefile import write_files

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


def _key_dir(out: Path) -> None:
    """Create ``out`` 0700; an existing directory is left as the operator made it."""
    if not out.exists():
        out.mkdir(parents=True)
        os.chmod(out, 0o700)


def refuse_key_links(out: Path) -> None:
    """A link at a key file's name is refused, even with --force: keygen wrote through it (a planted
    ``public.pem -> ../victim`` overwrote the victim, a dangling ``private.pem`` link put the new
    private key wherever it pointed)."""
    from bluezone.server.codes import CODE_KEY_FILE

    for name in (PRIVATE_FILE, PUBLIC_FILE, INFO_FILE, CODE_KEY_FILE):
        if (out / name).is_symlink():
            raise InputError(
                f"{out / name} is a symbolic link: refusing to write a key through it or replace it; remove the"
                " link (or give another --out)"
            )


def keygen(out: str | Path, key_id: str = "bluezone", key_version: str = "v1", force: bool = False) -> Signer:
    """Create a new P-256 signing key (and the code key, unless there is one) in ``out``; refuses to
    overwrite a signing key unless ``force``.

    The three files of the pair are written together (``writefile.write_files``): a write that fails
    (a full disk, the process killed) leaves the old key whole, never a new private key beside the
    old public one."""
    from bluezone.server.codes import CODE_KEY_FILE, CodeKey

    out = Path(out)
    refuse_key_links(out)
    if (out / PRIVATE_FILE).exists() and not force:
        # say where the key to publish is and what replacing it means (it said only 'refusing', walk14)
        raise InputError(
            f"{out / PRIVATE_FILE} exists: refusing to replace a signing key clients have pinned (the public key to"
            f" publish is {out / INFO_FILE}); to rotate it after a loss or leak, give --force (docs/server.md,"
            ' "Rotating the signing key")'
        )
    others = [name for name in (PUBLIC_FILE, INFO_FILE) if (out / name).exists()]
    if others and not force:  # a public key without its private one may still be what clients were given
        raise InputError(f"{out / others[0]} exists: refusing to replace it; give --force to write a new key pair")
    _key_dir(out)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = Signer(key, SignatureInfo(key_id, key_version, ECDSA_P256_SHA256))
    info = (json.dumps(signer.public_info(), indent=2) + "\n").encode()
    write_files(out, {PRIVATE_FILE: (pem, 0o600), PUBLIC_FILE: (public, 0o644), INFO_FILE: (info, 0o644)})
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
