"""From an F0's check-ins to another visitor's venue exposure, through the library: upload
reports, the signed venue export file, matching with overlaps."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.errors import ExportSignatureError, KeyFileError, VenueError
from bluezone.keyformat.export import SignatureInfo
from bluezone.keyformat.venue_export import build_venue_bin, is_venue_file, open_signed_venue_zip, read_venue_bin, signed_venue_zip
from bluezone.venues.location import Venue
from bluezone.venues.matching import match_venue_reports
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.venues.upload import owner_warning_reports, reports_to_upload
from bluezone.venues.visits import Visit

DAY = 86400
T0 = 20_790 * DAY  # a UTC midnight (2026-12-03)
CAFE = Venue.create("Café Hoa", "12 Trần Phú", "food-service", 60, seed=bytes(16))
SHOP = Venue.create("Shop", "Main St 1", seed=bytes(range(16)))


def visit(venue: Venue, start: float, end: float, vid: int = 1) -> Visit:
    return Visit(vid, venue.location_id, venue.description, venue.address, start, end, True, "url")


def test_upload_reports_follow_the_grid_and_midnight() -> None:
    late = visit(CAFE, T0 + DAY - 1800, T0 + DAY + 1800)  # 23:30 .. 00:30
    short = visit(SHOP, T0 + 3600, T0 + 3600 + 200, vid=2)  # three minutes: rounds to nothing
    old = visit(SHOP, T0 - 20 * DAY, T0 - 20 * DAY + 3600, vid=3)  # before the infectious window
    out = reports_to_upload([late, short, old], since=T0 - 2 * DAY, now=T0 + 2 * DAY)
    assert [(r.day, r.period) for r in out] == [(T0 // DAY, 3), (T0 // DAY + 1, 3)]
    assert {r.visit.id for r in out} == {1}
    for r in out:
        opened = r.report.open(CAFE.location_id)
        assert (opened.start_interval, opened.period) == (r.start_interval, r.period)
        assert set(r.entry()) == {"day", "report"} and "Café" not in str(r.entry())


def test_an_open_visit_is_cut_at_now() -> None:
    [r] = reports_to_upload([visit(CAFE, T0, T0 + 3600)], since=T0 - DAY, now=T0 + 1800)
    assert r.period == 3


def test_matching_reports_overlap_and_names_stay_local() -> None:
    case = reports_to_upload([visit(CAFE, T0 + 12 * 3600, T0 + 13 * 3600)], since=T0, now=T0 + DAY)
    fakes = [ProtectedReport.fake() for _ in range(50)]
    mine = [
        visit(CAFE, T0 + 12 * 3600 + 1800, T0 + 14 * 3600, vid=7),  # 30 min together
        visit(SHOP, T0 + 12 * 3600, T0 + 13 * 3600, vid=8),  # same time, other venue
        visit(CAFE, T0 + 15 * 3600, T0 + 16 * 3600, vid=9),  # same venue, later
    ]
    [exposure] = match_venue_reports(mine, [r.report for r in case] + fakes)
    assert exposure.visit.id == 7 and exposure.minutes == 30
    shown = exposure.as_dict()
    assert shown["venue"] == "Café Hoa" and shown["fifteen_minutes_or_more"] is True
    assert shown["overlap_start"].endswith("12:30:00+00:00")


def test_a_stay_across_utc_midnight_is_one_exposure() -> None:
    """The case's upload splits a visit at UTC midnight (07:00 in Vietnam: breakfast time); 20
    minutes together from 23:50 to 00:10 are one 15-minutes-or-more exposure, not two of 10 that
    never reach the threshold."""
    case = reports_to_upload([visit(CAFE, T0 + DAY - 600, T0 + DAY + 600)], since=T0, now=T0 + 2 * DAY)
    assert len(case) == 2  # as CWA uploads it: one report per UTC day
    mine = [visit(CAFE, T0 + DAY - 600, T0 + DAY + 600, vid=4)]
    [exposure] = match_venue_reports(mine, [r.report for r in case])
    assert exposure.minutes == 20 and exposure.as_dict()["fifteen_minutes_or_more"] is True
    assert (exposure.warning.start, exposure.warning.end) == (T0 + DAY - 600, T0 + DAY + 600)


def test_a_case_that_uploaded_twice_during_its_visit_is_one_exposure() -> None:
    """An upload sends a visit once: one still under way at a first upload (a 'likely' code at 10:00, the
    case still at the café) sends 09:00-10:00, the confirmed upload at 11:00 only 10:00-11:00.  Sharing the
    room 09:50-10:10 with that case was two exposures of 10 minutes, neither reaching 15: the warning a
    whole upload gave before 194d173.  Reports that meet exactly are one stay, wherever they meet (as CWA
    sums a visit's overlaps of a day, two cases one after the other count together too)."""
    case = visit(CAFE, T0 + 9 * 3600, T0 + 12 * 3600, vid=3)  # its auto check-out; still there
    first = reports_to_upload([case], since=T0, now=T0 + 10 * 3600)
    sent = {3: float((first[0].start_interval + first[0].period) * 600)}
    second = reports_to_upload([case], since=T0, now=T0 + 11 * 3600, sent_until=sent)
    assert [(r.start_interval * 600 - T0, r.period) for r in first + second] == [(9 * 3600, 6), (10 * 3600, 6)]
    mine = [visit(CAFE, T0 + 10 * 3600 - 600, T0 + 10 * 3600 + 600, vid=4)]
    [exposure] = match_venue_reports(mine, [r.report for r in first + second])  # was two of 10 minutes
    assert exposure.minutes == 20 and exposure.as_dict()["fifteen_minutes_or_more"] is True
    assert (exposure.warning.start, exposure.warning.end) == (T0 + 9 * 3600, T0 + 11 * 3600)


def test_a_report_that_does_not_open_is_skipped() -> None:
    good = ProtectedReport.seal(CAFE.location_id, T0 // 600, 6, 6)
    bad = ProtectedReport(good.location_id_hash, good.iv, good.ciphertext, bytes(32))
    assert match_venue_reports([visit(CAFE, T0, T0 + 3600)], [bad]) == []


def test_signed_venue_file_round_trip_and_tamper() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    info = SignatureInfo("bluezone", "v1")
    reports = [ProtectedReport.seal(CAFE.location_id, T0 // 600, 6, 6), ProtectedReport.fake()]
    data = signed_venue_zip(reports, key, info, "VN", T0 // 3600)
    assert open_signed_venue_zip(data, key.public_key(), "bluezone") == reports
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ExportSignatureError):
        open_signed_venue_zip(data, other.public_key(), "bluezone")
    assert is_venue_file("1796400000-venues-a1b2c3.zip") and not is_venue_file("1796400000-1796342400-a1b2c3-0001.zip")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_venue_bin_is_reports_or_one_key_file_error(data: bytes) -> None:
    try:
        read_venue_bin(build_venue_bin([], "VN", 0)[:16] + data)
    except KeyFileError:
        pass


@pytest.mark.slow
def test_owner_warning_covers_the_window_and_refuses_bad_ones() -> None:
    out = owner_warning_reports(CAFE, T0 + 18 * 3600, T0 + 26 * 3600, now=T0 + 2 * DAY)
    assert [(r.day, r.period) for r in out] == [(T0 // DAY, 36), (T0 // DAY + 1, 12)]
    for start, end, now, message in [
        (T0 + 10, T0, T0 + DAY, "end after it starts"),
        (T0, T0 + DAY, T0 + 3600, "future"),
        (T0 - 20 * DAY, T0 - 19 * DAY, T0, "14 days"),
        (T0, T0 + 120, T0 + DAY, "shorter than 5 minutes"),
    ]:
        with pytest.raises(VenueError, match=message):
            owner_warning_reports(CAFE, start, end, now)


def test_own_reports_are_set_aside_by_their_mac_not_by_venue_and_time() -> None:
    """A report this device sealed is known by its MAC (over a random IV): another case's report of the
    same venue, interval and period opens to the same warning and is still matched."""
    from bluezone.venues.matching import set_aside_own

    stay = visit(CAFE, T0 + 3600, T0 + 7200, vid=7)
    [mine] = reports_to_upload([stay], since=T0, now=T0 + DAY)
    [theirs] = reports_to_upload([visit(CAFE, T0 + 3600, T0 + 7200, vid=1)], since=T0, now=T0 + DAY)
    assert mine.report.open(CAFE.location_id) == theirs.report.open(CAFE.location_id)
    uploaded = {mine.report.mac: (7, T0 + DAY)}
    others, own = set_aside_own([mine.report, theirs.report], [stay], uploaded)
    assert others == [theirs.report]
    assert [(o.visit.id, o.uploaded_at) for o in own] == [(7, T0 + DAY)]
    assert own[0].as_dict()["uploaded_at"] == "2026-12-04T00:00:00+00:00"
    [exposure] = match_venue_reports([stay], others)
    assert exposure.minutes == 60
    assert set_aside_own([theirs.report], [stay], uploaded) == ([theirs.report], [])  # my report not in the file


def test_uploaded_checkins_are_remembered_upgraded_and_purged_with_their_checkin(tmp_path) -> None:
    """A store of schema 7 (before uploads were remembered) upgrades keeping its check-ins; what an
    upload remembers goes at 14 days after the part sent, or with its check-in when that is deleted."""
    import sqlite_utils

    from bluezone.proximity.store import schema as store_module
    from bluezone.proximity.store import SightingStore
    from bluezone.venues.checkins import record_visit, visits
    from bluezone.venues.upload import remember_uploaded

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    for migration in store_module.MIGRATIONS[:7]:
        migration(old)
    old.execute("PRAGMA user_version = 7")
    old.close()
    with SightingStore.open(path, purge_now=T0 + DAY) as store:
        assert store.schema_version == store_module.SCHEMA_VERSION >= 8 and store.checkin_uploads() == {}
        a = record_visit(store, CAFE, T0 + 3600, T0 + 7200, now=T0 + DAY)
        b = record_visit(store, SHOP, T0 + 2 * DAY, T0 + 2 * DAY + 3600, now=T0 + 3 * DAY)
        sent = reports_to_upload(visits(store), since=T0, now=T0 + 3 * DAY)
        remember_uploaded(store, sent, "https://keys.example", T0 + 3 * DAY)
        assert store.checkin_uploads() == {
            r.report.mac: (v.id, T0 + 3 * DAY) for r, v in zip(sent, (a, b))
        }
        store.purge(T0 + 14 * DAY + 7201)  # the café's visit (and the report of it) is past the 14 days
        assert [v.id for v in visits(store)] == [b.id]
        assert list(store.checkin_uploads().values()) == [(b.id, T0 + 3 * DAY)]
        store.purge_dated_ahead(T0)  # the shop's visit deleted by the user (dated after this 'now')
        store.purge(T0 + 3 * DAY)
        assert visits(store) == [] and store.checkin_uploads() == {}


def test_two_cases_with_the_same_minutes_are_one_exposure_of_two_cases() -> None:
    """Two reports of the very same minutes at my café are two cases (an upload sends a visit once): one
    exposure, counted twice, the higher risk kept.  A report of other minutes still counts apart."""
    from dataclasses import replace

    stay = visit(CAFE, T0 + 3600, T0 + 7200)
    first, second = (reports_to_upload([visit(CAFE, T0 + 3600, T0 + 7200, vid=9)], since=T0, now=T0 + DAY)[0]
                     for _ in range(2))
    assert first.report != second.report
    riskier = replace(first, report=ProtectedReport.seal(CAFE.location_id, first.start_interval, first.period, 8))
    later = reports_to_upload([visit(CAFE, T0 + 5400, T0 + 9000, vid=9)], since=T0, now=T0 + DAY)[0]
    found = match_venue_reports([stay], [second.report, riskier.report, later.report])
    assert [(e.minutes, e.overlap_start, e.cases) for e in found] == [(60, T0 + 3600, 2), (30, T0 + 5400, 1)]
    assert found[0].warning.transmission_risk == 8 and found[0].as_dict()["cases"] == 2
    # two cases there across UTC midnight: one exposure of 40 minutes, two cases
    night = visit(CAFE, T0 + DAY - 1200, T0 + DAY + 1200)
    halves = [r.report for _ in range(2) for r in reports_to_upload([replace(night, id=5)], since=T0, now=T0 + 2 * DAY)]
    [joined] = match_venue_reports([night], halves)
    assert (joined.minutes, joined.cases) == (40, 2)


def test_an_upload_sends_a_visit_once_and_what_it_grew_by() -> None:
    """What an earlier upload to the server sent (up to the end of its part) is left out: a visit sent whole
    goes no more, one under way then sends only its minutes since."""
    done = visit(CAFE, T0 + 3600, T0 + 7200, vid=1)
    ongoing = visit(SHOP, T0 + 9000, T0 + 14400, vid=2)
    first = reports_to_upload([done, ongoing], since=T0, now=T0 + 10800)
    assert [(r.visit.id, r.start_interval * 600 - T0, r.period) for r in first] == [(1, 3600, 6), (2, 9000, 3)]
    sent = {r.visit.id: (r.start_interval + r.period) * 600.0 for r in first}
    again = reports_to_upload([done, ongoing], since=T0, now=T0 + DAY, sent_until=sent)
    assert [(r.visit.id, r.start_interval * 600 - T0, r.period) for r in again] == [(2, 10800, 6)]
    assert reports_to_upload([done], since=T0, now=T0 + DAY, sent_until={2: T0 + DAY}) != []  # another visit's record


def test_a_store_upgraded_from_schema_7_knows_its_last_upload_by_the_times_it_sent(tmp_path) -> None:
    """A schema-7 store kept no record of the reports it uploaded, only its last upload's server and time
    (the revision token).  After the upgrade a warning with exactly the times that upload sent of one of its
    visits is its own (set aside, 'recorded' False); other times at the same café, or a visit begun after
    that upload, still warn.  A store that recorded its uploads infers nothing."""
    import sqlite_utils

    from bluezone.proximity.store import schema as store_module
    from bluezone.proximity.store import SightingStore
    from bluezone.venues.checkins import visits
    from bluezone.venues.matching import set_aside_own

    server, uploaded_at = "https://keys.example", T0 + DAY + 4000
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    for migration in store_module.MIGRATIONS[:7]:
        migration(old)
    old.execute("PRAGMA user_version = 7")
    rows = [  # sent whole; under way at the upload (cut there); begun after it
        (CAFE, T0 + 3600, T0 + 7200), (SHOP, T0 + DAY + 1800, T0 + DAY + 9000), (CAFE, T0 + DAY + 5000, T0 + DAY + 8600),
    ]
    for venue, start, end in rows:
        old.execute(
            "INSERT INTO checkins (location_id, payload, description, address, start_time, end_time, checked_out,"
            " source, created_at) VALUES (?, ?, ?, ?, ?, ?, 1, 'url', ?)",
            [venue.location_id, venue.payload, venue.description, venue.address, start, end, start],
        )
    old.execute("INSERT INTO keyserver_revision_tokens (server, token, saved_at) VALUES (?, 't', ?)", [server, uploaded_at])
    old.conn.commit()
    old.close()
    with SightingStore.open(path) as store:
        cafe, shop, later = visits(store)
        unrecorded = store.checkin_uploads_unrecorded(server)
        assert unrecorded == {cafe.id: uploaded_at, shop.id: uploaded_at} and store.checkin_uploads_unrecorded("x") == {}
        uploaded = store.checkin_uploads()
    mine = [r.report for r in reports_to_upload([cafe, shop], since=T0, now=uploaded_at)]
    assert [r.period for r in reports_to_upload([shop], since=T0, now=uploaded_at)] == [4]  # cut at the upload
    others_times = reports_to_upload([visit(CAFE, T0 + 4200, T0 + 7200, vid=9)], since=T0, now=T0 + DAY)[0].report
    after = reports_to_upload([visit(CAFE, T0 + DAY + 5000, T0 + DAY + 8600, vid=9)], since=T0, now=T0 + 2 * DAY)[0].report
    others, own = set_aside_own([*mine, others_times, after], [cafe, shop, later], uploaded, unrecorded)
    assert others == [others_times, after]
    assert [(o.visit.id, o.uploaded_at, o.recorded) for o in own] == [(cafe.id, uploaded_at, False), (shop.id, uploaded_at, False)]
    assert own[0].as_dict()["recorded"] is False
    assert [e.visit.id for e in match_venue_reports([cafe, shop, later], others)] == [cafe.id, later.id]
    assert set_aside_own(mine, [cafe, shop], uploaded) == (mine, [])  # without the upgrade's inference: warned

    # a store that recorded an upload's reports (schema 8) infers nothing from its token
    path8 = tmp_path / "eight.db"
    with SightingStore.open(path8) as store:
        v = record_visit_at(store, CAFE, T0 + 3600, T0 + 7200)
        sent = reports_to_upload([v], since=T0, now=uploaded_at)
        from bluezone.venues.upload import remember_uploaded

        remember_uploaded(store, sent, server, uploaded_at)
        store.save_revision_token(server, "t", uploaded_at)
    eight = sqlite_utils.Database(path8)
    eight.execute("DROP TABLE venue_reports_told")
    eight.execute("DROP TABLE checkin_uploads_unrecorded")
    eight.execute("PRAGMA user_version = 8")
    eight.close()
    with SightingStore.open(path8) as store:
        assert store.schema_version == store_module.SCHEMA_VERSION and store.checkin_uploads_unrecorded(server) == {}


def record_visit_at(store, venue: Venue, start: float, end: float):
    from bluezone.venues.checkins import record_visit

    return record_visit(store, venue, start, end, now=end + 60)
