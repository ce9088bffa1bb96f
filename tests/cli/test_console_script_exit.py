"""How the console script ends a check: at once once the command has returned (``os._exit`` after the
output is flushed and the atexit handlers have run), not through the interpreter's teardown, which freed
every object of every module one by one (a check's arrays, numpy's, click's) for memory the system takes
back anyway.  Nothing is lost on the way: the report whole on a pipe, the error line and its exit code,
the store's writes committed (the purge as it was opened), the workers of a two-job check reaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.keyformat.keyfile import write_keys_json
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

#: The console script, with an atexit handler and ``os._exit`` noted on stderr when called.
CONSOLE_SCRIPT = """
import atexit, os, sys
plain_exit = os._exit
def noted_exit(code):
    os.write(2, b"os._exit(%d)\\n" % code)
    plain_exit(code)
os._exit = noted_exit
atexit.register(lambda: print("atexit ran", file=sys.stderr))
from bluezone.cli import main
sys.argv = ["bluezone", *sys.argv[1:]]
main()
"""

DAY = 86_400


def _console(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CONSOLE_SCRIPT, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}, "HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd)},
    )


@pytest.fixture
def keys_and_store(tmp_path: Path) -> tuple[Path, Path]:
    """A key file with planted exposures, and a store that also holds a sighting 20 days old."""
    tomorrow = (int(time.time()) // DAY + 1) * DAY  # the check purges on the wall clock
    keys, sightings, _ = synthetic_data(600, 3_000, seed=7, planted=3, end_time=tomorrow, days=3)
    keys_path = tmp_path / "keys.json"
    write_keys_json(keys, keys_path)
    old = np.zeros(1, SIGHTING_DTYPE)
    old["time"], old["rssi"], old["rpi"] = time.time() - 20 * DAY, -60, np.void(b"o" * 16)
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=time.time() - 30 * DAY) as store:
        store.add_sightings(np.concatenate([old, sightings]))
    return keys_path, db


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_check_ends_at_once_and_its_report_is_whole(keys_and_store: tuple[Path, Path], tmp_path: Path, jobs: str) -> None:
    keys_path, db = keys_and_store
    args = ["check", "--keys", str(keys_path), "--db", str(db), "--json", "--jobs", jobs]
    done = _console(args, tmp_path)
    assert done.returncode == 0, done.stderr
    # ended by os._exit once the atexit handlers had run, not through the interpreter's teardown
    assert done.stderr.splitlines() == ["atexit ran", "os._exit(0)"], done.stderr
    report = json.loads(done.stdout)  # on a pipe, whole
    assert len(report["exposures"]) >= 3
    # the same report as the command gives in-process (the ordinary end), the purge's write committed
    in_process = CliRunner().invoke(cli, args)
    assert in_process.exit_code == 0 and json.loads(in_process.stdout) == report
    with SightingStore.open(db, create=False) as store:
        assert store.count_sightings() == 3_000  # the 20-day-old sighting purged, and it stayed purged


def test_a_failed_check_says_so_in_one_line_and_ends_at_once(keys_and_store: tuple[Path, Path], tmp_path: Path) -> None:
    _, db = keys_and_store
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = _console(["check", "--keys", str(bad), "--db", str(db), "--jobs", "2"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 3 and lines[0].startswith("Error: ") and lines[1:] == ["atexit ran", "os._exit(2)"], done.stderr


def test_other_commands_still_end_through_the_interpreter(tmp_path: Path) -> None:
    done = _console(["--help"], tmp_path)
    assert done.returncode == 0 and "Usage: bluezone" in done.stdout
    assert done.stderr.splitlines() == ["atexit ran"], done.stderr  # and no os._exit
