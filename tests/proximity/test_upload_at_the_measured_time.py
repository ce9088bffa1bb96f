"""`upload` (the command and ``bluezone.client.uploading.upload``) and `keys export` while the daemon does not believe a step of the wall
clock: both read the wall clock, so at a clock stepped a year ahead every daily key was past its 14 days ("nothing to
upload") and a symptom onset of last week "more than 28 days ago".  They now plan at the daemon's measured time, as
`check`, `status` and `checkin` do."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.client.uploading import upload
from bluezone.clock import VirtualClock

from .clock_helpers import YEAR, leave_a_mark, store_of_ten_days
from .conftest import NOON

ONSET = (dt.datetime.fromtimestamp(NOON, dt.UTC).date() - dt.timedelta(days=3)).isoformat()
SENT_DAYS = 9  # store_of_ten_days: a key for each of ten days up to NOON's, today's not sent


@pytest.fixture
def f0(tmp_path: Path) -> Path:
    """Ten days of daily keys up to NOON; the daemon measured NOON while the wall clock read a year ahead."""
    path = tmp_path / "f0.db"
    store_of_ten_days(path).close()
    leave_a_mark(path, NOON)
    return path


def test_the_upload_command_plans_at_the_measured_time(f0: Path) -> None:
    done = CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "1234567812345678", "--db", str(f0), "--no-checkins",
              "--symptom-onset", ONSET, "--dry-run"],
        obj={"clock": VirtualClock(NOON + YEAR)},
    )
    assert done.exit_code == 0, done.output  # was 2: the onset "more than 28 days ago", then "nothing to upload"
    body = json.loads(done.stdout[done.stdout.index("{"):])
    assert len(body["temporaryExposureKeys"]) == SENT_DAYS


def test_an_upload_from_python_sends_at_the_measured_time(f0: Path) -> None:
    sent: list[dict] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"insertedExposures": len(sent[-1]["temporaryExposureKeys"])})

    with httpx.Client(transport=httpx.MockTransport(server)) as http:
        result = upload("http://keys.test", "1234567812345678", f0, now=NOON + YEAR, checkins=False, http=http,
                        symptom_onset=dt.date.fromisoformat(ONSET))
    assert len(sent) == 1 and len(sent[0]["temporaryExposureKeys"]) == SENT_DAYS
    assert result.receipt.inserted == SENT_DAYS


def test_keys_export_writes_the_keys_of_the_days_before_the_measured_time(f0: Path) -> None:
    done = CliRunner().invoke(cli, ["keys", "export", "--db", str(f0), "--out", "-"], obj={"clock": VirtualClock(NOON + YEAR)})
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.stdout)["temporaryExposureKeys"]) == SENT_DAYS + 1  # was 0; today's too, cut at the
    # measured time
