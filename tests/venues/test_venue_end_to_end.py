"""Issue 15's "done": on loopback through the CLI, a venue, one visitor checked in by URL (the
case, F0) and one by the venue's beacon on the emulated radio; the F0 uploads keys and
check-ins, the server exports, and the other visitor's `bluezone check` reports the venue
exposure with its overlap (and no Bluetooth contact)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import pytest

from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.broadcast import run_beacon
from bluezone.venues.checkins import record_visit
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import load_venue_dir


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.stdout, result.stderr


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def clear_of_midnight(hours: float) -> float:
    """The wall clock's time, moved back to the evening before when less than ``hours`` have passed
    since UTC midnight.  These tests place visits up to ``hours`` ago, and a visit across midnight
    is stored as two check-ins (one per UTC day), which would change what they count.  The times
    stay in the real past: the key server runs in another process on the wall clock."""
    now = time.time()
    return now - hours * 3600 if now % 86400 < hours * 3600 else now


def checked_in_by_beacon(venue_dir: Path, db: Path, start: float, minutes: float) -> None:
    """A bluezone daemon 3 m from the venue's beacon for ``minutes``, then gone, on a virtual clock."""
    clock = VirtualClock(start)
    air = Air(clock, seed=3)
    secrets = load_venue_dir(venue_dir)

    def where(t: float) -> tuple[float, float]:
        return (3.0, 0.0) if t < start + minutes * 60 else (500.0, 0.0)

    store = SightingStore.open(db)
    daemon = Daemon(air.radio("visitor", where), store, clock, listeners=[BeaconCheckIns(store)])

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_beacon(air.radio("beacon", (0.0, 0.0), beacon.SERVICE_UUID), secrets, clock, (minutes + 10) * 60))
            tg.create_task(daemon.run((minutes + 10) * 60))

    try:
        clock.run(main())
    finally:
        store.close()


