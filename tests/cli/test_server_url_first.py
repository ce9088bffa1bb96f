"""`upload` and `venue warn` check --server before anything else.  `upload` used the URL in the store first,
so a byte that is no UTF-8 in it (a URL pasted from another encoding) was 'UnicodeEncodeError: ... surrogates not
allowed', exit 1; an unusable URL was refused only after the keys were listed and the questions answered, and a
dry run never refused it: `upload --server ftp://x --dry-run` printed a request no command could send, exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.store import SightingStore
from bluezone.venues.location import Venue
from bluezone.venues.owner import create_venue_dir

NOW = 1_764_000_000.0 + 12 * 3600  # midday UTC
BAD = [
    ("\udcff", "must start with http"),  # the byte 0xff on the command line, as Python gives it
    ("http://\udcff", "not a usable server URL"),
    ("ftp://keys.example.org", "must start with http"),
    ("https://keys.example.org#x", "without '?' or '#'"),
    ("https://keys example.org", "holds a space"),  # was looked up in DNS 4 times, then exit 1
    # no host name DNS could be asked for: 'UnicodeError: encoding with 'idna' codec failed', exit 1 at connecting
    ("https://keys..example.org", "no host name"),
    ("https://" + "k" * 64 + ".example.org", "no host name"),  # a label past DNS's 63 characters
    ("https://xn--a.example.org", "no host name"),  # an A-label that decodes to nothing: idna's InvalidCodepoint
    # attack28: a browser reads '\\' as '/' (host keys.example.org), httpx as part of a user name: the keys went to
    # evil.example, with 'keys.example.org\\' as the user name
    ("https://keys.example.org\\@evil.example", "a backslash"),
    ("https://keys.example.org\\v1", "a backslash"),
]


def _node(tmp_path: Path) -> Path:
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daily_key(DailyKey(b"\x01" * 16, rolling_start(NOW) - ROLLING_PERIOD), created_at=NOW - 3600)
    return db


@pytest.mark.parametrize("extra", [["--dry-run"], []], ids=["dry-run", "asked"])
@pytest.mark.parametrize("url, message", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_upload_refuses_an_unusable_server_url_first(tmp_path: Path, url: str, message: str, extra: list[str]) -> None:
    db = _node(tmp_path)
    before = db.read_bytes()
    result = CliRunner().invoke(
        cli, ["upload", "--server", url, "--code", "12345678", "--db", str(db), *extra], input="y\n", obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert db.read_bytes() == before


@pytest.mark.parametrize("url, message", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_venue_warn_refuses_an_unusable_server_url_before_asking(tmp_path: Path, url: str, message: str) -> None:
    create_venue_dir(tmp_path / "cafe", Venue.create("Café", "1 Main St", "food-service", 60))
    result = CliRunner().invoke(
        cli, ["venue", "warn", str(tmp_path / "cafe"), "--server", url, "--code", "12345678",
              "--start", "2025-11-24T10:00Z", "--end", "2025-11-24T11:00Z"],
        input="y\n", obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr and "About to warn" not in result.stderr, result.stderr


IN_CLEAR = "plain http://: anyone on the way"


@pytest.mark.parametrize(
    "url, warned",
    [("http://keys.example.org", True), ("http://192.0.2.7:8080", True), ("https://keys.example.org", False),
     ("http://127.0.0.1:8080", False), ("http://localhost:8080", False), ("http://[::1]:8080", False)],
)
def test_a_code_going_over_plain_http_to_another_machine_is_said_before_it_goes(
    tmp_path: Path, url: str, warned: bool
) -> None:
    """A typed http:// for https:// sent the code and the keys in clear without a word (the server answers the
    same); said beside the keys listed, before the question, for an upload and an owner's warning alike."""
    result = CliRunner().invoke(
        cli, ["upload", "--server", url, "--code", "12345678", "--db", str(_node(tmp_path))], input="n\n",
        obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 1 and "nothing sent" in result.stderr, result.output
    listed = result.stderr.split("Send them?")[0]
    assert (IN_CLEAR in listed) is warned, result.stderr
    create_venue_dir(tmp_path / "cafe", Venue.create("Café", "1 Main St", "food-service", 60))
    result = CliRunner().invoke(
        cli, ["venue", "warn", str(tmp_path / "cafe"), "--server", url, "--code", "12345678",
              "--start", "2025-11-24T10:00Z", "--end", "2025-11-24T11:00Z"],
        input="n\n", obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 1 and (IN_CLEAR in result.stderr.split("Send the warning?")[0]) is warned, result.output
