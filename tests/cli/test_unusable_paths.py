"""A path that cannot even be looked up (a name longer than the file system takes, a loop of symbolic links) is
bad input: one line, exit 2, on every command.  Path.exists and Path.resolve raise for such a path rather than
answer, so `status --db <300 characters>` said 'Error: OSError: [Errno 36] File name too long ... (run with
--debug for details)', exit 1; `run --db LOOP` and `server export --export-dir LOOP` 'Error: RuntimeError:
Symlink loop from ...', exit 1; and $BLUEZONE_CONFIG naming a too-long path printed a whole traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock

NOW = 1_763_640_000.0
LONG = "x" * 300  # NAME_MAX is 255 on Linux file systems


def _loop(tmp_path: Path) -> str:
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    return str(tmp_path / "loop1")


CASES = {
    "status --db LONG": lambda t: ["status", "--db", str(t / LONG)],
    "checkins --db LONG": lambda t: ["checkins", "--db", str(t / LONG)],
    "check --scorer-config LONG": lambda t: ["check", "--keys", str(t / "k.json"), "--scorer-config", str(t / LONG)],
    "doctor --config LONG": lambda t: ["doctor", "--config", str(t / LONG), "--db", str(t / "n.db")],
    "run --db LOOP": lambda t: ["run", "--backend", "emulated", "--duration", "1", "--db", _loop(t)],
    "server status --server-db LONG": lambda t: ["server", "status", "--server-db", str(t / LONG)],
    "server export --export-dir LOOP": lambda t: [
        "server", "export", "--server-db", str(t / "s.db"), "--create-db", "--signing-key-dir", str(t / "keys"),
        "--export-dir", _loop(t),
    ],
    "venue create --out LONG": lambda t: ["venue", "create", "--name", "A", "--address", "B", "--out", str(t / LONG)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_path_that_cannot_be_looked_up_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    (tmp_path / "k.json").write_text('{"temporaryExposureKeys": []}')
    assert CliRunner().invoke(cli, ["server", "keygen", "--out", str(tmp_path / "keys")]).exit_code == 0
    result = CliRunner().invoke(cli, CASES[case](tmp_path), obj={"clock": VirtualClock(NOW)})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: cannot use the path "), line
    assert line.endswith(("File name too long", "Too many levels of symbolic links")), line
    assert not any(p.name.startswith("x" * 200) for p in tmp_path.iterdir())  # nothing made under such a name


def test_bluezone_config_naming_a_too_long_path_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "n.db")], env={"BLUEZONE_CONFIG": str(tmp_path / LONG)})
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: cannot use the path {tmp_path / LONG}: File name too long\n"


@pytest.mark.parametrize(
    "exc, line",
    [
        (OSError(36, "File name too long", b"/tmp/x\xff"), "cannot use the path /tmp/x\udcff: File name too long"),
        (OSError(40, "Too many levels of symbolic links"), "cannot use a path: Too many levels of symbolic links"),
        (OSError(2, "No such file or directory", "/tmp/x"), None),  # any other failure: not this line
        (RuntimeError("Symlink loop from '/tmp/loop'"), "cannot use the path /tmp/loop: Too many levels of symbolic links"),
    ],
)
def test_the_line_names_the_path_however_the_error_gives_it(exc: BaseException, line: str | None) -> None:
    from bluezone.cli import unusable_path

    assert unusable_path(exc) == line
