"""writefile: what a crashed write left behind (``.NAME.<16 hex>.tmp``, never written over since its name is
random: a venue's secret 0600 among them) is deleted by the next write of the same file, and nothing else is:
not another file's, not one changed within the hour (another process's write under way), not a link or what it
names, not another user's, not a folder."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.writefile import STALE_SECONDS, write_file, write_files, write_new_file

HEX = "0123456789abcdef"


def _left(directory: Path, name: str, hexdigits: str = HEX, age: float = 2 * STALE_SECONDS) -> Path:
    """A temporary file a write of ``name`` killed before its rename left, last changed ``age`` s ago."""
    tmp = directory / f".{name}.{hexdigits}.tmp"
    tmp.write_bytes(b"half a secret")
    tmp.chmod(0o600)
    then = time.time() - age
    os.utime(tmp, (then, then))
    return tmp


@pytest.mark.parametrize("write", [
    lambda d: write_file(d / "venue.secret", b"new", 0o600),
    lambda d: write_files(d, {"venue.secret": (b"new", 0o600), "venue.json": (b"{}", None)}),
    lambda d: write_new_file(d / "venue.secret", b"new", 0o600),
])
def test_a_crashed_writes_temporary_files_go_with_the_next_write(tmp_path: Path, write) -> None:
    stale = [_left(tmp_path, "venue.secret", h * 16) for h in "0a"]
    under_way = _left(tmp_path, "venue.secret", "b" * 16, age=60)  # another process writing it now
    other = _left(tmp_path, "other.secret", "c" * 16)
    longer = _left(tmp_path, "venue.secret.bak", "d" * 16)  # another file whose name begins with this one
    old_fixed = tmp_path / ".venue.secret.tmp"  # an earlier version's fixed name: written over by it, not ours
    old_fixed.write_bytes(b"x")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    then = time.time() - 2 * STALE_SECONDS
    os.utime(victim, (then, then))
    link = tmp_path / f".venue.secret.{'e' * 16}.tmp"
    link.symlink_to(victim)
    folder = tmp_path / f".venue.secret.{'f' * 16}.tmp"
    folder.mkdir()
    write(tmp_path)
    assert not any(p.exists() for p in stale)  # were left for ever: one more per crash
    assert all(p.exists() for p in (under_way, other, longer, old_fixed, folder)) and link.is_symlink()
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "venue.secret").read_bytes() == b"new"


def test_another_users_temporary_file_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a shared folder (1777) only one's own: a file of the same name pattern owned by somebody else stays."""
    theirs = _left(tmp_path, "keys.json")
    monkeypatch.setattr(os, "geteuid", lambda: theirs.stat().st_uid + 1)
    write_file(tmp_path / "keys.json", b"[]", 0o600)
    assert theirs.exists()


def test_a_folder_that_cannot_be_listed_is_still_written_into(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write and search permission without read (a drop folder, 0300): the clean-up is skipped, not the write."""
    def refused(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", refused)
    write_file(tmp_path / "keys.json", b"[]", 0o600)
    assert (tmp_path / "keys.json").read_bytes() == b"[]"


name_st = st.text(st.sampled_from("ab.-_x"), min_size=1, max_size=8).filter(lambda n: n not in (".", ".."))


@settings(max_examples=60, deadline=None)
@given(target=name_st, others=st.lists(st.tuples(st.one_of(st.none(), name_st, name_st.map(lambda n: n + ".")),
                                                 st.text(st.sampled_from(HEX + "g"), min_size=15, max_size=17)),
                                       max_size=6))
def test_only_the_targets_own_random_temporary_names_go(target: str, others: list[tuple[str | None, str]]) -> None:
    """Whatever the names (None: the target's own; dots inside, one a prefix of another, 15-17 characters where
    16 hex digits are the pattern), a write deletes exactly the stale ``.TARGET.<16 hex>.tmp``."""
    with tempfile.TemporaryDirectory() as d:
        directory = Path(d)
        made = {_left(directory, target if name is None else name, digits).name for name, digits in others}
        write_file(directory / target, b"x", 0o600)
        expected = {n for n in made if not (n.startswith(f".{target}.") and n.endswith(".tmp")
                                            and len(n) == len(target) + 22 and all(c in HEX for c in n[-20:-4]))}
        assert {p.name for p in directory.iterdir()} - {target} == expected
