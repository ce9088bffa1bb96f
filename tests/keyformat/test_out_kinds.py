"""What is at ``keys export --out`` is named in its error: a Unix socket was "a FIFO (named pipe) nobody reads
from", a FIFO at an F0 list's --out was "already exists: it may be the F0 list not yet handed over"."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.keyformat.keyfile import write_private
from bluezone.proximity.store import SightingStore

NOW = 1_795_694_400.0  # 2026-11-26 12:00 UTC


@pytest.fixture
def unix_socket(tmp_path: Path):
    path = tmp_path / "keys.json"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        yield path


def test_a_unix_socket_is_called_one(unix_socket: Path) -> None:
    with pytest.raises(OSError, match="^.*a Unix socket, not a file or a pipe$"):
        write_private(unix_socket, b"keys")


def _store(tmp_path: Path) -> Path:
    with SightingStore.open(tmp_path / "a.db") as store:
        store.save_bluezone3_key(int(NOW // 86400) - 2, bytes(range(32)), NOW - 2 * 86400)
    return tmp_path / "a.db"


def _export(db: Path, out: Path, *protocol: str):
    return CliRunner().invoke(
        cli, ["keys", "export", *protocol, "--db", str(db), "--out", str(out)], obj={"clock": VirtualClock(NOW)}
    )


def test_keys_export_to_a_unix_socket_says_so(tmp_path: Path, unix_socket: Path) -> None:
    done = _export(_store(tmp_path), unix_socket)
    assert done.exit_code == 2
    assert done.stderr.strip().splitlines() == [f"Error: cannot write the keys to {unix_socket}: a Unix socket, not a file or a pipe"]


@pytest.mark.parametrize("kind", ["fifo", "socket", "link"])
def test_an_f0_list_out_names_what_is_there_and_keeps_the_chain(tmp_path: Path, kind: str) -> None:
    db = _store(tmp_path)
    out = tmp_path / "f0.json"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "link":
        out.symlink_to(tmp_path / "nowhere")
    sock = socket.socket(socket.AF_UNIX)
    try:
        if kind == "socket":
            sock.bind(str(out))
        with SightingStore.open(db) as store:
            chain = store.bluezone3_key()
        done = _export(db, out, "--protocol", "bluezone3")
    finally:
        sock.close()
    said = {"fifo": "a FIFO", "socket": "a Unix socket", "link": "a symbolic link"}[kind]
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.output
    assert done.stderr.startswith(f"Error: {out} is {said}: an F0 list is written only to a new file")  # was "already exists"
    assert "- for standard output" in done.stderr
    with SightingStore.open(db) as store:
        assert store.bluezone3_key() == chain  # the refused export started no new chain
