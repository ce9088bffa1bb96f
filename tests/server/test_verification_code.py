"""A verification code as people copy it: printed or read out in groups ("3572 4109", "3572-4109")."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.client.uploading import check_code
from bluezone.errors import InputError


@pytest.mark.parametrize("typed", ["35724109", "3572 4109", "3572-4109", " 3572 - 4109 ", "3572\t4109"])
def test_groups_are_the_same_code(typed: str) -> None:
    assert check_code(typed) == "35724109"


@pytest.mark.parametrize("typed", [
    "3572\u00a04109", "3572\u20134109", "3572\u20144109",  # a no-break space, an en dash, an em dash (a letter)
    "٣٥٧٢٤١٠٩", "３５７２ ４１０９", "३५७२४१०९",  # Arabic-Indic, full-width (a CJK input method), Devanagari
])
def test_digits_of_any_script_and_any_dash_are_the_same_code(typed: str) -> None:
    assert check_code(typed) == "35724109"


@pytest.mark.parametrize("typed", [
    "12345", "1234a678", "²²²²²²²²", "⑴⑵⑶⑷⑸⑹⑺⑻", "3572\u200b4109", "", "--------", "1" * 17, "١" * 17,
])
def test_anything_else_is_refused(typed: str) -> None:
    with pytest.raises(InputError, match="digits the health authority gave you: 6 to 16 of them"):
        check_code(typed)


@given(st.text(max_size=40))
def test_a_code_that_passes_is_plain_ascii_digits(typed: str) -> None:
    try:
        code = check_code(typed)
    except InputError:
        return
    assert code.isascii() and code.isdigit() and 6 <= len(code) <= 16


@pytest.mark.parametrize("command", [
    ["upload", "--yes"],
    ["venue", "warn", "cafe", "--start", "2026-12-04T18:00", "--end", "2026-12-04T19:00", "--yes"],
])
def test_upload_and_venue_warn_take_a_grouped_code(tmp_path: Path, command: list[str]) -> None:
    """Past the code check (then: no database / no venue directory), not 'the code is the digits'."""
    args = [*command, "--server", "http://127.0.0.1:9", "--code", "3572 4109"]
    if command[0] == "upload":
        args += ["--db", str(tmp_path / "none.db")]
    else:
        args[2] = str(tmp_path / "no-cafe")
    result = CliRunner().invoke(cli, args, obj={})
    assert result.exit_code == 2, result.output
    assert "digits the health authority" not in result.output
