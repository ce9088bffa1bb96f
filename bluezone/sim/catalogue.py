"""The scenarios that ship with bluezone, so ``bluezone simulate market`` works after ``pip install``.

``bluezone/sim/scenarios`` links to the checkout's ``simulations/`` folder, whose ``*.toml``
files are the package data (pyproject.toml): every scenario file added there ships, and is
listed and found by name, without a list to keep up to date.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bluezone.errors import ConfigError

SUFFIX = ".toml"


def scenario_dir() -> Path:
    """Where the shipped scenario files are (in a wheel, or through the link in a checkout)."""
    return Path(str(resources.files("bluezone.sim") / "scenarios"))


def scenario_names() -> list[str]:
    """Names of the shipped scenarios (file names without ``.toml``), sorted."""
    folder = scenario_dir()
    return sorted(p.stem for p in folder.glob(f"*{SUFFIX}") if p.is_file()) if folder.is_dir() else []


def find_scenario(name_or_path: str | Path) -> Path:
    """The scenario file meant: an existing file as given, else a shipped scenario by name."""
    given = Path(name_or_path)
    if given.is_file():
        return given
    text = str(name_or_path)
    names = scenario_names()
    if "/" not in text and not text.endswith(SUFFIX):
        if text in names:
            return scenario_dir() / f"{text}{SUFFIX}"
        raise ConfigError(f"no scenario named {text!r}; shipped with bluezone: {', '.join(names) or 'none'}")
    try:
        mode = given.stat().st_mode
    except OSError:
        mode = None
    if mode is not None:  # there, but no regular file (a FIFO, /dev/zero: it said 'no scenario file' of them)
        from bluezone.readfile import file_kind

        raise ConfigError(f"{given} is {file_kind(mode)}, not a scenario file")
    hint = f" (shipped scenarios go by name: bluezone simulate {given.stem})" if given.stem in names else ""
    raise ConfigError(f"no scenario file {given}{hint}")