def test_venue_exposure_end_to_end(live_server: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = clear_of_midnight(3.5)
    cafe, f0_db, visitor_db = tmp_path / "cafe", tmp_path / "f0.db", tmp_path / "visitor.db"
    rc, out, err = run("venue", "create", "--name", "Café Hoa", "--address", "12 Trần Phú, Hà Nội",
                       "--type", "food-service", "--default-minutes", "60", "--out", str(cafe), "--json")
    assert rc == 0, err
    url = json.loads(out)["url"]

    # the F0 scanned the poster (a visit recorded afterwards: 3 h to 2 h ago); its device has daily keys
    rc, out, err = run("checkin", url, "--start", iso(now - 3 * 3600), "--end", iso(now - 2 * 3600), "--db", str(f0_db))
    assert rc == 0, err
    with SightingStore.open(f0_db) as store:
        for days_ago in (2, 1, 0):
            store.save_daily_key(DailyKey.generate(now - days_ago * 86400))

    # the other visitor never scanned anything: its daemon heard the beacon 3 h 30 min to 2 h 30 min ago
    checked_in_by_beacon(cafe, visitor_db, now - 3.5 * 3600, 60)
    rc, out, err = run("checkins", "--db", str(visitor_db), "--json")
    [visit] = json.loads(out)["checkins"]
    assert visit["source"] == "beacon" and visit["description"] == "Café Hoa"

    # the health authority's code; the F0 uploads keys and check-ins on it
    rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--json", "--type", "confirmed")
    assert rc == 0, err
    code = json.loads(out)["code"]
    rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--yes", "--json")
    assert rc == 0, err
    sent = json.loads(out)
    assert sent["checkins_sent"] == 1 and sent["checkins_stored"] == 1 and sent["checkins"][0]["minutes"] == 60

    rc, out, err = run("server", "export", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--export-dir", str(live_server["exports"]))
    assert rc == 0, err

    shutil.copy(visitor_db, tmp_path / "visitor-copy.db")
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["exposures"] == []  # no Bluetooth contact: the F0's phone was never near
    [exposure] = report["venue_exposures"]
    assert exposure["venue"] == "Café Hoa" and exposure["address"] == "12 Trần Phú, Hà Nội"
    # 30 min together; the case's hour is put on the 10-minute grid (up to 5 min earlier or later,
    # by the wall clock's phase) and the beacon visit ends at the last frame heard (seconds late)
    assert 25 <= exposure["overlap_minutes"] <= 35.5 and exposure["fifteen_minutes_or_more"]
    # a close contact by the venue, said apart from Bluetooth's (close_contact keeps its meaning)
    assert (report["close_contact"], report["venue_close_contact"], report["new_to_act_on"]) == (False, True, True)
    # a second check finds nothing new (files are processed once, as key batches), and repeats the
    # venue exposure as reported before, as it does Bluetooth ones (it said nothing of it)
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    assert rc == 0 and json.loads(out)["venue_exposures"] == []
    assert json.loads(out)["earlier_venue_exposures"] == [exposure] and json.loads(out)["venue_close_contact"] is True
    assert json.loads(out)["new_to_act_on"] is False  # told by the first check
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db))
    assert rc == 0, err
    line = next(line for line in out.splitlines() if "Café Hoa" in line)
    assert "(15 min or more in the same room)  (reported by an earlier check)" in line
    assert "0 venue exposure(s) from 0 venue-warning file(s), 1 reported before (14 days)" in out
    # a warning still in force says what to do, as a Bluetooth close contact's does, and that it stands
    assert out.splitlines()[-1].startswith("What now: you were in the same room as someone who tested positive")
    assert out.splitlines()[-2] == (
        "Close contact now: in the same room as a case for 15 minutes or more (a venue warning: your health authority"
        " says whether that makes you a close contact), within the last 14 days; new since the last check: nothing new"
        " (told by an earlier check)"
    )
    # the same facts in words, one report with the Bluetooth exposures; the times in the local zone, as
    # `checkins` shows the visit (someone in Hanoi was there at 19:15, not at 12:15 UTC)
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    try:
        rc, out, err = run("check", "--server", live_server["url"], "--db", str(tmp_path / "visitor-copy.db"))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert rc == 0, err
    line = next(line for line in out.splitlines() if "Café Hoa" in line)
    assert "min  at Café Hoa (12 Trần Phú, Hà Nội)" in line and "15 min or more" in line
    hanoi = dt.timezone(dt.timedelta(hours=7))
    start, end = (dt.datetime.fromisoformat(exposure["your_visit"][k]).astimezone(hanoi) for k in ("start", "end"))
    day = "" if start.date().isoformat() == exposure["date"] else f"{start.date()} "
    # the visitor's own stay and the minutes shared; never the case's times (venues.matching.NOT_SHOWN)
    assert f"you were there {day}{start:%H:%M}-{end:%H:%M} +07; a case was there too for {exposure['overlap_minutes']:.0f} min of it" in line, line
    assert "case_visit" not in exposure and "overlap_start" not in exposure and "overlap_end" not in exposure
    assert "1 venue exposure(s)" in out and "0 exposure(s)" in out
    assert "Close contact now: in the same room as a case for 15 minutes or more" in out and "new since the last check: yes" in out
    assert "What now: you were in the same room as someone who tested positive for 15 minutes or more" in out


