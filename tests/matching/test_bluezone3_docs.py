"""docs/bluezone3.md's "Trying the whole v3 path without phones", run as written: its script, then its
two commands; b is found an F1 of a's Bluezone v3 IDs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli

DOC = Path(__file__).parents[2] / "docs" / "bluezone3.md"


def _section() -> str:
    text = DOC.read_text()
    return text[text.index("### Trying the whole v3 path without phones"):text.index("## Matching Bluezone v3 F0 lists")]


@pytest.mark.wall_clock  # the script's meeting is the half hour before now, and the commands read the clock
def test_the_documented_v3_walk_finds_the_close_contact(tmp_path: Path) -> None:
    section = _section()
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    (tmp_path / "v3try.py").write_text(script)
    done = subprocess.run([sys.executable, "v3try.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    commands = re.search(r"```sh\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    lines = [line.split("#")[0].split() for line in commands.strip().splitlines()]
    assert [words[:3] for words in lines] == [["bluezone", "keys", "export"], ["bluezone", "check", "--bluezone3-list"]]
    runner = CliRunner()
    for words in lines:
        args = [str(tmp_path / w) if "/" in w or w.endswith(".json") else w for w in words[1:]]
        result = runner.invoke(cli, args + (["--json"] if words[1] == "check" else []), obj={})
        assert result.exit_code == 0, result.output
    exposures = json.loads(result.stdout)["exposures"]
    # one window, or two when the half hour spans UTC midnight
    assert [e["protocol"] for e in exposures] == ["bluezone3"] * len(exposures) and exposures
    assert "F1" in [e["level"] for e in exposures]
