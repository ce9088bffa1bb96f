"""write_private (`keys export --out`): a file there is replaced whole or not at all.  It was truncated first and
then written, so a write the disk refused part-way left it empty or cut short: on a filled tmpfs
`bluezone keys export --out keys.json` over an earlier export left a 0-byte keys.json, exit 2."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.keyformat.keyfile import write_private

LIMIT = 4096  # bytes a file may reach while the disk "fills"


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes of any file fail (EFBIG), as a full disk fails them part-way."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel's signal ends the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@settings(max_examples=40, deadline=None)
@given(old=st.binary(max_size=LIMIT), extra=st.integers(1, 3 * LIMIT))
def test_a_write_that_fails_part_way_leaves_the_old_file(tmp_path_factory: pytest.TempPathFactory, old: bytes, extra: int) -> None:
    path = tmp_path_factory.mktemp("out") / "keys.json"
    path.write_bytes(old)
    with _file_size_limit(LIMIT), pytest.raises(OSError):
        write_private(path, b"k" * (LIMIT + extra))
    assert path.read_bytes() == old
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left


def test_a_write_that_fits_replaces_it_private(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_link_is_followed_to_its_file_and_stays_a_link(tmp_path: Path) -> None:
    """--out naming a link (keys kept on another volume): the keys go where it points, as before."""
    (tmp_path / "vault").mkdir()
    link = tmp_path / "keys.json"
    link.symlink_to(tmp_path / "vault" / "keys.json")
    write_private(link, b"new")
    assert link.is_symlink() and (tmp_path / "vault" / "keys.json").read_bytes() == b"new"


def test_a_pipe_is_written_into(tmp_path: Path) -> None:
    """/dev/stdout or >(gpg -e): no file to replace, written as before."""
    read, write = os.pipe()
    try:
        write_private(f"/proc/self/fd/{write}", b"into the pipe")
        assert os.read(read, 100) == b"into the pipe"
    finally:
        os.close(read)
        os.close(write)


def test_a_device_written_into_keeps_its_mode() -> None:
    """`keys export --out /dev/null` (as root) made /dev/null 0600: every other user's `> /dev/null` then
    failed ('cannot create /dev/null: Permission denied'), PostgreSQL's initdb among them (seen on the
    shared machine twice in one night).  A terminal, pipe or device is written into, its mode left alone."""
    master, slave = os.openpty()  # a terminal of our own, as /dev/null is a device: any user may make one
    try:
        path = os.ttyname(slave)
        os.chmod(path, 0o620)
        write_private(path, b"keys\n")
        assert os.read(master, 100) == b"keys\r\n"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o620
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.timeout(30)  # it waited for a reader for ever
def test_a_fifo_nobody_reads_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO at --out (planted in a shared folder, or a mistake) was opened for writing blocking: the
    command waited for a reader for ever.  It is refused with a one-line reason; a FIFO someone reads
    (``>(gpg -e)``, a named pipe with its reader) is written into as before."""
    fifo = tmp_path / "keys.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        write_private(fifo, b"keys")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_private(fifo, b"keys")
        assert os.read(reader, 100) == b"keys"
    finally:
        os.close(reader)


@pytest.mark.timeout(60)
def test_keys_export_into_a_fifo_nobody_reads_is_one_line_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from bluezone.proximity.store import SightingStore

    SightingStore.open(tmp_path / "a.db").close()
    fifo = tmp_path / "keys.json"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "bluezone.cli", "keys", "export", "--db", str(tmp_path / "a.db"), "--out", str(fifo)],
        capture_output=True, text=True, timeout=50,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1:] == [f"Error: cannot write the keys to {fifo}: a FIFO (named pipe) nobody reads from"], done.stderr


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="gives a FIFO to another user (chown)")
def test_a_fifo_another_user_planted_and_reads_gets_no_keys(tmp_path: Path) -> None:
    """A FIFO planted at --out in a shared folder by another user, who reads it, took the F0's keys (exit 0,
    "wrote 1 keys").  It is refused; the user's own named FIFO and a pipe (``>(gpg -e)``) are written into."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    fifo = shared / "keys.json"
    os.mkfifo(fifo)
    os.chown(fifo, 65534, 65534)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError, match="another user's"):
            write_private(fifo, b"keys")
        assert os.read(reader, 100) == b""
        os.chown(fifo, os.geteuid(), os.getegid())
        write_private(fifo, b"keys")
        assert os.read(reader, 100) == b"keys"
    finally:
        os.close(reader)
    read_end, write_end = os.pipe()
    try:
        os.fchown(write_end, 65534, 65534)  # (a pipe's owner is its maker's; the name resolves to no FIFO)
        write_private(f"/proc/self/fd/{write_end}", b"keys")
        assert os.read(read_end, 100) == b"keys"
    finally:
        os.close(read_end)
        os.close(write_end)


def _planted_link(tmp_path: Path) -> tuple[Path, Path]:
    """A link in a shared folder (a sticky /tmp) to a file of the writer's, made by another user (uid 65534)."""
    victim = tmp_path / "home" / ".bashrc"
    victim.parent.mkdir()
    victim.write_bytes(b"the victim's own file")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    link = shared / "keys.json"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    return link, victim


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a link of another user's is made by root (CI runs as root)")


@needs_root
def test_a_link_another_user_planted_is_not_followed(tmp_path: Path) -> None:
    """It was followed in user space (realpath), so the keys replaced whatever file it named."""
    link, victim = _planted_link(tmp_path)
    with pytest.raises(PermissionError, match="a link of another user's \\(uid 65534\\), not followed"):
        write_private(link, b"keys")
    assert victim.read_bytes() == b"the victim's own file" and link.is_symlink()


@needs_root
def test_keys_export_force_over_a_planted_link_says_so_and_writes_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock
    from bluezone.proximity.store import SightingStore

    link, victim = _planted_link(tmp_path)
    with SightingStore.open(tmp_path / "a.db"):
        pass
    done = CliRunner().invoke(cli, ["keys", "export", "--db", str(tmp_path / "a.db"), "--out", str(link), "--force"],
                              obj={"clock": VirtualClock(1_795_694_400.0)})
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith(f"Error: cannot write the keys to {link}: it is a link of another user's (uid 65534)")
    assert len(done.stderr.strip().splitlines()) == 1
    assert victim.read_bytes() == b"the victim's own file"


def test_a_chain_of_own_links_is_followed_to_the_end(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    (tmp_path / "a").symlink_to("vault/keys.json")  # relative: to the link's own folder
    (tmp_path / "b").symlink_to(tmp_path / "a")
    write_private(tmp_path / "b", b"new")
    assert (tmp_path / "vault" / "keys.json").read_bytes() == b"new" and (tmp_path / "b").is_symlink()


def test_a_link_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError):
        write_private(tmp_path / "a", b"new")
