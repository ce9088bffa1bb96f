"""A store whose daemon stopped weeks ago: every command purges it at the CLI's clock.

The daemon purges on its own clock while it runs; once it stops, the commands that open the
store (status, check, keys export, upload, checkin) are what keeps the 14-day promise.  They
run on the wall clock, given here as a virtual one through the CLI's clock seam.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.keyformat.keyfile import dump_keys_json
from bluezone.keyformat.keys import keys_from_daily
from bluezone.proximity.store import SightingStore

from .conftest import random_sightings

#: When the daemon stopped (noon UTC, 2025-11-20).
STOPPED = 1_763_640_000.0


def invoke(now: float, *args: str):
    return CliRunner().invoke(cli, list(args), obj={"clock": VirtualClock(now)})


def rows_left(db: Path) -> dict[str, int]:
    """What the file holds, read past bluezone (whose open would purge)."""
    conn = sqlite3.connect(db)
    try:
        tables = ("sightings", "daily_keys", "checkins", "keyserver_exposures")
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


@pytest.fixture
def stopped_store(tmp_path: Path) -> Path:
    """Ten days of a daemon's sightings and keys, a check-in and an exposure a check reported, the
    newest written at STOPPED."""
    db = tmp_path / "node.db"
    rows = random_sightings(50, STOPPED - 10 * DAY_SECONDS, 10 * DAY_SECONDS)
    rows["time"][-1] = STOPPED
    with SightingStore.open(db, purge_now=STOPPED) as store:
        store.add_sightings(rows)
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(STOPPED)), created_at=STOPPED)
        store.add_checkin(b"v" * 16, b"p", "Cafe", "", STOPPED - 7200, STOPPED - 3600, True, "url", STOPPED - 7200)
        exposure = {"date": "2025-11-19"}
        store.save_reported_exposures("https://ks", [(b"h" * 32, "2025-11-19", STOPPED - DAY_SECONDS,
                                                      STOPPED - DAY_SECONDS + 900, exposure)], STOPPED)
    return db


def test_status_a_day_after_the_daemon_stopped_shows_its_sightings(stopped_store: Path) -> None:
    result = invoke(STOPPED + DAY_SECONDS, "status", "--db", str(stopped_store), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sightings"] == 50
    assert rows_left(stopped_store) == {"sightings": 50, "daily_keys": 1, "checkins": 1, "keyserver_exposures": 1}


def test_status_30_days_after_the_daemon_stopped_shows_and_keeps_nothing_past_the_retention(stopped_store: Path) -> None:
    # before, opening purged relative to the newest record (STOPPED): all 50 sightings, 30-40 days
    # old, were shown and kept until the daemon or `bluezone purge` ran again
    result = invoke(STOPPED + 30 * DAY_SECONDS, "status", "--db", str(stopped_store), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["sightings"] == 0 and info["daily_keys"] == 0 and info["first_sighting"] is None
    assert rows_left(stopped_store) == {"sightings": 0, "daily_keys": 0, "checkins": 0, "keyserver_exposures": 0}


def test_status_purges_only_what_left_the_retention_at_its_clock(stopped_store: Path) -> None:
    result = invoke(STOPPED + 8 * DAY_SECONDS, "status", "--db", str(stopped_store), "--json")
    kept = json.loads(result.output)
    assert kept["first_sighting"] >= STOPPED - 6 * DAY_SECONDS and 0 < kept["sightings"] < 50
    assert rows_left(stopped_store)["sightings"] == kept["sightings"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_check_weeks_after_the_daemon_stopped_matches_nothing_past_the_retention(
    stopped_store: Path, tmp_path: Path, jobs: str
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_bytes(dump_keys_json(keys_from_daily([DailyKey(b"d" * 16, rolling_start(STOPPED))])))
    soon = invoke(STOPPED + DAY_SECONDS, "check", "--keys", str(keys), "--db", str(stopped_store), "--json", "--jobs", jobs)
    assert soon.exit_code == 0, soon.output
    assert json.loads(soon.stdout)["sightings"] > 0
    late = invoke(STOPPED + 30 * DAY_SECONDS, "check", "--keys", str(keys), "--db", str(stopped_store), "--json", "--jobs", jobs)
    assert late.exit_code == 0, late.output
    assert json.loads(late.stdout)["sightings"] == 0 and rows_left(stopped_store)["sightings"] == 0


def test_keys_export_weeks_after_the_daemon_stopped_has_no_expired_key(stopped_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "own.json"
    result = invoke(STOPPED + 30 * DAY_SECONDS, "keys", "export", "--out", str(out), "--db", str(stopped_store))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["temporaryExposureKeys"] == [] and rows_left(stopped_store)["daily_keys"] == 0


def test_the_python_api_without_a_clock_keeps_a_store_written_on_a_virtual_clock(stopped_store: Path) -> None:
    """Opened without ``purge_now`` (the simulator, tests), the newest record stands for "now"."""
    with SightingStore.open(stopped_store, create=False) as store:
        assert store.count_sightings() == 50


def test_rows_dated_ahead_are_shown_kept_and_deleted_only_when_asked(tmp_path: Path) -> None:
    """A clock that ran 30 days ahead stamped 5 sightings and a check-in, then NTP put it right: status
    says so, every purge keeps them (the clock may as well be behind now), `purge --dated-ahead` deletes them."""
    db = tmp_path / "node.db"
    rows = random_sightings(20, STOPPED - DAY_SECONDS, DAY_SECONDS)
    rows["time"][-5:] = STOPPED + 30 * DAY_SECONDS
    with SightingStore.open(db, purge_now=STOPPED) as store:
        store.add_sightings(rows)
        store.add_checkin(b"v" * 16, b"p", "Cafe", "", STOPPED + 29 * DAY_SECONDS, STOPPED + 29 * DAY_SECONDS + 900,
                          True, "url", STOPPED + 29 * DAY_SECONDS)
    shown = invoke(STOPPED, "status", "--db", str(db), "--json")
    assert json.loads(shown.output)["dated_ahead"] == 6
    text = invoke(STOPPED, "status", "--db", str(db))
    assert "ahead      6 sightings or check-ins dated more than an hour after now" in text.output
    assert "`bluezone purge --dated-ahead`" in text.output
    kept = invoke(STOPPED, "purge", "--db", str(db), "--json")
    assert json.loads(kept.output)["sightings_deleted"] == 0 and rows_left(db)["sightings"] == 20
    asked = invoke(STOPPED, "purge", "--dated-ahead", "--db", str(db))
    assert asked.exit_code == 0 and "and 6 dated more than an hour ahead" in asked.output
    assert rows_left(db) == {"sightings": 15, "daily_keys": 0, "checkins": 0, "keyserver_exposures": 0}
    assert "ahead " not in invoke(STOPPED, "status", "--db", str(db)).output


def test_purge_30_days_after_the_daemon_stopped_says_what_it_deleted(stopped_store: Path) -> None:
    result = invoke(STOPPED + 30 * DAY_SECONDS, "purge", "--db", str(stopped_store), "--json")
    assert result.exit_code == 0, result.output
    purged = json.loads(result.output)
    assert purged["sightings_deleted"] == 50 and purged["daily_keys_deleted"] == 1 and purged["checkins_deleted"] == 1
    assert rows_left(stopped_store)["sightings"] == 0


def test_a_clock_at_1970_is_called_wrong_and_deletes_nothing_dated_ahead(stopped_store: Path) -> None:
    """attack12: a board without a real-time clock boots at 1970 until NTP answers; status then called every
    row 'dated ahead', advised `purge --dated-ahead`, and that deleted all of them (and the check-ins)."""
    boot = 86_400.0  # 1970-01-02
    before = rows_left(stopped_store)
    text = invoke(boot, "status", "--db", str(stopped_store))
    said = " ".join(text.output.split())  # (status's lines wrapped at 80 columns)
    assert text.exit_code == 0 and "this clock reads 1970-01-02 00:00:00 UTC, before GAEN existed" in said
    assert "purge --dated-ahead" not in text.output
    asked = invoke(boot, "purge", "--dated-ahead", "--db", str(stopped_store))
    assert asked.exit_code == 2 and "the clock is wrong, not the rows" in asked.output and "nothing deleted" in asked.output
    assert rows_left(stopped_store) == before


def test_status_says_what_its_opening_purged(stopped_store: Path) -> None:
    """Walk15: a month after the daemon stopped, `status` read 0 sightings with no word why, and the
    `bluezone purge` a worried user then ran said 'purged 0': status's own opening had deleted them."""
    result = invoke(STOPPED + 30 * DAY_SECONDS, "status", "--db", str(stopped_store))
    assert result.exit_code == 0, result.output
    assert ("purged 50 sightings, 1 daily keys, 1 check-ins older than 14 days, just now"
            " (every command that opens the store does)") in " ".join(result.output.split())  # (wrapped at 80 columns)
    again = invoke(STOPPED + 30 * DAY_SECONDS, "status", "--db", str(stopped_store), "--json")
    assert json.loads(again.output)["purged_on_open"]["sightings_deleted"] == 0  # nothing left: no line either
    assert "purged " not in invoke(STOPPED + 30 * DAY_SECONDS, "status", "--db", str(stopped_store)).output


def test_status_counts_check_ins(stopped_store: Path) -> None:
    """Walk15: status listed sightings and keys but not the check-ins the same store keeps 14 days."""
    result = invoke(STOPPED + DAY_SECONDS, "status", "--db", str(stopped_store))
    assert result.exit_code == 0, result.output
    assert "check-ins  1 (`bluezone checkins` lists them)" in result.output
    assert json.loads(invoke(STOPPED + DAY_SECONDS, "status", "--db", str(stopped_store), "--json").output)["checkins"] == 1
