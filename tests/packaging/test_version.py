"""The version said is the installed distribution's, from its metadata: one source of truth, pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import bluezone


def _run(code: str, path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(  # (from `path`: a checkout's own bluezone.egg-info would come first from there)
        [sys.executable, "-c", code], cwd=path, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_version_and_dunder_version_come_from_the_installed_metadata(tmp_path: Path) -> None:
    """A distribution's metadata found first on the path (as a newer install's would be) is what both say;
    a version written in the source would say its own."""
    dist_info = tmp_path / "bluezone-9.8.7.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: bluezone\nVersion: 9.8.7\n")
    cli = "import sys; from bluezone.cli import main; sys.argv = ['bluezone', '--version']; main()"
    assert _run(cli, tmp_path) == "bluezone, version 9.8.7"
    assert _run("import bluezone; print(bluezone.__version__)", tmp_path) == "9.8.7"


def test_the_installed_version_is_pyprojects() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert bluezone.__version__ == version("bluezone") == project["version"]
    assert "__version__" in dir(bluezone)
