"""CLI: ``keys derive --protocol bluezone3`` prints the issue's vectors; bad input is exit 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bluezone.cli import cli

ZERO = "00" * 32


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.stdout, result.stderr


def test_derive_bluezone3_text() -> None:
    code, out, _ = run("keys", "derive", "--protocol", "bluezone3", "--daily-key", ZERO, "--slots", "0,1,95")
    assert code == 0
    assert "slot   0  00:00 UTC  ID 490c085d937456a4dd07e710" in out
    assert "slot   1  00:15 UTC  ID cc4111fec540c346ec6a053f" in out
    assert "slot  95  23:45 UTC  ID 3140c784cd06058bb930f6a7" in out


def test_derive_bluezone3_next_day_json() -> None:
    code, out, _ = run(
        "keys", "derive", "--protocol", "bluezone3", "--daily-key", ZERO, "--slots", "0", "--days-after", "1", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["slots"] == [{"slot": 0, "from_utc": "00:00", "id": "d80cc204fa6491af30d0932a"}]


def test_derive_bluezone3_all_slots_by_default() -> None:
    code, out, _ = run("keys", "derive", "--protocol", "bluezone3", "--daily-key", ZERO, "--json")
    assert code == 0 and len(json.loads(out)["slots"]) == 96


@pytest.mark.parametrize(
    "args,message",
    [
        (["--daily-key", "00" * 16], "64 hex digits"),
        (["--daily-key", "zz" * 32], "not hexadecimal"),
        (["--daily-key", ZERO, "--slots", "96"], "0-95"),
        (["--daily-key", ZERO, "--slots", "3-1"], "0-95"),
        (["--daily-key", ZERO, "--slots", "a"], "numbers or ranges"),
        (["--daily-key", ZERO, "--slots-per-day", "1"], "2-1440"),
        (["--daily-key", ZERO, "--slots-per-day", "5000"], "2-1440"),
        (["--daily-key", ZERO, "--days-after", "-1"], "0-366"),
        (["--tek", "00" * 16], "not --tek"),
        ([], "--daily-key"),
    ],
)
def test_derive_bluezone3_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    code, out, err = run("keys", "derive", "--protocol", "bluezone3", *args)
    assert code == 2, out
    assert message in err
    assert "Traceback" not in err


def test_gaen_still_needs_tek() -> None:
    code, _, err = run("keys", "derive", "--interval", "5")
    assert code == 2 and "--tek" in err
