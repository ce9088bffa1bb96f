"""`check` while the daemon does not believe a step of the wall clock: it read the wall clock for what is in force,
so at a clock stepped a year ahead an F1 warned yesterday was "Close contact now: no" (every earlier report past
its 14 days), until the clock was right.  It now judges at the daemon's measured time, as `status`, `purge`,
`checkin` and the store's own purge do (f1969ca)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.proximity.emulation import run_emulated

from .clock_helpers import YEAR, leave_a_mark


def _run(*args: str, obj: dict | None = None) -> dict:
    done = CliRunner().invoke(cli, list(args), obj={} if obj is None else obj)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout) if "--json" in args else {}


def test_a_check_while_the_clock_is_not_believed_judges_what_is_in_force_at_the_measured_time(
    live_server: dict, tmp_path: Path
) -> None:
    start = time.time() // 86400 * 86400 - 4 * 3600  # yesterday 20:00 UTC: every key of the scene complete today
    positions = {"An": lambda t: (0.0, 0.0), "Binh": lambda t: (1.0, 0.0) if t < start + 35 * 60 else (300.0, 0.0)}
    nodes = run_emulated(positions, tmp_path, start, 40 * 60, seed=4)
    url, db, keys = live_server["url"], str(live_server["db"]), str(live_server["keys"])
    code = _run("server", "issue-code", "--server-db", db, "--signing-key-dir", keys, "--json", "--type", "confirmed")["code"]
    _run("upload", "--server", url, "--code", code, "--db", str(nodes["An"]), "--yes")
    _run("server", "export", "--server-db", db, "--signing-key-dir", keys, "--export-dir", str(live_server["exports"]))
    assert _run("check", "--server", url, "--db", str(nodes["Binh"]), "--json")["close_contact"]
    now = time.time()
    leave_a_mark(nodes["Binh"], now)  # then the clock stepped a year
    again = _run("check", "--server", url, "--db", str(nodes["Binh"]), "--json", obj={"clock": VirtualClock(now + YEAR)})
    assert again["close_contact"], again
    # and the advice: this device's own keys of the meeting's day are within its 14 days (at the wall clock, the hint
    # read "this device has no daily keys of its own from ... on")
    told = CliRunner().invoke(cli, ["check", "--server", url, "--db", str(nodes["Binh"])], obj={"clock": VirtualClock(now + YEAR)})
    assert told.exit_code == 0, told.output
    assert "send your keys with `bluezone upload" in told.output and "no daily keys of its own" not in told.output
