"""docs/simulation.md's "Several seeds" summary, run as written on the JSON `simulate --json` writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "simulation.md"


def _snippet() -> str:
    """The `python3 -c '...'` of the "Several seeds" block."""
    block = DOC.read_text().split("### Several seeds", 1)[1].split("```", 2)[1]
    match = re.search(r"python3 -c '\n(.*?)\n'", block, re.S)
    assert match, "the Several seeds block lost its python3 -c summary"
    return match.group(1)


@pytest.mark.parametrize(("f1s", "expected"), [
    ([0.5, None, 0.7], "bluezone F1 mean 0.600 over 2 of 3 seeds (min 0.500)"),
    ([None, None], "bluezone nothing to find on any of 2 seeds"),  # a StatisticsError traceback before (walk12)
])
def test_the_several_seeds_summary_runs_as_written(tmp_path: Path, f1s: list, expected: str) -> None:
    for seed, f1 in enumerate(f1s, 1):
        run = {"scorers": {name: {"f1": f1} for name in ("bluezone", "gaen")}}
        (tmp_path / f"my-shop-{seed}.json").write_text(json.dumps(run))
    proc = subprocess.run([sys.executable, "-c", _snippet()], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == expected
