"""Every directory whose files ship as package data is itself a listed package: otherwise setuptools
prints a page of "Package would be ignored" warnings on every install, the first thing a new user
sees of `make demo` and `make test` (bluezone/sim/scenarios, the shipped scenarios, was excluded from
the packages while its *.toml shipped as the parent's data)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_directory_of_package_data_is_a_package() -> None:
    config = _config()
    find = config["packages"]["find"]
    packages = set(find_namespace_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    shipped: list[Path] = []
    for package, patterns in config["package-data"].items():
        base = ROOT.joinpath(*package.split("."))
        for pattern in patterns:
            shipped += [p for p in base.glob(pattern) if p.is_file()]
    assert any(p.name == "market.toml" for p in shipped), "the scenarios no longer ship"
    assert not any("results" in p.relative_to(ROOT).parts for p in shipped), "simulation results would ship"
    for path in shipped:
        parts = path.parent.relative_to(ROOT).parts
        if all(part.isidentifier() for part in parts):
            assert ".".join(parts) in packages, f"{path.relative_to(ROOT)} ships from a directory that is no listed package"