def test_owner_warning_and_an_upload_that_keeps_its_checkins(live_server: dict, tmp_path: Path) -> None:
    now = clear_of_midnight(5)
    cafe, f0_db, visitor_db = tmp_path / "cafe", tmp_path / "f0.db", tmp_path / "visitor.db"
    rc, out, err = run("venue", "create", "--name", "Quán Phở", "--address", "Chợ Lớn", "--out", str(cafe), "--json")
    url = json.loads(out)["url"]
    assert run("checkin", url, "--start", iso(now - 5 * 3600), "--end", iso(now - 4 * 3600), "--db", str(visitor_db))[0] == 0
    assert run("checkin", url, "--start", iso(now - 5 * 3600), "--end", iso(now - 4 * 3600), "--db", str(f0_db))[0] == 0
    with SightingStore.open(f0_db) as store:
        store.save_daily_key(DailyKey.generate(now - 86400))

    def issue(*kind: str) -> str:
        out = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir", str(live_server["keys"]),
                  *kind, "--json")[1]
        return json.loads(out)["code"]

    # an F0 who answers no to the check-ins question sends keys only
    result = CliRunner().invoke(
        cli, ["upload", "--server", live_server["url"], "--code", issue(), "--db", str(f0_db)], obj={}, input="y\nn\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "Quán Phở" in result.stderr and "Send these check-ins too" in result.stderr
    assert "uploaded 1 key(s);" in result.stdout
    # a negative test's code publishes no check-ins: it was taken and used up, and the owner told "warning
    # sent" (walk12); now refused with what to ask for
    rc, out, err = run("venue", "warn", str(cafe), "--server", live_server["url"], "--code", issue("--type", "negative"),
                       "--start", iso(now - 4.75 * 3600), "--end", iso(now - 4.25 * 3600), "--yes")
    assert rc == 2 and "ask the health authority for a confirmed or likely code (this one is not used up)" in err, err
    # the owner warns for 30 minutes of that hour, with a code of its own
    rc, out, err = run("venue", "warn", str(cafe), "--server", live_server["url"], "--code", issue(),
                       "--start", iso(now - 4.75 * 3600), "--end", iso(now - 4.25 * 3600), "--yes", "--json")
    assert rc == 0, err
    assert json.loads(out) == {"server": live_server["url"], "reports_sent": 1, "reports_stored": 1}
    # the owner is told the warning waits for the server's export, not only for the visitors' checks (walk14:
    # "visitors learn of it at their next check"; a check before the export found nothing); another window
    rc, out, err = run("venue", "warn", str(cafe), "--server", live_server["url"], "--code", issue(),
                       "--start", iso(now - 2 * 3600), "--end", iso(now - 1.5 * 3600), "--yes")
    assert rc == 0 and "published at the server's next export" in out, err
    bad = run("venue", "warn", str(cafe), "--server", live_server["url"], "--code", "12345678",
              "--start", iso(time.time() + 3600), "--end", iso(time.time() + 7200), "--yes")
    assert bad[0] == 2 and "future" in bad[2]
    run("server", "export", "--server-db", str(live_server["db"]), "--signing-key-dir", str(live_server["keys"]),
        "--export-dir", str(live_server["exports"]))
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    [exposure] = json.loads(out)["venue_exposures"]
    assert exposure["venue"] == "Quán Phở" and exposure["overlap_minutes"] == 30.0


@pytest.mark.parametrize("kind", ["negative", "recursive"])
def test_an_owners_warning_with_a_code_that_is_not_positive_sends_no_report(
    live_server: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """`venue warn` with a negative test's (or a close contact's) code sent its reports in a /v1/publish, which
    the server refused only after seeing them.  It now asks /v1/verify first: nothing but the code goes, one
    line, exit 2, and the code stays usable (an upload of keys with it then works)."""
    import httpx

    now = clear_of_midnight(3)
    cafe = tmp_path / "cafe"
    assert run("venue", "create", "--name", "Quán Phở", "--address", "Chợ Lớn", "--out", str(cafe))[0] == 0
    rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--type", kind, "--json",
                       *(["--exposure-date", iso(now - 2 * 86400)[:10]] if kind == "recursive" else []))
    code = json.loads(out)["code"]
    paths: list[str] = []
    send = httpx.Client.send

    def recorded(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
        paths.append(request.url.path)
        return send(self, request, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.Client, "send", recorded)
    rc, out, err = run("venue", "warn", str(cafe), "--server", live_server["url"], "--code", code,
                       "--start", iso(now - 2 * 3600), "--end", iso(now - 1.5 * 3600), "--yes")
    assert paths == ["/v1/verify"], paths
    assert rc == 2 and out == "" and err.splitlines()[-1].startswith("Error: nothing sent: this code is a "), err
    assert "(this one is not used up)" in err
    monkeypatch.undo()
    f0_db = tmp_path / "f0.db"
    with SightingStore.open(f0_db) as store:
        store.save_daily_key(DailyKey.generate(now - 86400))
    rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--yes")
    assert rc == 0 and "uploaded 1 key(s)" in out, err


def test_an_owners_warning_goes_to_a_server_that_cannot_say_what_the_code_is_for(
    live_server: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older server (no /v1/verify) cannot say; unlike a person's upload, whose check-ins would show it the
    venues of someone not positive, the owner's reports name the owner's own venue, and such a server stores none
    for a code that is not a positive test's: the warning goes, said on stderr."""
    from bluezone.client.keyserver import KeyServerClient

    now = clear_of_midnight(3)
    cafe = tmp_path / "cafe"
    assert run("venue", "create", "--name", "Quán Phở", "--address", "Chợ Lớn", "--out", str(cafe))[0] == 0
    rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--json")
    monkeypatch.setattr(KeyServerClient, "code_type", lambda self, code: None)  # as against a server without it
    rc, out, err = run("venue", "warn", str(cafe), "--server", live_server["url"], "--code", json.loads(out)["code"],
                       "--start", iso(now - 2 * 3600), "--end", iso(now - 1.5 * 3600), "--yes", "--json")
    assert rc == 0 and json.loads(out)["reports_stored"] == 1, err
    assert "cannot say what this code is for (no /v1/verify): sending" in err


def test_a_day_with_more_checkins_than_one_upload_carries_sends_its_longest(live_server: dict, tmp_path: Path) -> None:
    """Thirteen visits on one day: the server takes 12 a day, and refused the whole upload (exit 2, 'send
    the keys alone with --no-checkins': no venue warned at all).  Now the day's 12 longest go, one line
    says how many stay on the device, and the keys go too."""
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.location import Venue

    now = time.time()
    day_start = now - now % 86400 - 86400  # yesterday, 00:00 UTC
    f0_db = tmp_path / "f0.db"
    with SightingStore.open(f0_db) as store:
        store.save_daily_key(DailyKey.generate(day_start + 3600))
        for i in range(13):  # thirteen visits yesterday, one an hour: 20 minutes, the first only 10
            place = Venue.create(f"Shop {i}", "Main St")
            record_visit(store, place, day_start + i * 3600, day_start + i * 3600 + (600 if i == 0 else 1200), now)
    rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--json")
    assert rc == 0, err
    code = json.loads(out)["code"]
    rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--yes", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert (result["checkins_sent"], result["checkins_stored"], result["checkins_left_out"]) == (12, 12, 1)
    assert "Shop 0" not in {c["venue"] for c in result["checkins"]}  # the shortest stays
    assert "(1 more check-in(s) stay on this device: one upload carries at most 12 a day, the longest of each day go)" in err


def test_a_couriers_checkins_go_twelve_a_day(live_server: dict, tmp_path: Path) -> None:
    """A device with 30 check-ins a day for 13 days (390) made a body over the server's size limit: a 413,
    then an exit-2 refusal with 'send the keys alone with --no-checkins'.  Now 12 of each day go (156)."""
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.location import Venue

    now = time.time()
    today = now - now % 86400
    places = [Venue.create(f"Shop {i}", "Main St") for i in range(30)]
    f0_db = tmp_path / "f0.db"
    with SightingStore.open(f0_db) as store:
        for day in range(1, 14):
            store.save_daily_key(DailyKey.generate(today - day * 86400 + 3600))
            for i, place in enumerate(places):  # 20 minutes every half hour
                start = today - day * 86400 + i * 1800
                record_visit(store, place, start, start + 1200, now)
    rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--json")
    assert rc == 0, err
    code = json.loads(out)["code"]
    rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--yes")
    assert rc == 0, err
    assert "uploaded 13 key(s) and 156 check-in(s); the server stored 13 new key(s) and 156 check-in(s)" in out
    assert "(234 more check-in(s) stay on this device" in err


def test_a_close_contact_uploads_keys_without_checkins(live_server: dict, tmp_path: Path) -> None:
    """An F1's upload (--exposure-date, recursive code) leaves its check-ins on the device: a venue
    warning says a case was there.  Asking for them is a usage error."""
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.location import Venue

    now = time.time()
    yesterday = now - now % 86400 - 86400
    f1_db = tmp_path / "f1.db"
    with SightingStore.open(f1_db) as store:
        store.save_daily_key(DailyKey.generate(yesterday + 3600))
        record_visit(store, Venue.create("Shop", "Main St"), yesterday + 3600, yesterday + 7200, now)
    exposed = dt.datetime.fromtimestamp(yesterday - 86400, dt.UTC).date().isoformat()
    rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--type", "recursive", "--exposure-date", exposed, "--json")
    assert rc == 0, err
    code = json.loads(out)["code"]
    args = ["upload", "--server", live_server["url"], "--code", code, "--db", str(f1_db), "--exposure-date", exposed]
    rc, out, err = run(*args, "--yes", "--checkins")
    assert rc == 2 and "--checkins does not go with --exposure-date" in err
    rc, out, err = run(*args, "--yes", "--json")
    assert rc == 0, err
    sent = json.loads(out)
    assert sent["checkins_sent"] == 0 and "You also checked in" not in err


def test_upload_says_what_it_sent_and_what_the_server_kept_of_the_checkins(live_server: dict, tmp_path: Path) -> None:
    """A negative test's upload showed the check-ins, sent them, and said 'uploaded 1 key(s) and 0
    check-in(s)': the server keeps none under a negative code, which the line did not say."""
    now = clear_of_midnight(3)
    f0_db = tmp_path / "f0.db"
    rc, out, err = run("venue", "create", "--name", "Quán Phở", "--address", "Chợ Lớn", "--out", str(tmp_path / "v"), "--json")
    assert run("checkin", json.loads(out)["url"], "--start", iso(now - 3 * 3600), "--end", iso(now - 2 * 3600),
               "--db", str(f0_db))[0] == 0
    with SightingStore.open(f0_db) as store:
        store.save_daily_key(DailyKey.generate(now - 86400))

    def upload(test_type: str) -> str:
        code = json.loads(run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                              str(live_server["keys"]), "--type", test_type, "--json")[1])["code"]
        rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--yes")
        assert rc == 0, err
        said, *next_lines = out.strip().splitlines()  # then what happens next (checked below)
        told.append(next_lines)
        errs.append(err)
        return said

    told: list[list[str]] = []
    errs: list[str] = []
    # a negative test's code: the check-ins stay on the device (they were sent, and the server kept none)
    assert upload("negative") == "uploaded 1 key(s); the server stored 0 new key(s)"
    assert ("  (1 check-in(s) stay on this device: this code is a negative test's, and check-ins go only with a"
            " positive test's code)") in errs[0].splitlines() and "You also checked in" not in errs[0]
    # not published: a later positive test sends it
    assert upload("likely") == "uploaded 1 key(s) and 1 check-in(s); the server stored 1 new key(s) and 1 check-in(s)"
    # published: not sent again (a second copy reads to the others who were there as a second case)
    assert upload("confirmed") == "uploaded 1 key(s); the server stored 0 new key(s), revised 1"
    # what happens next, and for the likely code what is still to do (the F0 was told nothing)
    nothing, likely, confirmed = told
    assert nothing == ["next: nothing new was stored, so nothing more is published"]
    assert likely[0] == ("next: published at the server's next export; people near you and those at the venues you"
                         " sent are warned when they next check")
    assert "'likely' code" in likely[1] and "keep this device" in likely[1] and "upload again with the confirmed code" in likely[1]
    # walk15: the check-ins sent on a likely code stay published whatever the test says: told now, not found out later
    assert "a negative test's code withdraws your keys' warning, not the check-ins', which stay published 14 days" in likely[1]
    assert confirmed == ["next: the change is published at the server's next export; people near you learn of it"
                         " when they next check"]


def test_a_device_that_only_checked_in_uploads_its_checkins_alone(live_server: dict, tmp_path: Path) -> None:
    """A visitor who scanned posters but never ran the daemon has no daily keys: upload said 'no daily
    keys of the last 14 days in this database: nothing to upload', so its visits could warn nobody."""
    now = clear_of_midnight(3)
    f0_db, visitor_db = _f0_and_visitor_checked_in(tmp_path, now, "Quán Phở", "Chợ Lớn", f0_keys=False)
    code = json.loads(run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                          str(live_server["keys"]), "--json")[1])["code"]
    rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--no-checkins", "--yes")
    assert rc == 2 and err == f"Error: no daily keys of the last 14 days in {f0_db}: nothing to upload (to read another database: --db PATH)\n"
    result = CliRunner().invoke(
        cli, ["upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db)], obj={}, input="y\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "no daily keys (it never ran `bluezone run`)" in result.stderr and "Quán Phở" in result.stderr
    said, told = result.stdout.strip().splitlines()  # a confirmed test's code: nothing more to do
    assert said == "uploaded 0 key(s) and 1 check-in(s); the server stored 0 new key(s) and 1 check-in(s)"
    assert told == "next: published at the server's next export; those at the venues you sent are warned when they next check"
    run("server", "export", "--server-db", str(live_server["db"]), "--signing-key-dir", str(live_server["keys"]),
        "--export-dir", str(live_server["exports"]))
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    [exposure] = json.loads(out)["venue_exposures"]
    assert exposure["venue"] == "Quán Phở" and 50 <= exposure["overlap_minutes"] <= 60  # the case's on the 10-min grid


def _upload(live_server: dict, db: Path) -> dict:
    code = json.loads(run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                          str(live_server["keys"]), "--json")[1])["code"]
    rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(db), "--yes", "--json")
    assert rc == 0, err
    return json.loads(out)


def _f0_and_visitor_checked_in(tmp_path: Path, now: float, name: str, address: str, *, f0_keys: bool) -> tuple[Path, Path]:
    """Two stores checked in at one new venue for the same hour (3 to 2 hours before ``now``); with
    ``f0_keys`` the first holds yesterday's daily key, to upload as F0."""
    f0_db, visitor_db = tmp_path / "f0.db", tmp_path / "visitor.db"
    rc, out, err = run("venue", "create", "--name", name, "--address", address, "--out", str(tmp_path / "v"), "--json")
    url = json.loads(out)["url"]
    for db in (f0_db, visitor_db):
        assert run("checkin", url, "--start", iso(now - 3 * 3600), "--end", iso(now - 2 * 3600), "--db", str(db))[0] == 0
    if f0_keys:
        with SightingStore.open(f0_db) as store:
            store.save_daily_key(DailyKey.generate(now - 86400))
    return f0_db, visitor_db


def _export(live_server: dict) -> None:
    rc, out, err = run("server", "export", "--server-db", str(live_server["db"]), "--signing-key-dir",
                       str(live_server["keys"]), "--export-dir", str(live_server["exports"]))
    assert rc == 0, err


def test_an_f0_is_not_warned_of_its_own_uploaded_checkins(live_server: dict, tmp_path: Path) -> None:
    """An F0 who checks after uploading was told it had shared a room with a case for 60 minutes (itself),
    with the close-contact advice.  Its own published check-in is now said once for what it is."""
    now = clear_of_midnight(3)
    f0_db, visitor_db = _f0_and_visitor_checked_in(tmp_path, now, "Café Hoa", "Hội An", f0_keys=True)
    assert _upload(live_server, f0_db)["checkins_stored"] == 1
    _export(live_server)

    shutil.copy(f0_db, tmp_path / "f0-copy.db")
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(f0_db), "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["venue_exposures"] == [] and len(report["venue_files"]) == 1
    [own] = report["own_checkins_published"]
    assert own["venue"] == "Café Hoa" and own["your_visit"] == {"start": iso(now - 3 * 3600), "end": iso(now - 2 * 3600)}
    assert abs(dt.datetime.fromisoformat(own["uploaded_at"]).timestamp() - time.time()) < 600
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(tmp_path / "f0-copy.db"))
    assert rc == 0, err
    assert "your own check-in" in out and "published to warn others who were there, not an exposure" in out
    assert "0 venue exposure(s) from 1 venue-warning file(s)" in out and "What now" not in out
    # the file does warn the others who were there
    [exposure] = json.loads(run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")[1])["venue_exposures"]
    assert exposure["venue"] == "Café Hoa" and exposure["fifteen_minutes_or_more"]


def test_a_warning_told_under_another_url_of_the_server_is_repeated_not_dropped(live_server: dict, tmp_path: Path) -> None:
    """README: `demo --out DIR`, then its key server run again on another port. A visitor's check there
    repeated its Bluetooth exposures but said nothing of the venue warning it had been told ('0 venue
    exposure(s) from 1 venue-warning file(s)', 'nothing to do'): the report was known as told, and the
    new URL's memory of what was told was empty (walk17)."""
    now = clear_of_midnight(3)
    f0_db, visitor_db = _f0_and_visitor_checked_in(tmp_path, now, "Café Hoa", "Hội An", f0_keys=True)
    assert _upload(live_server, f0_db)["checkins_stored"] == 1
    _export(live_server)
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    assert rc == 0, err
    [exposure] = json.loads(out)["venue_exposures"]
    other_url = live_server["url"].replace("127.0.0.1", "localhost")
    for _ in range(2):  # and the check after it, now from this URL's own memory
        rc, out, err = run("check", "--server", other_url, "--db", str(visitor_db), "--json")
        assert rc == 0, err
        report = json.loads(out)
        assert report["venue_exposures"] == [] and report["earlier_venue_exposures"] == [exposure], out
    rc, out, err = run("check", "--server", other_url, "--db", str(visitor_db))
    assert "(15 min or more in the same room)  (reported by an earlier check)" in out, out
    assert out.splitlines()[-1].startswith("What now: you were in the same room as someone who tested positive")


def test_an_f0_is_still_warned_by_another_case_and_of_visits_it_did_not_upload(live_server: dict, tmp_path: Path) -> None:
    """Only the reports the F0 sealed itself are set aside: another case in the same café for the same
    hour (a report with the very same venue, interval and period) still warns it, and so does a case
    at a shop where the F0 stayed 4 minutes (too short to upload)."""
    now = clear_of_midnight(3)
    f0_db, case_db = tmp_path / "f0.db", tmp_path / "case.db"
    urls = []
    for name in ("Café Hoa", "Tiệm Vàng"):
        rc, out, err = run("venue", "create", "--name", name, "--address", "Hội An", "--out", str(tmp_path / name), "--json")
        urls.append(json.loads(out)["url"])
    cafe, shop = urls
    for db in (f0_db, case_db):
        assert run("checkin", cafe, "--start", iso(now - 3 * 3600), "--end", iso(now - 2 * 3600), "--db", str(db))[0] == 0
        with SightingStore.open(db) as store:
            store.save_daily_key(DailyKey.generate(now - 86400))
    assert run("checkin", shop, "--start", iso(now - 1.5 * 3600), "--end", iso(now - 1.5 * 3600 + 240), "--db", str(f0_db))[0] == 0
    assert run("checkin", shop, "--start", iso(now - 1.75 * 3600), "--end", iso(now - 1.25 * 3600), "--db", str(case_db))[0] == 0
    sent = _upload(live_server, f0_db)
    assert [c["venue"] for c in sent["checkins"]] == ["Café Hoa"]  # the 4 minutes at the shop stay on the device
    assert _upload(live_server, case_db)["checkins_stored"] == 2
    _export(live_server)

    rc, out, err = run("check", "--server", live_server["url"], "--db", str(f0_db), "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert [o["venue"] for o in report["own_checkins_published"]] == ["Café Hoa"]
    cafe_exposure, shop_exposure = report["venue_exposures"]
    assert cafe_exposure["venue"] == "Café Hoa" and 50 <= cafe_exposure["overlap_minutes"] <= 60
    assert shop_exposure["venue"] == "Tiệm Vàng" and shop_exposure["overlap_minutes"] == 4.0
    assert not shop_exposure["fifteen_minutes_or_more"] and cafe_exposure["fifteen_minutes_or_more"]


def test_a_case_who_uploads_on_a_likely_code_then_the_confirmed_one_warns_once(live_server: dict, tmp_path: Path) -> None:
    """The confirmed upload does not send the check-in the likely one sent (it was sealed anew and published
    twice: to the visitor, two cases); a second case of the very same hour, in a later file, is told as news
    and remembered as '2 cases'; the F0 is told of its own once."""
    now = clear_of_midnight(3)
    f0_db, visitor_db = _f0_and_visitor_checked_in(tmp_path, now, "Quán Phở", "Chợ Lớn", f0_keys=True)
    sent = []
    for test_type in ("likely", "confirmed"):
        code = json.loads(run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                              str(live_server["keys"]), "--type", test_type, "--json")[1])["code"]
        rc, out, err = run("upload", "--server", live_server["url"], "--code", code, "--db", str(f0_db), "--yes", "--json")
        assert rc == 0, err
        sent.append(json.loads(out)["checkins_sent"])
    assert sent == [1, 0]
    rc, out, err = run("upload", "--server", live_server["url"] + "/v1/", "--code", "12345678", "--db", str(f0_db),
                       "--dry-run")  # the same server, however its URL is written
    assert rc == 0 and "checkInProtectedReports" not in json.loads(out), err
    # and the dry run says why, as the prompt does (docs/venues.md; it printed the request alone)
    assert "A dry run (nothing is sent) would send" in err
    assert "(1 check-in(s) went to this server with an earlier upload and are not sent again" in err
    _export(live_server)
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    assert rc == 0, err
    [exposure] = json.loads(out)["venue_exposures"]
    assert exposure["cases"] == 1
    assert _reports_told(visitor_db) == 1  # the case's report, not the fakes the server mixed in (other venues)
    report = json.loads(run("check", "--server", live_server["url"], "--db", str(f0_db), "--json")[1])
    assert report["venue_exposures"] == [] and len(report["own_checkins_published"]) == 1

    # another case, there the very same hour, uploads a day later: news to the visitor, not a replay
    case_db = tmp_path / "case.db"
    with SightingStore.open(case_db) as store:
        record_visit(store, load_venue_dir(tmp_path / "v").venue, now - 3 * 3600, now - 2 * 3600, now)
        store.save_daily_key(DailyKey.generate(now - 86400))
    assert _upload(live_server, case_db)["checkins_stored"] == 1
    _export(live_server)
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")
    assert rc == 0, err
    [news] = json.loads(out)["venue_exposures"]
    assert news == exposure  # the same minutes, one case more
    assert _reports_told(visitor_db) == 2
    rc, out, err = run("check", "--server", live_server["url"], "--db", str(visitor_db))
    assert rc == 0, err
    assert out.count("at Quán Phở (Chợ Lớn) with 2 cases") == 1 and "(reported by an earlier check)" in out


def _reports_told(db: Path) -> int:
    """How many venue reports a check remembers having told of (schema 9): those of my venues only."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM venue_reports_told").fetchone()
    conn.close()
    return int(n)


def test_an_f0_who_uploaded_before_the_upgrade_from_schema_7_is_not_warned_of_itself(live_server: dict, tmp_path: Path) -> None:
    """The F0 uploaded with a version of schema 7, which kept no record of its reports, then upgraded: the
    warning file of its own check-in told it 'you were in the same room as a case'.  The upgrade knows the
    last upload (its revision token's server and time) and the check sets aside the report with exactly
    the times that upload sent; the other visitor is still warned."""
    import sqlite3

    now = clear_of_midnight(3)
    f0_db, visitor_db = _f0_and_visitor_checked_in(tmp_path, now, "Café Hoa", "Hội An", f0_keys=True)
    assert _upload(live_server, f0_db)["checkins_stored"] == 1
    _export(live_server)
    with sqlite3.connect(f0_db) as conn:  # back to what a schema-7 store held after that upload
        for table in ("checkin_uploads", "venue_reports_told", "checkin_uploads_unrecorded"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 7")
    conn.close()

    rc, out, err = run("check", "--server", live_server["url"], "--db", str(f0_db))
    assert rc == 0, err
    assert "0 venue exposure(s) from 1 venue-warning file(s)" in out and "What now" not in out
    assert "your own check-in" in out and "known by its times: the bluezone that sent it kept no record" in out
    [exposure] = json.loads(run("check", "--server", live_server["url"], "--db", str(visitor_db), "--json")[1])["venue_exposures"]
    assert exposure["venue"] == "Café Hoa" and exposure["cases"] == 1


def test_a_negative_tests_upload_sends_no_checkins(live_server: dict, tmp_path: Path) -> None:
    """A negative test's upload sent the device's check-ins: the server kept none, but saw each venue's hash and
    day.  The client now asks the server what the code is for (/v1/verify, the code left unused) and sends
    check-ins only with a positive test's code; a device with check-ins only is told there is nothing to send."""
    import httpx

    from bluezone.client.uploading import upload

    now = clear_of_midnight(3)
    f0_db, visitor_db = _f0_and_visitor_checked_in(tmp_path, now, "Quán Phở", "Chợ Lớn", f0_keys=True)

    def issue(test_type: str) -> str:
        rc, out, err = run("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                           str(live_server["keys"]), "--type", test_type, "--json")
        assert rc == 0, err
        return json.loads(out)["code"]

    sent: list[tuple[str, dict]] = []
    http = httpx.Client(event_hooks={"request": [lambda r: sent.append((r.url.path, json.loads(r.content)))]})
    result = upload(live_server["url"], issue("negative"), f0_db, http=http)
    assert [path for path, _ in sent] == ["/v1/verify", "/v1/publish"]
    assert "checkInProtectedReports" not in sent[1][1] and result.checkins == ()
    sent.clear()
    result = upload(live_server["url"], issue("likely"), f0_db, http=http)
    assert "checkInProtectedReports" in sent[-1][1] and result.receipt.checkins == 1
    # the command line: said on stderr, and a device with check-ins alone sends nothing (exit 2, one line)
    rc, out, err = run("upload", "--server", live_server["url"], "--code", issue("negative"), "--db", str(visitor_db), "--yes")
    assert rc == 2 and err.splitlines()[-1] == (
        "Error: nothing to upload: this device has no daily keys, and 1 check-in(s) stay on this device: this code is a"
        " negative test's, and check-ins go only with a positive test's code"
    )
