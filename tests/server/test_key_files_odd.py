"""The key server's own key files (code key, signing key) read as files the user names are: a FIFO
or a link to /dev/zero in their place was a hang or a MemoryError; a signing_key.json without its
fields was a KeyError.  Each is now one ConfigError line (exit 2)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import ConfigError
from bluezone.server.codes import CODE_KEY_FILE, CodeKey
from bluezone.server.signing import INFO_FILE, PRIVATE_FILE, keygen, load_signer


@pytest.fixture()
def keys(tmp_path: Path) -> Path:
    out = tmp_path / "keys"
    keygen(out)
    return out


def _swap(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_code_key_that_is_no_regular_file_is_refused(keys: Path, kind: str) -> None:
    _swap(keys / CODE_KEY_FILE, kind)
    with pytest.raises(ConfigError, match="not a code key|code key"):
        CodeKey.load(keys)


@pytest.mark.parametrize("name", [INFO_FILE, PRIVATE_FILE])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_signing_key_file_that_is_no_regular_file_is_refused(keys: Path, name: str, kind: str) -> None:
    _swap(keys / name, kind)
    with pytest.raises(ConfigError, match="keygen"):
        load_signer(keys)


@pytest.mark.parametrize("text", ["{}", "[]", '{"key_id": "x"}'])
def test_signing_key_info_without_its_fields_is_one_line(keys: Path, text: str, tmp_path: Path) -> None:
    (keys / INFO_FILE).write_text(text)
    result = CliRunner().invoke(
        cli, ["server", "export", "--server-db", str(tmp_path / "s.db"), "--create-db", "--signing-key-dir", str(keys)]
    )
    assert result.exit_code == 2, result.output
    assert "keygen" in result.output and "Traceback" not in result.output


def test_keys_still_load(keys: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(keys, copy)
    assert load_signer(copy).public_info()["key_id"]
    assert CodeKey.load(copy).hash("1234") == CodeKey.load(keys).hash("1234")


def test_keygen_into_a_directory_it_cannot_make_is_one_line() -> None:
    """`server keygen --out /proc/nope` (or a directory without write permission) ended in
    'FileNotFoundError: ...', exit 1."""
    result = CliRunner().invoke(cli, ["server", "keygen", "--out", "/proc/bluezone-nope"])
    assert result.exit_code == 2 and "cannot write keys into /proc/bluezone-nope" in result.output, result.output
    assert "FileNotFoundError" not in result.output


def test_private_key_of_another_key_directory_is_refused(keys: Path, tmp_path: Path) -> None:
    """A private.pem copied from another key directory (a half-done rotation, a restore from the wrong
    backup) signed every batch, and every client given the published signing_key.json refused them all."""
    keygen(tmp_path / "other")
    shutil.copy(tmp_path / "other" / PRIVATE_FILE, keys / PRIVATE_FILE)
    with pytest.raises(ConfigError, match="not the private key of"):
        load_signer(keys)
    exports = tmp_path / "exports"
    result = CliRunner().invoke(cli, [
        "server", "export", "--server-db", str(tmp_path / "s.db"), "--create-db", "--signing-key-dir", str(keys),
        "--export-dir", str(exports),
    ])
    assert result.exit_code == 2, result.output
    assert "clients pin" in result.output and len(result.output.strip().splitlines()) == 1
    assert not exports.exists()
