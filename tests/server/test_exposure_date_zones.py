"""An F1's exposure date is a calendar date where the F1 lives, not a UTC day.

user30's walk, at 21:00 UTC in Vietnam (UTC+7): an F1 exposed at 19:41 UTC on Dec 7, 02:41 on Dec 8 there, was
told by `bluezone check` to upload with --exposure-date 2026-12-07 (the UTC day), while the health authority
issued the code for 2026-12-08 (its date): the server refused the key of Dec 7 ("send only the keys from
2026-12-08 on"), and uploading with 2026-12-08 sent nothing ("no daily keys since 2026-12-08").  Every exposure
between 00:00 and 07:00 there was hit.  The date is now the F1's own calendar's everywhere: check advises it,
upload sends the keys overlapping it in the device's zone, and the server takes keys that end after it began
anywhere (UTC+14).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import KEY

from bluezone.checkreport import _what_now
from bluezone.client.uploading import keys_to_upload
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import PublishError
from bluezone.keyformat.keys import keys_from_daily
from bluezone.matching.check import Exposure
from bluezone.matching.levels import keys_since_exposure
from bluezone.matching.scoring import Score
from bluezone.server.codes import issue_code
from bluezone.server.publish import PublishConfig, PublishRequest, validate_keys
from bluezone.server.storage import RECURSIVE, CodeRecord, SQLiteStorage

#: 2026-12-07 21:00 UTC, when user30 walked; the F1 was exposed at 19:41 UTC, 02:41 on Dec 8 in Vietnam.
WALK = dt.datetime(2026, 12, 7, 21, 0, tzinfo=dt.UTC).timestamp()
EXPOSED = dt.datetime(2026, 12, 7, 19, 41, tzinfo=dt.UTC).timestamp()

#: Real zones beside the fixed offsets: summer time (New York, Santiago, Lord Howe's half hour), quarter hours
#: (Kathmandu, Chatham's +13:45), the ends (Baker Island's UTC-12 as Etc/GMT+12, Kiritimati's UTC+14).
ZONES = ["Asia/Ho_Chi_Minh", "Pacific/Kiritimati", "Etc/GMT+12", "America/New_York", "America/Santiago",
         "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "Europe/London", "UTC"]


def fixed_zone(minutes_east: int) -> str:
    """A POSIX TZ string for a fixed offset (POSIX counts hours west of UTC, so the sign is turned)."""
    sign = "-" if minutes_east > 0 else "+"
    return f"<ZZZ>{sign}{abs(minutes_east) // 60}:{abs(minutes_east) % 60:02d}"


@contextmanager
def time_zone(tz: str) -> Iterator[None]:
    """This process's local time zone set to ``tz``, and put back after."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", tz)
        time.tzset()
        try:
            yield
        finally:
            mp.undo()
            time.tzset()


def f1_daily_keys(now: float) -> list[DailyKey]:
    """An F1 whose daemon ran the 15 UTC days up to today."""
    today = rolling_start(now)
    return [DailyKey(bytes([d + 1]) * 16, today - d * ROLLING_PERIOD) for d in range(15, -1, -1)]


def advice_date(exposed_at: float) -> str:
    """The --exposure-date `bluezone check`'s last line gives an F1 exposed at ``exposed_at``."""
    score = Score("bluezone", {}, 30.0, 30.0, 50, 52.0, "< 1.5 m", True)
    exposure = Exposure(dt.datetime.fromtimestamp(exposed_at, dt.UTC).date().isoformat(), exposed_at, exposed_at + 1800,
                        30, 0, 0, False, score)
    result = SimpleNamespace(exposures=[exposure], updated=[], earlier=[], venue_exposures=[], earlier_venue=[])
    line = _what_now(result, lambda day: True, "http://keys.test")
    assert line is not None and "--exposure-date " in line, line
    return line.split("--exposure-date ")[1].rstrip("`")


