"""Every `bluezone ...` line in the README's and docs' shell blocks names real options and gives
the required ones: a newcomer copies them (docs/server.md's recursive issue-code lacked
--signing-key-dir, so the copied line was 'Missing option')."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from bluezone.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"", "sh", "bash", "console"}


def _shell_blocks(text: str) -> list[str]:
    """The fenced blocks of a shell (or no) language, fences paired in order."""
    blocks, lang, lines = [], None, []  # lang None: outside a block
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                if lang in SHELL:
                    blocks.append("\n".join(lines) + "\n")
                lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def _doc_commands() -> list[tuple[str, str]]:
    """(file, command line) for each `bluezone` command in a shell block, continuations joined."""
    found = []
    for doc in DOCS:
        for block in _shell_blocks(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                for part in re.split(r"[;|]|&&", line.split(" #")[0]):
                    words = part.split()
                    drawing = any("\u2500" <= c <= "\u25ff" for c in part)  # a diagram, not a command
                    if "bluezone" in words and not part.strip().startswith("#") and not drawing:
                        found.append((doc.name, " ".join(words[words.index("bluezone"):])))
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = cli
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


COMMANDS = _doc_commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("doc,line", COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_a_documented_command_line_parses(doc: str, line: str) -> None:
    try:
        words = shlex.split(line)
    except ValueError:
        pytest.skip("not a whole shell line")
    command, rest = _resolve(words)
    if command is cli or "--help" in rest:
        return
    names = {o for p in command.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
    names |= {o for p in cli.params if isinstance(p, click.Option) for o in p.opts}  # -v, -q, --debug anywhere
    given = [w.split("=", 1)[0] for w in rest if w.startswith("-") and not re.fullmatch(r"-\d.*", w)]
    unknown = [w for w in given if w not in names and not w.startswith("[")]
    assert not unknown, f"{doc}: {line}: no such option(s) {unknown}"
    if any(w.startswith("[") or w == "..." for w in rest) or "--list" in rest or "--find" in rest:
        return  # a synopsis or another mode of the command
    for p in command.params:
        if isinstance(p, click.Option) and p.required:
            assert set(p.opts) & set(given), f"{doc}: {line}: lacks the required {p.opts[0]}"


#: Options whose date is refused once it is old (a test date 28 days back, an exposure date 14; a past
#: visit's or a venue warning's --start and --end 14 days back).
AGEING_DATES = ("--test-date", "--exposure-date", "--symptom-onset", "--start", "--end")


@pytest.mark.parametrize("doc,line", COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_a_documented_date_does_not_age(doc: str, line: str) -> None:
    """`--test-date 2026-11-20` copied from the README a month later was refused as too old (and so was
    `checkin URL --start 2026-12-04T18:30`): such a date is given relative to today (`"$(date -u +%F)"`)
    or as a placeholder (DATE)."""
    words = shlex.split(line, posix=False)
    for option, value in zip(words, words[1:]):
        if option in AGEING_DATES:
            assert not re.match(r"\d{4}-\d\d-\d\d", value), f"{doc}: {line}: {option} {value} will be refused once old"
