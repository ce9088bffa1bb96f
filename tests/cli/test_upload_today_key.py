"""``upload`` without today's key said "use --include-today once your day is over": a code works once, so a
later run with it is refused as used, and today's key never went (user30's walk as an F0).  The line and the
option's help now say so, and what to do instead."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.store import SightingStore

NOW = 1_764_000_000.0 + 12 * 3600  # midday UTC


def test_an_upload_leaving_today_out_says_the_code_cannot_carry_it_later(tmp_path: Path) -> None:
    db = tmp_path / "phone.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daily_key(DailyKey(b"y" * 16, rolling_start(NOW - DAY_SECONDS)))
        store.save_daily_key(DailyKey(b"t" * 16, rolling_start(NOW)))  # today's, on air
    result = CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", str(db), "--dry-run",
              "--no-checkins"],
        obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 0, result.output
    assert "today's key is not sent, so those you met today are not warned by this upload" in result.stderr
    assert "this code works once: to send today's key too, upload with --include-today instead" in result.stderr
    assert "once your day is over" not in result.stderr
    assert result.stderr.count("00:00-24:00 UTC") == 1  # yesterday's key alone goes
    # what sending the keys gives away, said before the F0 agrees (user30: nothing said it)
    assert "(published for anyone to download: a device that heard yours on those days learns when it was near" \
        " this one; no name or place is in them)" in result.stderr


def test_include_today_help_says_a_code_works_once() -> None:
    shown = CliRunner().invoke(cli, ["upload", "--help"], terminal_width=200).output
    assert "Also send today's key, cut to end now" in shown and "a code works once" in shown
    assert "only if today is over for you" not in shown
