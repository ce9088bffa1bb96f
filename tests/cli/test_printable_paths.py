"""A path the user gave (--db, $BLUEZONE_DB, --out) with a newline or a terminal escape sequence in it was
printed raw: the newline split the error line into two (the second one looking like the program's own) and, on
a terminal, the ESC sequence recoloured it (click strips ANSI colours only when not on a terminal).  Now such a
path prints in one line, escapes shown as ``\\n`` and ``\\x1b``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto import DailyKey
from bluezone.crypto.intervals import rolling_start
from bluezone.proximity.store import SightingStore

NOW = 1_763_640_000.0  # noon UTC of a fixed day
ODD = "a\nb\x1b[31mred"  # a name with a newline and the start of a colour sequence
SHOWN = "a\\nb\\x1b[31mred"


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """On a terminal (color=True): click passes escape sequences through, as it would to the user's."""
    result = CliRunner().invoke(cli, list(args), obj={"clock": VirtualClock(NOW)}, env=env, color=True)
    return result.exit_code, result.stdout, result.stderr


def test_an_error_naming_a_bluezone_db_path_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / ODD
    code, out, err = _run("status", env={"BLUEZONE_DB": str(missing)})
    assert code == 2 and out == ""
    assert err == (
        f"Error: no sighting database at {tmp_path}/{SHOWN} (give --db PATH, or run `bluezone run` first);"
        " the database was set in $BLUEZONE_DB, not with --db\n"
    )
    assert not missing.exists()  # nothing made there


def test_status_names_the_database_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / ODD
    with SightingStore.open(db, purge_now=NOW):
        pass
    code, out, err = _run("status", "--db", str(db))
    assert code == 0, err
    assert f"database   {tmp_path}/{SHOWN} (" in out
    assert "\x1b" not in out and all(not line.startswith("b") for line in out.splitlines())


def test_keys_export_names_its_file_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daily_key(DailyKey(b"\x07" * 16, rolling_start(NOW) - 144))
    out_file = tmp_path / ODD
    code, _, err = _run("keys", "export", "--out", str(out_file), "--db", str(db))
    assert code == 0, err
    assert f"wrote 1 keys to {tmp_path}/{SHOWN}\n" in err and "\x1b" not in err
    assert out_file.exists()  # the file itself has the name given


@pytest.mark.wall_clock
def test_the_daemons_start_line_and_log_name_the_database_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / ODD
    # 4 s, not 1: the duration counts from the start, the store's and radio's open included, and at load 8 a second
    # passed before the radio was open, so the run ended with no start line (attack30 saw it fail so once)
    proc = subprocess.run(
        [sys.executable, "-m", "bluezone.cli", "-v", "run", "--backend", "emulated:1", "--db", str(db), "--duration", "4"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"database {tmp_path}/{SHOWN};" in proc.stdout.splitlines()[0]
    logged = [line for line in proc.stderr.splitlines() if "store " in line]
    assert logged and logged[0].endswith(f"store {tmp_path}/{SHOWN}")
    assert "\x1b" not in proc.stdout + proc.stderr