def server_takes(keys, exposure_date: dt.date, now: float) -> None:  # type: ignore[no-untyped-def]
    """What the key server does with an F1's upload under a recursive code for ``exposure_date``; raises if refused."""
    code = CodeRecord("h", RECURSIVE, "recursive", (exposure_date - dt.date(1970, 1, 1)).days, None, now, now + 3600, None)
    validate_keys(PublishRequest(keys, "1234567812345678", None), code, now, PublishConfig())


def test_user30s_walk_in_vietnam(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """check says 2026-12-08, the date the health authority gives; upload sends Dec 7's key, the server takes it."""
    with time_zone("Asia/Ho_Chi_Minh"):
        assert advice_date(EXPOSED) == "2026-12-08"  # it said 2026-12-07, the UTC day
        date = dt.date(2026, 12, 8)
        storage = SQLiteStorage(tmp_path / "server.db")
        try:  # what the health authority ran: issue-code --type recursive --exposure-date $(date +%F)
            assert issue_code(storage, WALK, key=KEY, test_type="recursive", exposure_date=date).code
        finally:
            storage.close()
        sent = keys_since_exposure(keys_to_upload(f1_daily_keys(WALK), WALK, include_today=True), date)
        # Dec 7 UTC's key (07:00 Dec 7 to 07:00 Dec 8 there), today's, cut at 21:00 UTC: it holds 02:41 on Dec 8
        assert sent["rolling_start"].tolist() == [rolling_start(dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp())]
        server_takes(sent, date, WALK)  # refused: 'send only the keys from 2026-12-08 on'


def test_the_server_refuses_a_key_that_ended_before_the_date_began_anywhere() -> None:
    """The margin is UTC+14's: a key ending 14 h before the date's UTC midnight or earlier holds none of it."""
    date = dt.date(2026, 12, 8)
    day = (date - dt.date(1970, 1, 1)).days * ROLLING_PERIOD
    keys = keys_from_daily([DailyKey(b"\x01" * 16, day - ROLLING_PERIOD, ROLLING_PERIOD - 84)])  # ends 10:00 UTC Dec 7
    with pytest.raises(PublishError, match="send only the keys from 2026-12-08 on"):
        server_takes(keys, date, WALK)
    server_takes(keys_from_daily([DailyKey(b"\x01" * 16, day - ROLLING_PERIOD, ROLLING_PERIOD - 83)]), date, WALK)


@given(
    zone=st.one_of(st.integers(-12 * 4, 14 * 4).map(lambda q: fixed_zone(q * 15)), st.sampled_from(ZONES)),
    exposed_at=st.floats(WALK - 12 * DAY_SECONDS, WALK),
    later=st.floats(60, 36 * 3600),
)
def test_check_issue_code_and_upload_agree_in_every_zone(zone: str, exposed_at: float, later: float) -> None:
    """From UTC-12 to UTC+14: the advice's date is the exposure's local date, a code for it can be issued, the
    upload with it holds the key of the exposure and every key after, none that ended before the date began
    there, and the server takes it."""
    now = exposed_at + later
    with time_zone(zone):
        date = dt.datetime.fromtimestamp(exposed_at).date()  # what the F1 and the health authority call it
        assert advice_date(exposed_at) == date.isoformat()
        sent = keys_since_exposure(keys_to_upload(f1_daily_keys(now), now, include_today=True), date)
        starts = sent["rolling_start"].astype(int)
        ends = starts + sent["rolling_period"]
        assert starts[0] * INTERVAL_SECONDS <= exposed_at  # the key the exposure fell in goes...
        assert ends[-1] == interval_number(now) + 1 and (starts[1:] == ends[:-1]).all()  # ... and all after, today's too
        midnight = dt.datetime.combine(date, dt.time()).astimezone().timestamp()
        assert (ends * INTERVAL_SECONDS > midnight).all()  # none that ended before the date began here
        server_takes(sent, date, now)


#: The morning after the walk, 10:00 UTC on Dec 8 (17:00 in Vietnam): the F1 uploads with the date check gave.
NEXT_MORNING = dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize("upload_zone", ["UTC", "America/New_York", "Etc/GMT+12"])
def test_an_f1_uploading_in_a_zone_west_of_the_check_still_sends_the_exposures_key(tmp_path, upload_zone: str) -> None:  # type: ignore[no-untyped-def]
    """check ran in Vietnam and said 2026-12-08 (the exposure at 02:41 there, 19:41 UTC on Dec 7); the upload ran
    where the date begins later (the machine's zone set since, a cron job without TZ, the F1 travelled): it sent
    the keys overlapping Dec 8 in that zone, from Dec 8 UTC on, and not Dec 7's, which broadcast from the exposure
    on: the F1's contacts of 19:41-24:00 UTC were never warned, and nothing said so (the server takes Dec 7's key)."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.client.exposures import ExposureMemory
    from bluezone.clock import VirtualClock
    from bluezone.proximity.store import SightingStore

    db, case = tmp_path / "f1.db", keys_from_daily([DailyKey(b"\xca" * 16, rolling_start(EXPOSED))])
    with SightingStore.open(db, purge_now=NEXT_MORNING) as store:
        for key in f1_daily_keys(NEXT_MORNING):
            store.save_daily_key(key, created_at=key.rolling_start * INTERVAL_SECONDS)
        score = Score("bluezone", {}, 30.0, 30.0, 50, 52.0, "< 1.5 m", True)
        exposure = Exposure("2026-12-07", EXPOSED, EXPOSED + 1800, 30, 0, 0, False, score)
        ExposureMemory(store, "http://keys.test").remember(case, [exposure], WALK)  # what check --server told
    with time_zone("Asia/Ho_Chi_Minh"):
        assert advice_date(EXPOSED) == "2026-12-08"
    with time_zone(upload_zone):
        result = CliRunner().invoke(
            cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "1234567812345678", "--db", str(db),
                  "--exposure-date", "2026-12-08", "--include-today", "--dry-run", "--yes"],
            obj={"clock": VirtualClock(NEXT_MORNING)},
        )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout[result.stdout.index("{"):])
    starts = sorted(k["rollingStartNumber"] for k in body["temporaryExposureKeys"])
    assert starts[0] == rolling_start(EXPOSED)  # Dec 7 UTC's key: it was on air at the exposure
    keys = keys_from_daily([k for k in f1_daily_keys(NEXT_MORNING) if k.rolling_start in starts])
    server_takes(keys, dt.date(2026, 12, 8), NEXT_MORNING)


@pytest.mark.parametrize(
    "told, first",
    [
        ("F1", rolling_start(EXPOSED)),
        ("F2", rolling_start(EXPOSED) + ROLLING_PERIOD),  # an F2 uploads nothing: its time moves no date
        ("brief", rolling_start(EXPOSED) + ROLLING_PERIOD),  # not a close contact
        ("F1 two days before", rolling_start(EXPOSED) + ROLLING_PERIOD),  # on Dec 8 nowhere on earth
    ],
)
def test_only_a_close_contact_told_on_the_date_somewhere_moves_its_start(tmp_path, told: str, first: int) -> None:  # type: ignore[no-untyped-def]
    from bluezone.client.exposures import ExposureMemory
    from bluezone.proximity.store import SightingStore

    at = EXPOSED - 2 * DAY_SECONDS if told.endswith("before") else EXPOSED
    score = Score("bluezone", {}, 30.0 if told != "brief" else 3.0, 30.0, 50, 52.0, "< 1.5 m", told != "brief")
    exposure = Exposure("2026-12-07", at, at + 1800, 30, 0, 0, False, score, report_type=4 if told == "F2" else 1)
    with SightingStore.open(tmp_path / "f1.db", purge_now=NEXT_MORNING) as store, time_zone("UTC"):
        ExposureMemory(store, "http://keys.test").remember(keys_from_daily([DailyKey(b"\xca" * 16, rolling_start(at))]), [exposure], WALK)
        keys = keys_from_daily(f1_daily_keys(NEXT_MORNING))
        assert int(keys_since_exposure(keys, dt.date(2026, 12, 8), store)["rolling_start"].min()) == first
