"""docs/venues.md's "Trying a beacon check-in without Bluetooth", run as written after `venue create`:
the visitor's daemon checks in by the beacon, about 20 minutes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli

DOC = Path(__file__).parents[2] / "docs" / "venues.md"


@pytest.mark.wall_clock  # the script's visit is an hour before now, and `checkins` reads the clock
def test_the_documented_beacon_walk_checks_the_visitor_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOC.read_text()
    section = text[text.index("### Trying a beacon check-in without Bluetooth"):text.index("## What venue check-in adds")]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli, ["venue", "create", "--name", "Café Hoa", "--address", "12 Trần Phú, Hà Nội",
                               "--type", "food-service", "--default-minutes", "45", "--out", "cafe/"], obj={})
    assert made.exit_code == 0, made.output
    (tmp_path / "beacontry.py").write_text(script)
    done = subprocess.run([sys.executable, "beacontry.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    listed = runner.invoke(cli, ["checkins", "--db", "visitor.db", "--json"], obj={})
    assert listed.exit_code == 0, listed.output
    visits = json.loads(listed.stdout)["checkins"]
    assert [(v["description"], v["source"], v["checked_out"]) for v in visits] == [("Café Hoa", "beacon", True)]
    # in from the first decode (within a minute of arriving), out at the last frame heard (the visitor
    # walks off at 20 minutes; frames still come for the second or so it takes)
    assert 19 <= visits[0]["minutes"] <= 21, visits
