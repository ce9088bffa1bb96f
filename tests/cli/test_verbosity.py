"""Verbosity flags anywhere on the line, ``python -m bluezone``, and ``make test`` showing skip reasons."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import NotAStoreError

ROOT = Path(__file__).resolve().parents[2]
DERIVE = ["keys", "derive", "--tek", "75c734c6dd1a782de7a965da5eb93125", "--interval", "2642976"]


@pytest.mark.parametrize("flag", ["-v", "--verbose", "-q", "--quiet", "--debug"])
def test_verbosity_flags_work_after_the_subcommand(flag: str) -> None:
    result = CliRunner().invoke(cli, [*DERIVE, flag], obj={})
    assert result.exit_code == 0, result.output
    assert "RPIK" in result.output


@pytest.mark.parametrize("flag,level", [("-v", logging.INFO), ("-q", logging.ERROR), ("--debug", logging.DEBUG)])
def test_a_flag_after_the_subcommand_sets_the_log_level(flag: str, level: int) -> None:
    CliRunner().invoke(cli, ["-q", *DERIVE, flag], obj={})
    assert logging.getLogger().level == level
    CliRunner().invoke(cli, DERIVE, obj={})
    assert logging.getLogger().level == logging.WARNING  # no flag: back to the default


def test_debug_after_a_nested_subcommand_shows_the_traceback(tmp_path: Path) -> None:
    plain = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "none.db")], obj={})
    assert plain.exit_code == 2 and "Error: no sighting database" in plain.output
    debug = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "none.db"), "--debug"], obj={})
    assert isinstance(debug.exception, NotAStoreError)


def test_server_subcommands_take_the_flags_too() -> None:
    result = CliRunner().invoke(cli, ["server", "keygen", "--help", "-q"], obj={})
    assert result.exit_code == 0 and "-q, --quiet" in result.output


def test_python_dash_m_bluezone_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "bluezone", *DERIVE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RPIK" in done.stdout


def test_make_test_shows_skip_reasons() -> None:
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "test"], capture_output=True, text=True)
    pytest_line = [line for line in dry.stdout.splitlines() if "pytest" in line]
    assert pytest_line and "-rs" in pytest_line[-1].split()
