"""Hypothesis's examples are the same in every run, whatever ran before in the process (tests/conftest.py).

Hypothesis draws some values from the constants written in the project's modules (bluezone's, research's) that
are imported at the time, and the suite imports them lazily: a derandomized test drew other examples after other
tests, or with xdist sharing the tests out otherwise (the beacon flood test: 1.4 s alone, 8 s after its file).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

LOW = 10**12
PLANTED = [LOW + 1_000 * i for i in range(1, 6)]  # in the strategy's range below, where no module has constants


def test_examples_do_not_depend_on_the_modules_imported_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[int] = []

    @settings(max_examples=200, derandomize=True, database=None)
    @given(st.integers(LOW, LOW + 10**6))
    def draw(n: int) -> None:
        drawn.append(n)

    draw()
    before = drawn[:]
    (tmp_path / "planted_constants.py").write_text(f"PLANTED = {PLANTED}\n")
    monkeypatch.syspath_prepend(tmp_path)
    try:
        importlib.import_module("planted_constants")  # as a test importing one more of bluezone's modules
        drawn.clear()
        draw()
    finally:
        sys.modules.pop("planted_constants", None)
    assert drawn == before
    assert not set(PLANTED) & set(drawn)
