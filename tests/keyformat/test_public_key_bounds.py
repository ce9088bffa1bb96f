"""A signing key is a P-256 public key or one clear error (ExportSignatureError, exit 2), whatever the bytes:
an EC key on a curve OpenSSL does not support (secp112r1) or with explicit curve parameters made cryptography
raise UnsupportedAlgorithm, which is no ValueError, so `check --server-key p112.pem` (or a key server announcing
such a key on first use) said 'Error: UnsupportedAlgorithm: Curve 1.3.132.0.6 is not supported', exit 1."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.errors import ExportSignatureError
from bluezone.keyformat.export import load_public_key

#: `openssl ecparam -name secp112r1 -genkey | openssl ec -pubout`: a curve cryptography does not support
SECP112R1 = b"""-----BEGIN PUBLIC KEY-----
MDIwEAYHKoZIzj0CAQYFK4EEAAYDHgAETuqZJN8VN8TcR96iF0i+QFBM925pbLaD
EgCTag==
-----END PUBLIC KEY-----
"""
#: a binary curve given by explicit parameters (`-param_enc explicit`), which it refuses too
EXPLICIT = b"""-----BEGIN PUBLIC KEY-----
MIHPMIGgBgcqhkjOPQIBMIGUAgEBMB0GByqGSM49AQIwEgICAJsGCSqGSM49AQID
AgIBPjAsBBQAAAAAAAAAAAAAAAAAAAAAAAAAAAQUAAAAAAAAAAAAAAAAAAAAAAAH
M48EKQQAAAAAAAAAAAAAAAAAAAAAAAAAewAAAAAAAAAAAAAAAAAAAAAAAAHIAhQC
qqqqqqqqqqqqx/PHiBvQho+obAIBAwMqAAQHeD9p0o6CcOOzJmZCOGCghAzuzgF6
cLfl7dN1afK20WLkwxmQtOL2
-----END PUBLIC KEY-----
"""
#: its private key (`openssl pkcs8 -topk8 -nocrypt`), a test key made for this file
SECP112R1_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
ME4CAQAwEAYHKoZIzj0CAQYFK4EEAAYENzA1AgEBBA4xWcpXNNx0w0KAR/2OSqEg
Ax4ABE7qmSTfFTfE3EfeohdIvkBQTPduaWy2gxIAk2o=
-----END PRIVATE KEY-----
"""
P256_DER = ec.derive_private_key(7, ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)


@pytest.mark.parametrize("pem", [SECP112R1, EXPLICIT], ids=["secp112r1", "explicit-parameters"])
def test_a_key_on_an_unsupported_curve_is_refused_as_no_p256_key(pem: bytes) -> None:
    with pytest.raises(ExportSignatureError, match="must be an ECDSA P-256 public key"):
        load_public_key(pem)


@settings(max_examples=400, deadline=None)
@given(at=st.integers(0, 26), value=st.integers(0, 255), base64_form=st.booleans())
def test_a_p256_key_with_a_changed_algorithm_byte_is_a_key_or_one_error(at: int, value: int, base64_form: bool) -> None:
    """The first 27 bytes hold the algorithm and curve identifiers: a changed one names another curve (often
    one OpenSSL lacks), another algorithm or nothing; whatever it names, a P-256 key or ExportSignatureError."""
    der = bytearray(P256_DER)
    der[at] = value
    data = base64.b64encode(der) if base64_form else bytes(der)
    try:
        key = load_public_key(data)
    except ExportSignatureError:
        return
    assert key.curve.name == "secp256r1"


def test_check_with_such_a_server_key_is_one_line_exit_2(tmp_path: Path) -> None:
    key = tmp_path / "p112.pem"
    key.write_bytes(SECP112R1)
    keys = tmp_path / "keys.json"
    keys.write_text('{"temporaryExposureKeys": []}')
    result = CliRunner().invoke(cli, ["check", "--keys", str(keys), "--server-key", str(key), "--db", str(tmp_path / "n.db")])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "P-256" in result.stderr and "UnsupportedAlgorithm" not in result.stderr


def test_a_signing_key_directory_with_such_a_private_key_is_one_line_exit_2(tmp_path: Path) -> None:
    """The key server's own private.pem on such a curve: 'UnsupportedAlgorithm', exit 1, on every export."""
    from bluezone.server.signing import PRIVATE_FILE, keygen

    keygen(tmp_path / "keys")
    (tmp_path / "keys" / PRIVATE_FILE).write_bytes(SECP112R1_PRIVATE)
    result = CliRunner().invoke(
        cli, ["server", "export", "--server-db", str(tmp_path / "s.db"), "--create-db", "--signing-key-dir", str(tmp_path / "keys"),
              "--export-dir", str(tmp_path / "out")],
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "no usable signing key" in result.stderr, result.stderr
