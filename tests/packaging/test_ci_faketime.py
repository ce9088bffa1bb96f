""".ci/run re-runs the wall-clock tests under libfaketime at moments named in UTC (around UTC
midnight): they must be those moments whatever the CI machine's time zone. faketime reads
"@2026-12-31 23:59:55" as local time, so on a machine in Vietnam (UTC+7) the run "across UTC
midnight" started at 16:59:55 UTC and tested nothing of midnight."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CI_RUN = Path(__file__).parents[2] / ".ci" / "run"


def _moments_and_command() -> tuple[list[str], str]:
    text = CI_RUN.read_text()
    loop = re.search(r"^for at in (.+); do$", text, re.M)
    command = re.search(r"^\s*(.*faketime .*\"@\$at\".*)$", text, re.M)
    assert loop and command, ".ci/run no longer re-runs the wall-clock tests under faketime as this test expects"
    return re.findall(r"'([^']+)'", loop.group(1)), command.group(1)


def test_the_faketime_moments_are_utc_in_any_time_zone() -> None:
    if shutil.which("faketime") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("faketime must be installed in CI (.ci/run installs it)")
        pytest.skip("faketime not installed (Debian package faketime)")
    moments, command = _moments_and_command()
    assert len(moments) >= 2
    # the loop's command, running a clock reader instead of pytest
    clock = f"{sys.executable} -c \"import time; print(time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()))\""
    probe = re.sub(r"\S*python\S* -m pytest.*$", lambda _: clock, command)
    assert probe != command
    for zone in ("Asia/Ho_Chi_Minh", "America/New_York", "UTC"):
        for at in moments:
            got = subprocess.run(
                ["bash", "-c", probe], env={**os.environ, "TZ": zone, "at": at}, capture_output=True, text=True, check=True
            ).stdout.strip()
            late = dt.datetime.fromisoformat(got) - dt.datetime.fromisoformat(at)
            assert dt.timedelta(0) <= late < dt.timedelta(seconds=5), f"TZ={zone}: faketime from {at!r} UTC started at {got} UTC"


def test_the_files_ci_runs_again_hold_every_wall_clock_test(request: pytest.FixtureRequest) -> None:
    """.ci/run finds the wall-clock tests' files by grep (the mark or the key-server fixture named in them), not by
    collecting the whole suite: every test so marked that this session collected (the whole suite in ``make test``)
    must be in a file the grep finds.  One using the key server only through another fixture would not be: mark it."""
    pattern = re.search(r"^wall_clock_files=.*grep -rlE '([^']+)' tests --include='([^']+)'", CI_RUN.read_text(), re.M)
    assert pattern, ".ci/run no longer lists the wall-clock tests' files with grep as this test expects"
    tests = CI_RUN.parents[1] / "tests"
    found = {path for path in tests.rglob(pattern.group(2)) if re.search(pattern.group(1), path.read_text())}
    wall = {Path(str(item.path)) for item in request.session.items if item.get_closest_marker("wall_clock")}
    assert wall <= found, sorted(map(str, wall - found))
