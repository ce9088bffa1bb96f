"""`bluezone server keygen` writes its key files whole or not at all, and never through a link.

It wrote each file in place, opened following links and truncated: a failure part-way through a
--force rotation (a full disk, the process killed) left a new private key beside the old public
one (or an empty private key), and a link planted in the key directory had a key written into the
file it named (``public.pem -> ../victim`` overwrote the victim; a dangling ``private.pem`` link put
the new private key wherever it pointed)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.server.codes import CODE_KEY_FILE, CodeKey
from bluezone.server.signing import INFO_FILE, PRIVATE_FILE, PUBLIC_FILE, keygen, load_signer

FILES = (PRIVATE_FILE, PUBLIC_FILE, INFO_FILE, CODE_KEY_FILE)


def _keygen(out: Path, *more: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["server", "keygen", "--out", str(out), *more])
    return result.exit_code, result.output


def _contents(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _fsync_failing_at(call: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk full at the ``call``-th fsync of a file (1: the private key's)."""
    real: Callable[[int], None] = os.fsync
    calls = [0]

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            calls[0] += 1
            if calls[0] == call:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("failing", [1, 2, 3])
def test_a_rotation_failing_part_way_leaves_the_old_key_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int) -> None:
    out = tmp_path / "keys"
    assert _keygen(out)[0] == 0
    before = _contents(out)
    _fsync_failing_at(failing, monkeypatch)
    code, output = _keygen(out, "--force")
    assert code == 2 and output.count("\n") == 1, output
    assert output == f"Error: cannot write keys into {out}: No space left on device\n"
    assert _contents(out) == before  # the old pair, and no temporary file left beside it
    monkeypatch.undo()
    assert load_signer(out).info.key_version == "v1"


def test_the_modes_and_a_first_key_that_fails_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "keys"
    _fsync_failing_at(2, monkeypatch)
    old = os.umask(0)
    try:
        assert _keygen(out)[0] == 2
        assert list(out.iterdir()) == []
        monkeypatch.undo()
        assert _keygen(out)[0] == 0  # and then it works
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {PRIVATE_FILE: 0o600, CODE_KEY_FILE: 0o600, PUBLIC_FILE: 0o644, INFO_FILE: 0o644}


def test_a_code_key_write_failing_leaves_none_to_block_the_next_try(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A half-written code_hmac.key refused the next keygen ('exists') and every server start."""
    out = tmp_path / "keys"
    out.mkdir()
    _fsync_failing_at(1, monkeypatch)
    with pytest.raises(OSError):
        CodeKey.generate().save(out)
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    CodeKey.generate().save(out)
    assert len(CodeKey.load(out).secret) == 32


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("dangling", [True, False])
@pytest.mark.parametrize("force", [False, True])
def test_a_link_at_a_key_files_name_is_refused(tmp_path: Path, name: str, dangling: bool, force: bool) -> None:
    out, victim = tmp_path / "keys", tmp_path / "victim.txt"
    out.mkdir()
    if not dangling:
        victim.write_text("precious\n")
    (out / name).symlink_to("../victim.txt")
    code, output = _keygen(out, *(["--force"] if force else []))
    assert code == 2 and output.count("\n") == 1, output
    assert f"{out / name} is a symbolic link: refusing to write a key through it or replace it" in output
    assert (victim.read_text() == "precious\n") if not dangling else not victim.exists()
    assert [p.name for p in out.iterdir()] == [name] and (out / name).is_symlink()


def test_a_public_key_alone_is_not_replaced_without_force(tmp_path: Path) -> None:
    """Only private.pem was looked for: a directory holding just the published key had it replaced."""
    out = tmp_path / "keys"
    keygen(out)
    (out / PRIVATE_FILE).unlink()
    public = (out / PUBLIC_FILE).read_bytes()
    code, output = _keygen(out)
    assert code == 2 and f"{out / PUBLIC_FILE} exists: refusing to replace it; give --force" in output
    assert (out / PUBLIC_FILE).read_bytes() == public
    assert _keygen(out, "--force")[0] == 0
