"""pyproject.toml says what the project is (issue 14.17); where it lives is left out until it is known."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

PROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]


def test_classifiers_match_what_the_project_needs() -> None:
    classifiers = PROJECT["classifiers"]
    assert "Operating System :: POSIX :: Linux" in classifiers and "Typing :: Typed" in classifiers
    minimum = PROJECT["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {minimum}" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX `license` says it (PEP 639)


def test_classifiers_are_real_trove_classifiers() -> None:
    trove = pytest.importorskip("trove_classifiers", reason="trove-classifiers not installed")
    assert [c for c in PROJECT["classifiers"] if c not in trove.classifiers] == []
