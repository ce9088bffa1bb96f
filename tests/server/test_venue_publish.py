"""Check-ins on the key server: validated beside the keys on the same code, stored with fakes
in the same transaction, published in a signed venue file in the same index (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from server_helpers import CAFE, KEY, NOW, TODAY, checkin_entry, checkin_upload

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.errors import PublishError, VenueError
from bluezone.server.codes import issue_code
from bluezone.server.exports import INDEX_FILE, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.keyformat.venue_export import is_venue_file, open_signed_venue_zip


def test_checkins_published_with_fakes_in_a_signed_venue_file(storage, tmp_path) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    result = publish(storage, checkin_upload(code, [checkin_entry(TODAY - 1), checkin_entry(TODAY - 2)]), "c", NOW, PublishConfig(), code_key=KEY)
    assert result.inserted == 1 and result.checkins == 2 and result.as_dict()["insertedCheckIns"] == 2
    assert storage.count_venue_reports() == 2 * (1 + PublishConfig().venue_reports.fakes_per_report)
    signer = keygen(tmp_path / "signing")
    export_batches(storage, signer, tmp_path / "out", NOW + 3600)
    index = (tmp_path / "out" / INDEX_FILE).read_text().split()
    venue_files = [n for n in index if is_venue_file(n)]
    assert len(venue_files) == 2 and len(index) == 3  # one key batch, a venue file per day, one index
    reports = [
        r for n in venue_files for r in open_signed_venue_zip((tmp_path / "out" / n).read_bytes(), signer.public_key)
    ]
    assert len(reports) == 8
    opened = []
    for r in reports:
        try:
            opened.append(r.open(CAFE.location_id))
        except VenueError:  # a fake
            continue
    assert sorted(w.start_interval for w in opened) == [(TODAY - 2) * 144 + 60, (TODAY - 1) * 144 + 60]
    # exported once: the next run writes no new venue file
    export_batches(storage, signer, tmp_path / "out", NOW + 7200)
    assert [n for n in (tmp_path / "out" / INDEX_FILE).read_text().split() if is_venue_file(n)] == venue_files


def test_a_checkin_is_published_no_longer_than_14_days_after_its_day(storage, tmp_path) -> None:
    """One file held every day's check-ins and was listed (and kept on disk) 14 days after the export,
    so a check-in sent at the end of its 14 days was published 28 days after the visit, long after the
    database had deleted it.  Now files are cut per day, as key batches are, and leave with their day."""
    code = issue_code(storage, NOW, key=KEY).code
    publish(storage, checkin_upload(code, [checkin_entry(TODAY - 13), checkin_entry(TODAY - 1)], keys=False), "c", NOW, PublishConfig(), code_key=KEY)
    signer = keygen(tmp_path / "signing")
    out = tmp_path / "out"

    def published_days() -> list[int]:
        listed = (out / INDEX_FILE).read_text().split()
        assert sorted(p.name for p in out.glob("*.zip")) == sorted(listed)  # on disk as long as listed
        reports = [r for n in listed for r in open_signed_venue_zip((out / n).read_bytes(), signer.public_key)]
        return sorted(r.open(CAFE.location_id).start_interval // ROLLING_PERIOD for r in reports
                      if r.location_id_hash == CAFE.location_id_hash)

    export_batches(storage, signer, out, NOW + 60)
    assert published_days() == [TODAY - 13, TODAY - 1]
    export_batches(storage, signer, out, NOW + 60 + 2 * DAY_SECONDS)  # day TODAY - 13 ended 14 days ago
    assert published_days() == [TODAY - 1]
    export_batches(storage, signer, out, NOW + 60 + 14 * DAY_SECONDS)
    assert published_days() == []


def test_two_exports_at_once_publish_each_checkin_once(storage, tmp_path, monkeypatch) -> None:
    """The scheduled export of ``server run`` and an operator's ``server export`` at the same moment:
    both read the check-ins not yet published and both recorded their file, so each check-in went out
    twice.  The second to record now records nothing and removes its file, as for keys."""
    import numpy as np

    from bluezone.errors import ServerStorageError
    from bluezone.server.exports import ExportConfig, export_venue_reports, write_index

    code = issue_code(storage, NOW, key=KEY).code
    publish(storage, checkin_upload(code, [checkin_entry(TODAY - 1)], keys=False), "c", NOW, PublishConfig(), code_key=KEY)
    signer = keygen(tmp_path / "signing")
    out = tmp_path / "out"
    out.mkdir()
    record = storage.add_venue_batch

    def after_the_other_export(*args):  # the other exporter read, wrote and recorded in the meantime
        monkeypatch.setattr(storage, "add_venue_batch", record)
        export_venue_reports(storage, signer, out, NOW + 61, ExportConfig(), np.random.default_rng(1))
        return record(*args)

    monkeypatch.setattr(storage, "add_venue_batch", after_the_other_export)
    with pytest.raises(ServerStorageError, match="another export"):
        export_venue_reports(storage, signer, out, NOW + 60, ExportConfig(), np.random.default_rng(0))
    listed = write_index(storage, out, NOW + 120)
    assert sorted(p.name for p in out.glob("*.zip")) == listed and len(listed) == 1
    assert len(open_signed_venue_zip((out / listed[0]).read_bytes(), signer.public_key)) == 4  # 1 real, 3 fakes


def test_fakes_are_stored_mixed_in_not_after_the_real_reports() -> None:
    """Stored in the order ``with_fakes`` gives, real reports first then the fakes let anyone who
    reads the server's database (ids ascending) pick out the real ones; the docs promise that
    even the server cannot tell them apart later."""
    import random

    from bluezone.server.venue_reports import VenueReportLimits, with_fakes

    real = [(TODAY - 1, b"real-1"), (TODAY - 2, b"real-2"), (TODAY - 2, b"real-3")]
    firsts = set()
    for seed in range(5):
        stored = with_fakes(real, VenueReportLimits(), rng=random.Random(seed))
        assert len(stored) == 12 and sorted(d for d, r in stored if r.startswith(b"real")) == sorted(d for d, _ in real)
        assert sorted(d for d, _ in stored) == sorted([d for d, _ in real] * 4)  # each fake on its real one's day
        firsts.add(tuple(i for i, (_, r) in enumerate(stored) if r.startswith(b"real")))
    assert firsts != {(0, 1, 2)} and len(firsts) > 1


def test_published_files_are_deleted_after_the_retention(storage, tmp_path) -> None:
    """Check-ins (and keys) leave the index and the database after 14 days; their signed files went
    on lying in the export directory, served to anyone who asked for them by name, for good."""
    code = issue_code(storage, NOW, key=KEY).code
    publish(storage, checkin_upload(code, [checkin_entry(TODAY - 1)]), "c", NOW, PublishConfig(), code_key=KEY)
    signer = keygen(tmp_path / "signing")
    out = tmp_path / "out"
    export_batches(storage, signer, out, NOW + 3600)
    published = sorted(p.name for p in out.glob("*.zip"))
    assert len(published) == 2 and any(is_venue_file(n) for n in published)
    export_batches(storage, signer, out, NOW + 3600 + 13 * 86400)
    kept = sorted(p.name for p in out.glob("*.zip"))  # still within the 14 days (rolled up: one export day's files)
    assert len(kept) == 2 and kept == sorted((out / INDEX_FILE).read_text().split()) and any(is_venue_file(n) for n in kept)
    export_batches(storage, signer, out, NOW + 3600 + 16 * 86400)
    assert list(out.glob("*.zip")) == [] and (out / INDEX_FILE).read_text() == ""
    assert storage.count_venue_reports() == 0


def test_a_venue_owner_warns_with_checkins_only(storage) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    result = publish(storage, checkin_upload(code, [checkin_entry(TODAY)], keys=False), "c", NOW, PublishConfig(), code_key=KEY)
    assert result.inserted == 0 and result.checkins == 1


@pytest.mark.parametrize(
    "checkins, reason",
    [
        ([checkin_entry(TODAY + 1)], "checkin_timing_invalid"),
        ([checkin_entry(TODAY - 20)], "checkin_timing_invalid"),
        ([checkin_entry(TODAY - 1)] * 13, "checkin_timing_invalid"),
        ([checkin_entry(TODAY - i // 12) for i in range(17 * 12 + 1)], "checkin_invalid"),
        ([{"day": TODAY, "report": "not base64!"}], "checkin_invalid"),
        ([{"day": TODAY, "report": base64.b64encode(b"\x0a\x01\x00").decode()}], "checkin_invalid"),
        ([{"day": "today", "report": checkin_entry(TODAY)["report"]}], "checkin_invalid"),
        ("all of them", "checkin_invalid"),
    ],
)
def test_bad_checkins_are_400_and_store_nothing(storage, checkins, reason) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    with pytest.raises(PublishError) as info:
        publish(storage, checkin_upload(code, checkins), "c", NOW, PublishConfig(), code_key=KEY)
    assert info.value.status == 400 and info.value.code == reason
    assert "\n" not in str(info.value)
    assert storage.count_venue_reports() == 0 and storage.count_keys() == 0
    # the code was not burned: a good upload goes through
    assert publish(storage, checkin_upload(code, [checkin_entry(TODAY)]), "c", NOW, PublishConfig(), code_key=KEY).checkins == 1


def test_ten_thousand_checkins_are_refused_whole(storage) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    with pytest.raises(PublishError) as info:
        publish(storage, checkin_upload(code, [checkin_entry(TODAY)] * 10_000), "c", NOW, PublishConfig(), code_key=KEY)
    # refused unread (413: counting them would mean reading ~1.7 MB), saying what fits
    assert (info.value.status, info.value.code) == (413, "request_too_large")
    assert "204 check-ins, 12 a day" in str(info.value)
    assert storage.count_venue_reports() == 0 and storage.count_keys() == 0


@pytest.mark.parametrize(
    "report, message",
    [
        ("not base64!", "checkInProtectedReports[0]: 'report' is not base64"),
        (base64.b64encode(b"\0\0\0").decode(), "checkInProtectedReports[0]: not a CheckInProtectedReport (Error parsing"),
        (base64.b64encode(b"\x0a\x01\x00").decode(), "checkInProtectedReports[0]: a venue report's location hash has 1"),
    ],
)
def test_a_bad_report_says_once_what_is_wrong(storage, report: str, message: str) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    with pytest.raises(PublishError) as info:
        publish(storage, checkin_upload(code, [{"day": TODAY, "report": report}]), "c", NOW, PublishConfig(), code_key=KEY)
    assert str(info.value).startswith(message)


def test_a_close_contacts_code_publishes_no_checkins(storage) -> None:
    """An F1 (recursive code) is no case: its check-ins published as warnings told everyone who
    shared the room that a case had been there."""
    import datetime as dt

    exposed = dt.date(1970, 1, 1) + dt.timedelta(days=TODAY - 3)
    code = issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=exposed).code
    result = publish(storage, checkin_upload(code, [checkin_entry(TODAY - 1)]), "c", NOW, PublishConfig(), code_key=KEY)
    assert result.inserted == 1 and result.checkins == 0 and storage.count_venue_reports() == 0


def test_a_negative_test_publishes_no_checkins(storage) -> None:
    code = issue_code(storage, NOW, key=KEY, test_type="negative").code
    result = publish(storage, checkin_upload(code, [checkin_entry(TODAY)]), "c", NOW, PublishConfig(), code_key=KEY)
    assert result.checkins == 0 and storage.count_venue_reports() == 0


@pytest.mark.parametrize("test_type", ["negative", "recursive"])
def test_checkins_alone_under_a_code_that_publishes_none_are_refused_and_the_code_kept(storage, test_type) -> None:
    """A venue owner's `venue warn` (check-ins, no keys) on a negative test's or a close contact's code:
    the server took it, used the code up, stored nothing and answered "0 check-ins", and the owner read
    "warning sent ... visitors learn of it at their next check" (walk12, on a live server). Now 400,
    nothing stored, and the code still works for what it is for."""
    import datetime as dt

    exposed = dt.date(1970, 1, 1) + dt.timedelta(days=TODAY - 3)
    extra = {"exposure_date": exposed} if test_type == "recursive" else {}
    code = issue_code(storage, NOW, key=KEY, test_type=test_type, **extra).code
    with pytest.raises(PublishError, match="publishes no check-ins") as refused:
        publish(storage, checkin_upload(code, [checkin_entry(TODAY - 1)], keys=False), "c", NOW, PublishConfig(), code_key=KEY)
    assert refused.value.status == 400 and refused.value.code == "checkin_code_type_invalid"
    assert storage.count_venue_reports() == 0
    result = publish(storage, checkin_upload(code, [checkin_entry(TODAY - 1)]), "c", NOW + 60, PublishConfig(), code_key=KEY)  # not used up
    assert result.checkins == 0 and storage.count_venue_reports() == 0


def test_an_upload_across_utc_midnight_is_taken(storage) -> None:
    """The device chose its keys and check-ins at 23:59:55 UTC (its 14 days before today); the
    server reads its clock at 00:00:05, when the oldest of those days is 15 days back.  That day
    is past publishing (its key is dropped, its check-ins never exported), but the upload stands:
    it was refused whole ('a key is older than 14 days') whenever it crossed midnight."""
    from bluezone.client.uploading import keys_to_upload
    from bluezone.crypto.keys import DailyKey
    from bluezone.keyformat.keyfile import publish_body

    midnight = (TODAY + 1) * DAY_SECONDS
    daily = [DailyKey(bytes([d + 1]) * 16, (TODAY - d) * ROLLING_PERIOD) for d in range(16, -1, -1)]
    keys = keys_to_upload(daily, midnight - 5, include_today=False)
    assert len(keys) == 14 and keys["rolling_start"][0] == (TODAY - 14) * ROLLING_PERIOD
    code = issue_code(storage, midnight - 5, key=KEY).code
    doc = publish_body(keys, code, checkins=[checkin_entry(TODAY - 14), checkin_entry(TODAY - 1)])
    result = publish(storage, json.dumps(doc).encode(), "c", midnight + 5, PublishConfig(), code_key=KEY)
    assert result.inserted == 13 and result.checkins == 2
    # a day older still is the device's mistake, not the midnight's: refused, the code not used
    older = keys_to_upload(daily, midnight - 5 - DAY_SECONDS, include_today=False)
    code = issue_code(storage, midnight - 5, key=KEY).code
    with pytest.raises(PublishError, match="older than 14 days"):
        publish(storage, json.dumps(publish_body(older, code)).encode(), "c", midnight + 5, PublishConfig(), code_key=KEY)
    with pytest.raises(PublishError, match="older than 14 days"):
        doc = publish_body(keys[1:], code, checkins=[checkin_entry(TODAY - 15)])
        publish(storage, json.dumps(doc).encode(), "c", midnight + 5, PublishConfig(), code_key=KEY)


def test_one_exports_venue_files_of_many_days_have_names_of_their_own(storage, tmp_path, monkeypatch) -> None:
    """Each day's files drew their own 3-byte tag and were numbered from 1 under the export's stamp:
    two days drawing the same tag wrote one name twice, the second file over the first."""
    import secrets as secrets_module

    monkeypatch.setattr(secrets_module, "token_hex", lambda n=None: "abcdef")  # every draw the same
    code = issue_code(storage, NOW, key=KEY).code
    publish(storage, checkin_upload(code, [checkin_entry(TODAY - d) for d in (1, 2, 3)], keys=False), "c", NOW, PublishConfig(), code_key=KEY)
    signer = keygen(tmp_path / "signing")
    out = tmp_path / "out"
    written = [r.name for r in export_batches(storage, signer, out, NOW + 60)]
    assert len(written) == 3 and len(set(written)) == 3 and sorted(p.name for p in out.glob("*.zip")) == sorted(written)


def test_twelve_checkins_on_every_day_taken_fit_one_upload(storage) -> None:
    """The total cap was 14 x 12 = 168 while the server takes 12 a day on 17 days (the day before the
    14, the 14, today, and tomorrow for a clock minutes ahead): 12 a day on the last 15 days was refused
    as "too many check-ins: 180, at most 168".  Now the total is every day's cap, and the largest upload
    the 413's message describes (30 keys, 204 check-ins, the longest padding, a token) fits the body limit."""
    from bluezone.keyformat.keyfile import publish_body
    from bluezone.keyformat.keys import empty_keys

    late = (TODAY + 1) * DAY_SECONDS - 300  # 23:55 UTC: tomorrow is a device's today minutes ahead
    days = range(TODAY - 15, TODAY + 2)
    checkins = [checkin_entry(day, day * ROLLING_PERIOD + 6 * i) for day in days for i in range(12)]
    code = issue_code(storage, late, key=KEY).code
    result = publish(storage, checkin_upload(code, checkins), "c", late, PublishConfig(), code_key=KEY)
    assert result.checkins == 17 * 12 == PublishConfig().venue_reports.max_reports
    code = issue_code(storage, late, key=KEY).code
    with pytest.raises(PublishError, match="too many check-ins: 205, at most 204"):
        publish(storage, checkin_upload(code, checkins + [checkin_entry(TODAY)]), "c", late, PublishConfig(), code_key=KEY)
    keys = empty_keys(30)
    keys["rolling_start"] = rolling_start(late) - 15 * ROLLING_PERIOD + 72 * np.arange(30)
    keys["rolling_period"] = 72
    largest = json.dumps(publish_body(keys, "1" * 16, 2**31 - 1, "t" * 43, checkins)).encode()
    assert len(largest) + 4 * 576 // 3 < PublishConfig().max_body_bytes  # padding of up to 575 bytes, in base64


def test_one_exports_check_in_files_are_not_numbered_in_day_order(storage, tmp_path) -> None:
    """An export's check-in files are numbered across the days of their check-ins; numbered in day order
    (as they were), the numbers ranked the days a name otherwise does not say.  Now the days come in
    random order, as in roll-ups (one copy of the cutting for both)."""
    from bluezone.server.exports import ExportConfig, export_venue_reports

    code = issue_code(storage, NOW, key=KEY).code
    publish(storage, checkin_upload(code, [checkin_entry(TODAY - d) for d in range(1, 9)], keys=False), "c", NOW, PublishConfig(), code_key=KEY)
    signer = keygen(tmp_path / "signing")
    out = tmp_path / "out"
    out.mkdir()
    files = export_venue_reports(storage, signer, out, NOW + 60, ExportConfig(), np.random.default_rng(5))
    days = [f.start_timestamp for f in sorted(files, key=lambda f: f.name)]
    assert len(days) == 8 and sorted(days) == [(TODAY - d) * DAY_SECONDS for d in range(8, 0, -1)]
    assert days != sorted(days)  # (8! orders: a seed giving day order would be one in 40,320)
