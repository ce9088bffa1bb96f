"""Signing-key rotation (docs/server.md, "Rotating the signing key").  A hand-over as GAEN servers do it
signs each file with the old and the new key for a while: a node verifies any signature naming its
pinned key's id, so such a file is taken under either pin.  bluezone's exporter signs with one key
(a rotation is a break): these tests keep the node's side of a hand-over true."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.errors import ExportSignatureError
from bluezone.keyformat.export import build_export_bin, open_signed_export, sign_export, write_export_zip
from bluezone.keyformat.keys import empty_keys
from bluezone.server.signing import keygen


def _keys() -> np.ndarray:
    keys = empty_keys(2)
    keys["key"] = [b"\x01" * 16, b"\x02" * 16]
    keys["rolling_start"], keys["rolling_period"], keys["report_type"] = 2_940_000, 144, 1
    return keys


def test_a_file_signed_by_the_old_and_the_new_key_is_taken_under_either_pin(tmp_path: Path) -> None:
    old = keygen(tmp_path / "old", key_version="v1")
    new = keygen(tmp_path / "new", key_version="v2")
    export_bin = build_export_bin(_keys(), region="XX", signature_infos=[old.info, new.info])
    # a TEKSignatureList's signatures are a repeated field: two lists one after the other are one list of two
    both = write_export_zip(export_bin, sign_export(export_bin, old.private_key, old.info)
                            + sign_export(export_bin, new.private_key, new.info))
    for signer in (old, new):
        export, info = open_signed_export(both, signer.public_key, signer.info.key_id)
        assert info == signer.info and len(export.keys) == 2
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ExportSignatureError, match="does not verify against the pinned public key"):
        open_signed_export(both, stranger, "bluezone")


def test_keygen_force_keeps_the_code_key(tmp_path: Path) -> None:
    """A rotation replaces the signing key only: codes issued before it still work."""
    keys = tmp_path / "keys"
    keygen(keys)
    code_key = (keys / "code_hmac.key").read_bytes()
    rotated = keygen(keys, key_version="v2", force=True)
    assert (keys / "code_hmac.key").read_bytes() == code_key and rotated.info.key_version == "v2"
