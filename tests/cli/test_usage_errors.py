"""A mistyped command line is one line on stderr and exit code 2, as every other input error is:
click's own form was four (its usage line, a 'Try --help' line, a blank line, then the error)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bluezone.cli import cli

MISTAKES = [
    (["--bogus"], "No such option '--bogus'", "bluezone --help"),
    (["nosuchcommand"], "No such command 'nosuchcommand'", "bluezone --help"),
    (["check", "--jobs", "0"], "0 is not in the range x>=1", "bluezone check --help"),
    (["benchmark", "--keys", "abc"], "Invalid value for '--keys': 'abc' is not a valid integer", "bluezone benchmark --help"),
    (["server", "run", "--port", "99999"], "Invalid value for '--port'", "bluezone server run --help"),
    (["upload", "--server", "http://127.0.0.1:9"], "Missing option '--code'", "bluezone upload --help"),
    (["venue", "create"], "Missing option '--name'", "bluezone venue create --help"),
    (["check", "--keys", "."], "Invalid value for '--keys'", "bluezone check --help"),
    # click kept the last of two without a word: the first file's exposures went unreported (walk17)
    (["check", "--keys", "a.json", "--keys", "b.json"], "Invalid value for '--keys': given 2 times", "bluezone check --help"),
    (["check", "--server", "http://a", "--server=http://b"], "Invalid value for '--server': given 2 times", "bluezone check --help"),
    (["check", "--bluezone3-list", "a", "--bluezone3-list", "b"], "'--bluezone3-list': given 2 times", "bluezone check --help"),
]


@pytest.mark.parametrize("args,error,hint", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_a_usage_error_is_one_line_and_exit_2(args: list[str], error: str, hint: str) -> None:
    result = CliRunner().invoke(cli, args, prog_name="bluezone")
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and error in lines[0] and f"(see '{hint}')" in lines[0], lines[0]


@pytest.mark.parametrize("args", [[], ["server"], ["venue"]])
def test_a_group_named_alone_still_shows_its_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, prog_name="bluezone")
    assert result.exit_code == 2 and result.output.startswith(f"Usage: bluezone {' '.join([*args, ''])}"), result.output
    assert "Commands:" in result.output and "Error" not in result.output


@pytest.mark.parametrize("spelling", ["--repeat", "--repeats"])
@pytest.mark.parametrize("command,param", [(("benchmark",), "repeats"), (("server", "benchmark"), "repeat")])
def test_both_benchmarks_take_repeat_and_repeats(command: tuple[str, ...], param: str, spelling: str) -> None:
    """`bluezone benchmark` took only --repeats and `server benchmark` only --repeat: each refused the other's
    spelling.  Both take both now (docs say --repeat); parsed, not run (a benchmark takes minutes)."""
    from bluezone.matching.cli import benchmark
    from bluezone.server.cli import benchmark_cmd

    chosen = benchmark if command == ("benchmark",) else benchmark_cmd
    ctx = chosen.make_context(" ".join(command), [spelling, "5"])
    assert ctx.params[param] == 5
