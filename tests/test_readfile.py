"""Files the user names: a FIFO, a device or a symlink to one is refused at once, and reading
stops at the cap whatever ``st_size`` says (issue 14, item 4)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluezone.errors import ConfigError, InputError, KeyFileError
from bluezone.readfile import read_regular_file


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "keys.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def zero(tmp_path: Path) -> Path:
    link = tmp_path / "keys.zip"
    link.symlink_to("/dev/zero")
    return link


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    with pytest.raises(KeyFileError, match="is a FIFO, not a key file"):
        read_regular_file(fifo, 1000, "key file", KeyFileError)


def test_a_symlink_to_a_device_is_refused(zero: Path) -> None:
    with pytest.raises(InputError, match="is a device"):
        read_regular_file(zero, 1000)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        read_regular_file(tmp_path, 1000)


@given(st.binary(max_size=300), st.integers(0, 300))
def test_reads_at_most_the_cap(data: bytes, limit: int) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        if len(data) <= limit:
            assert read_regular_file(f.name, limit) == data
        else:
            with pytest.raises(InputError, match="too large"):
                read_regular_file(f.name, limit)


@pytest.mark.timeout(30)
def test_config_and_bluezone3_lists_refuse_them_too(fifo: Path, zero: Path, tmp_path: Path) -> None:
    from bluezone.config import read_toml_file
    from bluezone.matching.bluezone3 import load_f0_list

    for path in (fifo, zero):
        with pytest.raises(ConfigError, match="not a config file"):
            read_toml_file(path)
        with pytest.raises(KeyFileError, match="not a F0 list"):
            load_f0_list(path)


@pytest.mark.timeout(30)
def test_check_refuses_a_fifo_and_dev_zero_at_once(fifo: Path, zero: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli

    for path in (fifo, zero):
        result = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(tmp_path / "x.db")], obj={})
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: ") and "not a key file" in result.output


@pytest.mark.timeout(30)
def test_a_server_key_that_is_no_regular_file_is_refused(fifo: Path, zero: Path) -> None:
    from bluezone.client.pinning import read_server_key

    for path in (fifo, zero):
        with pytest.raises(InputError, match="not a server key"):
            read_server_key(path)


def test_open_regular_file_refuses_what_read_regular_file_refuses(fifo: Path, zero: Path, tmp_path: Path) -> None:
    from bluezone.readfile import open_regular_file

    for path, says in ((fifo, "is a FIFO"), (zero, "is a device"), (tmp_path, "is a directory"), (tmp_path / "none", "cannot read")):
        with pytest.raises(KeyFileError, match=says):
            with open_regular_file(path, 1000, "key file", KeyFileError):
                raise AssertionError("opened")
    big = tmp_path / "big.zip"
    big.write_bytes(bytes(1001))
    with pytest.raises(KeyFileError, match="key file too large"):
        with open_regular_file(big, 1000, "key file", KeyFileError):
            raise AssertionError("opened")
    with open_regular_file(big, 1001, "key file", KeyFileError) as file:
        assert file.read(5) == bytes(5) and file.seek(0) == 0  # seekable, for zipfile
    with pytest.raises(KeyFileError, match="cannot read key file .*: boom"):
        with open_regular_file(big, 1001, "key file", KeyFileError):
            raise OSError("boom")
