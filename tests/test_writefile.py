"""writefile: files written whole or not at all, with exact modes, never through a link."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.writefile import _written, final_name, write_file, write_files, write_new_file

NAMES = ("a.pem", "b.pem", "c.json")
files_st = st.fixed_dictionaries({name: st.tuples(st.binary(max_size=300), st.sampled_from([0o600, 0o644, 0o640])) for name in NAMES})


def _state(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) for p in directory.iterdir()}


@settings(max_examples=30, deadline=None)
@given(files_st, files_st, st.integers(0, len(NAMES)))
def test_all_new_or_all_old(old: dict[str, tuple[bytes, int]], new: dict[str, tuple[bytes, int]], failing: int) -> None:
    """Whatever the bytes and modes (under umask 077), a write failing at any file leaves the old files
    exactly; one that does not fail leaves exactly the new ones; no temporary file either way."""
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        directory = Path(d)
        previous = os.umask(0o077)
        try:
            write_files(directory, old)
            real, calls = os.fsync, [0]

            def fsync(fd: int) -> None:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    calls[0] += 1
                    if calls[0] == failing + 1:
                        raise OSError(errno.EIO, os.strerror(errno.EIO))
                real(fd)

            mp.setattr(os, "fsync", fsync)
            if failing < len(NAMES):
                with pytest.raises(OSError):
                    write_files(directory, new)
                assert _state(directory) == old
            else:
                write_files(directory, new)
                assert _state(directory) == new
        finally:
            os.umask(previous)


def test_a_link_at_the_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "a.pem").symlink_to(victim)
    write_files(tmp_path / "keys", {"a.pem": (b"new", 0o600)})
    assert victim.read_text() == "precious" and not (tmp_path / "keys" / "a.pem").is_symlink()


@pytest.mark.parametrize("there", ["file", "link", "dangling link"])
def test_a_new_file_refuses_anything_at_its_name(tmp_path: Path, there: str) -> None:
    path, victim = tmp_path / "code.key", tmp_path / "victim"
    if there == "file":
        path.write_text("old")
    else:
        if there == "link":
            victim.write_text("precious")
        path.symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_new_file(path, b"secret", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["code.key", *(["victim"] if there == "link" else [])])
    assert not victim.exists() or victim.read_text() == "precious"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_characters="/\x00"), min_size=1, max_size=40))
def test_a_temporary_name_leads_back_to_its_file(name: str) -> None:
    """A clean-up of copies half written (the key server's exports) finds the file each was to become:
    from this module's names and from the fixed ``.<name>.tmp`` of earlier versions."""
    assert final_name(f".{name}.{os.urandom(8).hex()}.tmp") == name
    assert final_name(f".{name}.tmp") == name
    if not (name.startswith(".") and name.endswith(".tmp")):
        assert final_name(name) == name


def test_the_temporary_file_of_a_write_is_named_for_its_file(tmp_path: Path) -> None:
    made = _written(tmp_path, "1700000000-1699920000-0a1b2c-0001.zip", b"PK", None)
    assert made.parent == tmp_path and final_name(made.name) == "1700000000-1699920000-0a1b2c-0001.zip"


def test_a_public_file_gets_a_new_files_mode_under_the_umask(tmp_path: Path) -> None:
    """Exports (mode None) are made as any new file is (0666 under the umask), as before they were written here."""
    previous = os.umask(0o027)
    try:
        write_file(tmp_path / "index.txt", b"a.zip\n", None)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "index.txt").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["index.txt"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("planted", ["link", "fifo"])
def test_a_planted_fixed_temporary_name_is_not_used(tmp_path: Path, planted: str) -> None:
    """The three writers folded in here each wrote through ``.<name>.tmp``; a link or FIFO there now
    simply stays unused (nothing written through it, nothing waited on)."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    fixed = tmp_path / ".index.txt.tmp"
    if planted == "link":
        fixed.symlink_to(victim)
    else:
        os.mkfifo(fixed)
    write_file(tmp_path / "index.txt", b"a.zip\n", 0o644)
    assert (tmp_path / "index.txt").read_bytes() == b"a.zip\n" and victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.txt.tmp", "index.txt", "victim"]
