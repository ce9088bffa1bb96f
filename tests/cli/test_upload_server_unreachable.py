"""An upload whose key server cannot be reached ended in "cannot reach the key server at URL/v1/verify: ...
Connection refused": an F0 could not tell whether the keys went or the code was spent (user30's walk).  It is
asked before anything goes (``/v1/verify`` leaves the code unused), so the line now says nothing was sent and the
code still works, and today's key is not cut."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.store import SightingStore

NOW = 1_764_000_000.0 + 12 * 3600  # midday UTC


def _closed_loopback_port() -> int:
    with socket.socket() as s:  # bound and closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_says_nothing_was_sent_and_the_code_still_works(tmp_path: Path) -> None:
    db = tmp_path / "phone.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daily_key(DailyKey(b"y" * 16, rolling_start(NOW - DAY_SECONDS)))
        store.save_daily_key(DailyKey(b"t" * 16, rolling_start(NOW)))
    url = f"http://127.0.0.1:{_closed_loopback_port()}"
    result = CliRunner().invoke(
        cli, ["upload", "--server", url, "--code", "1234567890123456", "--db", str(db), "--yes", "--include-today"],
        obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 1, result.output
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error.startswith(f"Error: cannot reach the key server at {url}/v1/verify: ")
    assert error.endswith("; nothing was sent, and the code is not used up (it stays valid until it expires): try"
                          " again once the key server can be reached")
    with SightingStore.open(db, create=False, purge_now=NOW) as store:
        assert sorted(int(k.rolling_period) for k in store.daily_keys()) == [ROLLING_PERIOD, ROLLING_PERIOD]  # not cut
