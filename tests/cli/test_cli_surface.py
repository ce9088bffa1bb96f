"""The public surface: every command documented, ``__all__`` complete, README quick start true."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import bluezone
from bluezone.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


COMMANDS = _commands(cli)


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"bluezone {' '.join(path)} has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name not in {"help"}:
            assert param.help, f"bluezone {' '.join(path)} {param.opts[0]} has no help"


def test_commands_are_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for path, command in COMMANDS:
        if len(path) == 1:
            assert f"bluezone {path[0]}" in readme or f"make {path[0]}" in readme, path


#: Every package of bluezone: each has a curated ``__all__``.
PACKAGES = sorted(
    ".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / "bluezone").rglob("__init__.py")
)


def test_every_package_is_checked() -> None:
    assert {"bluezone.server", "bluezone.sim", "bluezone.client", "bluezone.keyformat"} <= set(PACKAGES)


@pytest.mark.parametrize("module", PACKAGES)
def test_all_is_complete_and_importable(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name}, which is missing"
    public = {n for n, v in vars(mod).items() if not n.startswith("_") and not isinstance(v, type(bluezone))}
    public -= {"annotations"}
    assert public <= set(mod.__all__), f"{module} exports {sorted(public - set(mod.__all__))} outside __all__"


def test_readme_quick_start_is_two_make_commands_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S)
    assert block, "README has no quick start code block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci  # CI runs exactly the README's test command
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
    assert "bluezone demo" in subprocess.run(["make", "-n", "-C", str(ROOT), "demo"], capture_output=True, text=True).stdout


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """`bluezone ... | head`: the pipe closes early; that is the reader's choice, not a failure to report."""
    import os
    import sys

    args = ["keys", "derive", "--tek", "75c734c6dd1a782de7a965da5eb93125", "--interval", "2642976", "--count", "144"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the first write: no race with the child's output
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bluezone.cli", *args, "--json"], stdout=write_end, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr.decode() == ""


def test_every_float_range_option_refuses_nan() -> None:
    """nan passes every range comparison: `run --duration nan` stopped at once, `simulate --minutes nan` crashed."""
    from bluezone.clitypes import FloatRange

    ranged = [
        (path, p.name)
        for path, command in _commands(cli)
        for p in command.params
        if isinstance(p.type, click.FloatRange)
    ]
    assert ranged, "the CLI has float range options"
    for path, name in ranged:
        option = next(p for p in dict(_commands(cli))[path].params if p.name == name)
        assert isinstance(option.type, FloatRange), (path, name)
    wall = str(Path(__file__).parents[2] / "simulations" / "wall.toml")
    for args in (["run", "--duration", "nan"], ["simulate", wall, "--minutes", "nan"]):
        result = CliRunner().invoke(cli, args, obj={})
        assert result.exit_code == 2 and "is not a number" in result.output, (args, result.output)


def _documented_uses(text: str) -> list[str]:
    """Every line of a code block and every inline code span of a Markdown file."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines()] + [s.replace("\n", " ") for s in re.findall(r"`([^`]+)`", prose)]


def _unknown_options(snippet: str) -> list[str]:
    """`bluezone CMD [SUB] ... --option` in ``snippet`` naming an option the command does not have."""
    words, bad = snippet.split(), []
    for start, word in enumerate(words):
        if word != "bluezone":
            continue
        command: click.Command = cli
        i, path = start + 1, []
        while isinstance(command, click.Group) and i < len(words):
            sub = command.get_command(click.Context(command), words[i].strip("`[]()"))
            if sub is None:
                break
            command, i = sub, i + 1
            path.append(sub.name)
        if not path:
            continue
        known = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]} | {"--help"}
        for token in words[i:]:
            if token in {"|", ";", "&&", "||", ">", "bluezone"} or token.startswith("#"):
                break
            option = token.strip("[](),`'\"").split("=")[0]
            if option.startswith("--") and len(option) > 2 and option not in known:
                bad.append(f"bluezone {' '.join(path)} {option}")
    return bad


def test_every_option_the_docs_give_a_command_is_one_it_has() -> None:
    """A reader copies `bluezone server run --db ...` and gets 'No such option': every command line in
    README.md and docs/ names options the command has (checked: code blocks and inline code)."""
    assert _unknown_options("bluezone server run --db x") == ["bluezone server run --db"]  # the check itself
    assert _unknown_options("bluezone check --keys f  # --bogus in a comment") == []
    found = [
        f"{path.name}: {use}"
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for snippet in _documented_uses(path.read_text())
        for use in _unknown_options(snippet)
    ]
    assert found == []
