"""A second ``check --server`` with no new batches says so and repeats the exposures still in force
(it printed "0 exposure(s) ... from 0 diagnosis keys", read as all-clear right after an F1) (issue 14, item 9)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from server_helpers import NOW, make_nodes, published_f0_keys
from starlette.testclient import TestClient

from bluezone.client.check import ServerCheckResult, check_server
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.state import ServerState
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.matching.check import sightings_span
from bluezone.proximity.store import SightingStore
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.signing import keygen
from bluezone.server.storage import SQLiteStorage

URL = "http://keys.test"


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    storage, _, client, nodes = published_f0_keys(tmp_path)
    yield client, nodes["b"]
    storage.close()


def check(client: KeyServerClient, db: Path, now: float):  # type: ignore[no-untyped-def]
    with SightingStore.open(db, create=False, purge_now=now) as store:
        return check_server(client, ServerState(store), store.sightings, now=now)


def test_the_exposure_is_repeated_while_in_force(world) -> None:  # type: ignore[no-untyped-def]
    client, db = world
    first = check(client, db, NOW)
    assert first.new_batches >= 1 and [e.level for e in first.exposures] == ["F1"] and first.earlier == []
    again = check(client, db, NOW + 3600)
    assert again.new_batches == 0 and again.exposures == []
    assert [(d["level"], d["date"]) for d in again.earlier] == [("F1", first.exposures[0].date)]
    assert again.as_dict()["earlier_exposures"] == again.earlier and again.as_dict()["new_batches"] == 0
    later = check(client, db, first.exposures[0].end + 14 * DAY_SECONDS + 60)  # past the retention: gone
    assert later.earlier == []


def test_the_second_check_says_no_new_batches_not_zero_exposures(world) -> None:  # type: ignore[no-untyped-def]
    from bluezone.matching.cli import _print_check

    client, db = world
    check(client, db, NOW)
    again = check(client, db, NOW + 3600)

    @click.command()
    def show() -> None:
        _print_check(again, gaen=True)

    out = CliRunner().invoke(show).output
    assert "no new batches since the last check" in out and "0 exposure(s)" not in out
    assert "F1  (reported by an earlier check)" in out
    assert "1 exposure(s) reported before still in force (14 days), 1 close contact(s)" in out


def test_close_contact_says_now_and_new_says_since_the_last_check(world) -> None:  # type: ignore[no-untyped-def]
    """``close_contact`` is whether the reader is a close contact now (a close exposure within 14 days, an
    earlier check's too), ``new_close_contact`` whether this check told it first; the text says both.  A repeat
    check right after an F1 said ``close_contact: false`` (it counted this check's new exposures only)."""
    from bluezone.matching.cli import _print_check

    client, db = world
    first = check(client, db, NOW).as_dict()
    assert (first["close_contact"], first["new_close_contact"], first["new_to_act_on"]) == (True, True, True)
    again = check(client, db, NOW + 3600)
    assert (again.as_dict()["close_contact"], again.as_dict()["new_close_contact"]) == (True, False)
    assert again.as_dict()["new_to_act_on"] is False  # told already: nothing for a daily cron job to mail

    @click.command()
    def show() -> None:
        _print_check(again, gaen=True, db_path=db)

    out = CliRunner().invoke(show).output.splitlines()
    assert out[-2] == ("Close contact now: yes, F1 (within the last 14 days); new since the last check: nothing new"
                       " (told by an earlier check)")
    assert out[-1].startswith("What now: you were near someone who tested positive")
    later = check(client, db, NOW + 15 * DAY_SECONDS)  # the exposure past the retention: no close contact now
    assert (later.as_dict()["close_contact"], later.as_dict()["new_close_contact"]) == (False, False)
    assert later.as_dict()["new_to_act_on"] is False


def test_new_to_act_on_counts_a_close_contacts_warning_withdrawn_not_a_brief_exposures() -> None:
    """A negative test withdrawing an F1 or F2 warning changes what the person does (the advice for close contacts
    no longer holds); one withdrawing a 3-minute exposure reported as not close changes nothing."""
    from bluezone.matching.check import Exposure
    from bluezone.matching.scoring import Score

    def exposure(minutes: float, close: bool, earlier_level: str | None) -> Exposure:
        score = Score("bluezone", {}, minutes, minutes, 50, 52.0, "< 1.5 m", close)
        return Exposure("2026-12-06", NOW, NOW + minutes * 60, 9, 0, 0, False, score, earlier_level=earlier_level)

    assert ServerCheckResult().as_dict()["new_to_act_on"] is False
    for level in ("F1", "F2"):
        assert ServerCheckResult(withdrawn=[exposure(30, True, level)]).as_dict()["new_to_act_on"] is True
    assert ServerCheckResult(withdrawn=[exposure(3, False, None)]).as_dict()["new_to_act_on"] is False
    assert ServerCheckResult(exposures=[exposure(3, False, None)]).as_dict()["new_to_act_on"] is False  # too brief
    # a likely case confirmed: the F1 was told as F1 already; an F2 upgraded to F1 is news
    assert ServerCheckResult(updated=[exposure(30, True, "F1")]).as_dict()["new_to_act_on"] is False
    assert ServerCheckResult(updated=[exposure(30, True, "F2")]).as_dict()["new_to_act_on"] is True


def test_what_checks_reported_is_purged_with_the_retention(world) -> None:  # type: ignore[no-untyped-def]
    client, db = world
    first = check(client, db, NOW)
    with SightingStore.open(db, create=False) as store:
        assert store.reported_exposures(URL, NOW)
        store.purge(first.exposures[0].end + 15 * DAY_SECONDS)
        n = store.db.conn.execute("SELECT COUNT(*) FROM keyserver_exposures").fetchone()[0]
    assert n == 0


def test_check_server_reads_whole_days_for_the_receivers_day_reference(world) -> None:  # type: ignore[no-untyped-def]
    # The day reference of the receiver's self-calibration is taken from all it stored that day: a
    # check that read only its new batches' span (validity +- 2 h) judged with part of a day.
    client, db = world
    asked: list[tuple[float, float]] = []
    with SightingStore.open(db, create=False, purge_now=NOW) as store:
        def load(since: float, until: float):  # type: ignore[no-untyped-def]
            asked.append((since, until))
            return store.sightings(since, until)

        result = check_server(client, ServerState(store), load, now=NOW)
        in_span = len(store.sightings(*sightings_span(result.keys)))
    assert asked and all(since % DAY_SECONDS == 0 and until % DAY_SECONDS == 0 for since, until in asked)
    assert result.sightings == in_span  # still what the keys could match
    assert [e.level for e in result.exposures] == ["F1"]


def test_a_first_check_of_an_empty_server_does_not_speak_of_a_last_check(tmp_path: Path) -> None:
    """A device's very first check, before the server published anything, said 'no new batches
    since the last check' (there was none); it says the server has published nothing yet."""
    from bluezone.matching.cli import _print_check

    storage = SQLiteStorage(tmp_path / "server.db")
    signer = keygen(tmp_path / "signing")
    app = create_app(storage, code_key=CodeKey.load(tmp_path / "signing"), export_dir=tmp_path / "exports",
                     signer=signer, clock=VirtualClock(NOW))
    client = KeyServerClient(URL, http=TestClient(app, base_url=URL))
    _, nodes = make_nodes(tmp_path)
    first = check(client, nodes["b"], NOW)
    again = check(client, nodes["b"], NOW + 60)
    storage.close()
    assert first.nothing_before and first.new_batches == 0 and again.nothing_before

    def shown(result) -> str:  # type: ignore[no-untyped-def]
        @click.command()
        def show() -> None:
            _print_check(result, gaen=True)

        return CliRunner().invoke(show).output

    for result in (first, again):
        assert "the server lists no batches: it published none in the last 14 days" in shown(result)
        assert "last check" not in shown(result)


def test_check_server_reading_the_store_reports_what_matching_in_memory_reports(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # None: the store is read as check_store reads it (distinct RPIs, matched rows, the receiver
    # context where asked), as `bluezone check --server` does; a loader: sightings matched in memory.
    client, db = world
    copy = tmp_path / "copy.db"
    with SightingStore.open(db, create=False, purge_now=NOW) as store:
        store.db.conn.execute("VACUUM INTO ?", (str(copy),))
        in_memory = check_server(client, ServerState(store), store.sightings, now=NOW)
    with SightingStore.open(copy, create=False, purge_now=NOW) as store:
        from_store = check_server(client, ServerState(store), None, now=NOW)
    assert from_store.sightings == in_memory.sightings > 0
    assert from_store.exposures == in_memory.exposures and [e.level for e in from_store.exposures] == ["F1"]



def _shown(result) -> str:  # type: ignore[no-untyped-def]
    from bluezone.matching.cli import _print_check

    @click.command()
    def show() -> None:
        _print_check(result, gaen=True)

    return CliRunner().invoke(show).output


def test_back_after_16_days_to_an_empty_index_says_what_is_true(tmp_path: Path) -> None:
    """A node that checked, then was away more than 16 days (its processed names forgotten) while
    nobody uploaded, met an empty index and said 'the server has published no batches yet': the
    server had, and this node had matched them.  True in both cases: nothing listed, none in 14 days."""
    storage, signer, client, nodes = published_f0_keys(tmp_path)
    assert check(client, nodes["b"], NOW).new_batches > 0
    back = NOW + 17 * DAY_SECONDS
    export_batches(storage, signer, tmp_path / "exports", back, ExportConfig())  # the exporter rewrites the index
    assert client.index() == []
    result = check(client, nodes["b"], back)
    storage.close()
    assert result.new_batches == 0 and result.nothing_before  # the names this node had matched are forgotten
    assert _shown(result).splitlines()[0] == "the server lists no batches: it published none in the last 14 days"


def test_only_files_rejected_before_are_not_called_no_batches() -> None:
    """Nothing remembered as processed, but the index lists files an earlier check rejected: the
    server did publish (the rejection is reported after this line), so not 'lists no batches'."""

    result = ServerCheckResult(nothing_before=True, rejected_earlier=2, rejected={"a.zip": "x", "b.zip": "x"})
    assert _shown(result).splitlines()[0] == "no new batches since the last check"
    assert _shown(ServerCheckResult(nothing_before=True)).splitlines()[0] == (
        "the server lists no batches: it published none in the last 14 days"
    )


def test_the_summary_counts_keys_in_the_files_not_cases(world) -> None:  # type: ignore[no-untyped-def]
    """After one upload of 5 keys, `check --server` said "from 104 diagnosis keys": the server pads its
    files with fake keys a node cannot tell apart, and a person sends up to 14.  It now says what the node
    knows, keys in files, and --json counts the same keys."""
    from bluezone.matching.cli import _print_check

    client, db = world
    result = check(client, db, NOW)
    assert result.key_count >= 100 and len(result.batches) == 5  # 5 real keys, one file a day, padded

    @click.command()
    def show() -> None:
        _print_check(result, gaen=True)

    out = CliRunner().invoke(show).output
    assert (f"from {result.key_count} keys in 5 new file(s) (fake keys among them: not a count of cases)" in out
            and "diagnosis keys" not in out), out
    assert result.as_dict()["keys"] == result.key_count and len(result.as_dict()["batches"]) == 5


def test_a_check_that_brought_only_venue_warnings_says_no_new_key_file() -> None:
    """Walk15: a check whose only new file was a venue warning said 'from 0 keys in 0 new file(s) (fake
    keys among them: not a count of cases)' above the warning: fake keys among none."""
    assert ServerCheckResult(venue_files=["v.zip"], new_batches=1).keys_said() == "0 keys (no new key file)"
    assert ServerCheckResult(batches=["a.zip"], streamed_keys=573, new_batches=1).keys_said() == (
        "573 keys in 1 new file(s) (fake keys among them: not a count of cases)"
    )


#: The tables a store of a bluezone from before e055fb0 lacked (it made pins, batches, revision tokens and
#: warnings on first use, at schema 4), and the triggers of rpi_days (schema 13).
_NEWER_THAN_E055FB0 = ("keyserver_exposures", "keyserver_withdrawn", "keyserver_rejected", "keyserver_given_keys",
                       "checkin_uploads", "venue_reports_told", "checkin_uploads_unrecorded", "rpi_days")


def _as_before_exposures_were_remembered(db: Path) -> None:
    """``db`` as a bluezone from before e055fb0 left it after its check: the batches it processed on record,
    what it reported nowhere (it kept no exposure), schema 4."""
    with SightingStore.open(db, create=False, purge_now=NOW) as store:
        conn = store.db.conn
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        for table in _NEWER_THAN_E055FB0:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 4")


def test_an_f1_told_by_a_version_that_kept_no_exposure_is_told_again_after_the_upgrade(world) -> None:  # type: ignore[no-untyped-def]
    """The versions before e055fb0 remembered the batches a check processed but not what it reported: opened
    by this one, the F1 told then read as all-clear ('no new batches since the last check', close_contact
    false).  The upgrade forgets those batches, so the next check matches them again and says the F1."""
    client, db = world
    told = check(client, db, NOW)
    assert [e.level for e in told.exposures] == ["F1"]
    _as_before_exposures_were_remembered(db)
    upgraded = check(client, db, NOW + 3600)
    assert upgraded.new_batches == told.new_batches and [e.level for e in upgraded.exposures] == ["F1"]
    assert upgraded.as_dict()["close_contact"] is True
    again = check(client, db, NOW + 7200)  # and from then on, remembered as any other
    assert again.new_batches == 0 and [d["level"] for d in again.earlier] == ["F1"]


def test_a_server_check_says_how_many_v3_sightings_it_left_unchecked(world) -> None:  # type: ignore[no-untyped-def]
    """A key server carries no Bluezone v3 F0 list: its check said nothing of the v3 phones the store heard (user31's
    walk), so the report counts them, in the check's own open of the store, and says how to check them."""
    import numpy as np

    from bluezone.checkreport import report_lines
    from bluezone.client.check import check_with_server
    from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE

    client, db = world
    v3 = np.zeros(7_658, BLUEZONE3_SIGHTING_DTYPE)
    v3["time"], v3["bzid"], v3["rssi"] = NOW - 3600 - np.arange(len(v3)), b"\x03" * 12, -70
    with SightingStore.open(db, create=False) as store:
        store.add_bluezone3_sightings(v3)
    result = check_with_server(URL, db, now=NOW, http=client._http)
    assert result.as_dict()["bluezone3_sightings_not_checked"] == 7_658
    lines = list(report_lines(result, True, lambda day: False, db, URL))
    at = next(i for i, line in enumerate(lines) if line.startswith("1 exposure(s), 1 close contact(s) (F1) from "))
    assert lines[at + 1].startswith(
        "7,658 Bluezone v3 sightings of the last 14 days not checked: "
    )
