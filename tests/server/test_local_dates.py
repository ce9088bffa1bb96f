"""Dates people give (test, symptom onset, exposure) are their own calendar's, not UTC's.

In Vietnam (UTC+7) today is UTC's tomorrow from midnight to 07:00: for those seven hours a day
``issue-code --test-date/--symptom-onset/--exposure-date`` and ``upload --exposure-date`` refused
today as "in the future".  And ``upload --symptom-onset`` checked nothing: a date before 1970 went
to the server, which answered 400 about 'symptomOnsetInterval' (exit 1), one in the future was stored.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_helpers import KEY

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import InputError
from bluezone.proximity.store import SightingStore
from bluezone.server.codes import issue_code
from bluezone.server.storage import SQLiteStorage

#: 2026-12-05 23:30 UTC: 06:30 on 2026-12-06 in Hanoi.
HANOI_MORNING = dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC).timestamp()
HANOI_TODAY = dt.date(2026, 12, 6)
TOMORROW_EVERYWHERE = dt.date(2026, 12, 7)


def test_issue_code_takes_a_date_that_is_today_east_of_utc(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "server.db")
    try:
        for kw in ({"test_date": HANOI_TODAY}, {"symptom_onset": HANOI_TODAY},
                   {"test_type": "recursive", "exposure_date": HANOI_TODAY}):
            assert issue_code(storage, HANOI_MORNING, key=KEY, **kw).code  # type: ignore[arg-type]
        for kw in ({"test_date": TOMORROW_EVERYWHERE}, {"symptom_onset": TOMORROW_EVERYWHERE},
                   {"test_type": "recursive", "exposure_date": TOMORROW_EVERYWHERE}):
            with pytest.raises(InputError, match="in the future|within the last 14 days"):
                issue_code(storage, HANOI_MORNING, key=KEY, **kw)  # type: ignore[arg-type]
    finally:
        storage.close()


@pytest.fixture
def f0(tmp_path: Path) -> Path:
    db = tmp_path / "f0.db"
    with SightingStore.open(db, purge_now=HANOI_MORNING) as store:
        for d in range(1, 4):
            store.save_daily_key(DailyKey(bytes([d]) * 16, rolling_start(HANOI_MORNING) - d * ROLLING_PERIOD), created_at=HANOI_MORNING)
    return db


def _upload(db: Path, *args: str):  # type: ignore[no-untyped-def]
    # a server nobody listens on: anything sent would be a KeyServerError, exit 1
    return CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "1234567812345678", "--db", str(db),
              "--no-checkins", *args],
        obj={"clock": VirtualClock(HANOI_MORNING)},
    )


def test_upload_takes_todays_date_in_hanoi(f0: Path) -> None:
    result = _upload(f0, "--symptom-onset", HANOI_TODAY.isoformat(), "--dry-run")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout[result.stdout.index("{"):])
    assert body["symptomOnsetInterval"] == (HANOI_TODAY - dt.date(1970, 1, 1)).days * ROLLING_PERIOD
    result = _upload(f0, "--exposure-date", HANOI_TODAY.isoformat(), "--yes")
    assert result.exit_code == 2 and "in the future" not in result.output  # (no key of that UTC day yet)


@pytest.mark.parametrize(
    "option, date, message",
    [
        ("--symptom-onset", "0001-01-01", "more than 28 days ago"),
        ("--symptom-onset", "1969-12-31", "more than 28 days ago"),
        ("--symptom-onset", (HANOI_TODAY - dt.timedelta(days=30)).isoformat(), "more than 28 days ago"),
        ("--symptom-onset", TOMORROW_EVERYWHERE.isoformat(), "in the future"),
        ("--symptom-onset", "9999-12-31", "in the future"),
        ("--exposure-date", TOMORROW_EVERYWHERE.isoformat(), "in the future"),
        # its local midnight is a date's start to send keys from: year 1's, east of UTC, lies in year 0
        ("--exposure-date", "0001-01-01", "more than 28 days ago"),
        ("--exposure-date", (HANOI_TODAY - dt.timedelta(days=30)).isoformat(), "more than 28 days ago"),
    ],
)
def test_upload_refuses_impossible_dates_before_sending(f0: Path, option: str, date: str, message: str) -> None:
    result = _upload(f0, option, date, "--yes")
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("field", ["test_date", "symptom_onset"])
def test_issue_code_refuses_a_date_more_than_28_days_back(tmp_path: Path, field: str) -> None:
    """GAEN's verification server allows test and onset dates 28 days back: from further back no key
    still kept has a known days since onset.  The earliest calendar (UTC-12) still gets its 28th day."""
    storage = SQLiteStorage(tmp_path / "server.db")
    try:
        # 23:30 UTC: UTC-12's today is 2026-12-05 too, so 28 days back is 2026-11-07 everywhere
        assert issue_code(storage, HANOI_MORNING, key=KEY, **{field: dt.date(2026, 11, 7)}).code  # type: ignore[arg-type]
        for date in (dt.date(2026, 11, 6), dt.date(2020, 1, 1), dt.date(1, 1, 1)):
            with pytest.raises(InputError, match=f"the {field.replace('_', ' ')} {date} is more than 28 days ago"):
                issue_code(storage, HANOI_MORNING, key=KEY, **{field: date})  # type: ignore[arg-type]
        # 00:30 UTC on the 6th: still the 5th at UTC-12, so the 7th of November is still allowed
        early = dt.datetime(2026, 12, 6, 0, 30, tzinfo=dt.UTC).timestamp()
        assert issue_code(storage, early, key=KEY, **{field: dt.date(2026, 11, 7)}).code  # type: ignore[arg-type]
    finally:
        storage.close()


def test_a_recursive_code_takes_an_exposure_14_days_back_on_the_earliest_calendar(tmp_path: Path) -> None:
    """At 00:30 UTC on the 6th it is still the 5th at UTC-12: an exposure 14 days before that, on November 21,
    may still be given (it was refused by the UTC day's 14); one a day older may not."""
    storage = SQLiteStorage(tmp_path / "server.db")
    early = dt.datetime(2026, 12, 6, 0, 30, tzinfo=dt.UTC).timestamp()
    try:
        assert issue_code(storage, early, key=KEY, test_type="recursive", exposure_date=dt.date(2026, 11, 21)).code
        with pytest.raises(InputError, match="within the last 14 days"):
            issue_code(storage, early, key=KEY, test_type="recursive", exposure_date=dt.date(2026, 11, 20))
    finally:
        storage.close()


def test_issue_code_command_refuses_an_old_test_date_in_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    runner = CliRunner()
    assert runner.invoke(cli, ["server", "keygen", "--out", str(keys)]).exit_code == 0
    result = runner.invoke(
        cli, ["server", "issue-code", "--server-db", str(tmp_path / "s.db"), "--create-db",
              "--signing-key-dir", str(keys), "--test-date", "2024-12-05"],
        obj={"clock": VirtualClock(HANOI_MORNING)},
    )
    assert result.exit_code == 2, result.output
    assert "more than 28 days ago" in result.output and len(result.output.strip().splitlines()) == 1, result.output
