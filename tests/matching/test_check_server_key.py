"""``check --keys X.zip --server-key K``: with a key given, the file's signature must verify with it,
or nothing is matched (issue 14, item 7: a zip with a broken signature was matched, exit 0)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matching_helpers import make_keys

from bluezone.cli import cli
from bluezone.keyformat.export import SignatureInfo, signed_export_zip
from bluezone.keyformat.keyfile import dump_keys_json
from bluezone.proximity.store import SightingStore
from bluezone.server.signing import keygen

DAY = 2_900_016


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    signer = keygen(tmp_path / "signing")
    keygen(tmp_path / "other")  # a second key pair: its public.pem is the wrong key
    keys = make_keys([(b"\xd1" * 16, DAY, 144), (b"\xd2" * 16, DAY, 144)])
    good = signed_export_zip(keys, signer.private_key, SignatureInfo("bluezone", "v1"), region="XX")
    paths = {"good": tmp_path / "good.zip", "json": tmp_path / "keys.json", "db": tmp_path / "node.db"}
    paths["good"].write_bytes(good)
    paths["json"].write_bytes(dump_keys_json(keys))
    # the same keys with export.bin changed after signing: the signature no longer holds
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    bin_ = bytearray(members["export.bin"])
    bin_[-1] ^= 1
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as z:
        for name, data in members.items():
            z.writestr(name, bytes(bin_) if name == "export.bin" else data)
    paths["tampered"] = tmp_path / "tampered.zip"
    paths["tampered"].write_bytes(tampered.getvalue())
    unsigned = io.BytesIO()
    with zipfile.ZipFile(unsigned, "w") as z:
        z.writestr("export.bin", members["export.bin"])
    paths["unsigned"] = tmp_path / "unsigned.zip"
    paths["unsigned"].write_bytes(unsigned.getvalue())
    paths["key"] = tmp_path / "signing" / "signing_key.json"
    paths["pem"] = tmp_path / "signing" / "public.pem"
    paths["other"] = tmp_path / "other" / "public.pem"
    with SightingStore.open(paths["db"]) as store:
        store.add_sightings(np.zeros(0, dtype=store.sightings().dtype))
    return paths


def check(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["check", *args], obj={})


@pytest.mark.parametrize("key", ["key", "pem"])
def test_a_good_signature_is_matched(setup: dict[str, Path], key: str) -> None:
    result = check("--keys", str(setup["good"]), "--server-key", str(setup[key]), "--db", str(setup["db"]))
    assert result.exit_code == 0, result.output
    assert "from 2 keys" in result.output


@pytest.mark.parametrize(
    "file, key, message",
    [
        ("tampered", "key", "does not verify"),
        ("good", "other", "does not verify"),
        ("unsigned", "key", "no export.sig"),
        ("json", "key", "carries no signature"),
    ],
)
def test_with_a_key_given_anything_unverified_is_refused(setup: dict[str, Path], file: str, key: str, message: str) -> None:
    result = check("--keys", str(setup[file]), "--server-key", str(setup[key]), "--db", str(setup["db"]))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output and "exposure" not in result.output


def test_without_a_key_the_user_chose_the_file(setup: dict[str, Path]) -> None:
    result = check("--keys", str(setup["tampered"]), "--db", str(setup["db"]))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "text",
    ["not a key\n", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", '{"public_key": "AAAA"}'],
)
def test_a_server_key_file_that_holds_no_key_is_named_in_one_line(setup: dict[str, Path], tmp_path: Path, text: str) -> None:
    # it was 'Error: not a valid public key: Could not deserialize key data. The data may be in an
    # incorrect format, ... Details: ASN.1 parsing error: ...': which file, and what to give instead?
    bad = tmp_path / "server-key.txt"
    bad.write_text(text)
    for source in ("good", "json"):
        result = check("--keys", str(setup[source]), "--db", str(setup["db"]), "--server-key", str(bad))
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [
            f"Error: {bad}: not the server's signing key (an ECDSA P-256 public key): give the signing_key.json"
            " or public.pem that `bluezone server keygen` wrote"
        ]
