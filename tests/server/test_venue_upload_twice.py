"""A case who uploads twice while still at a venue, and a visitor who checks between the uploads.

An upload sends a visit once (194d173): at the first (a likely code) the visit under way goes up to then,
at the second (the confirmed code) only what it grew by.  A visitor whose stay with the case spans the
first upload's time meets the two parts in two files; one who checks between the two uploads reads them
in two checks.  Either way it was one stay together with one case, 20 minutes here, not two of 10.
"""

from __future__ import annotations

from pathlib import Path

from server_helpers import NOW, URL, Server, make_nodes

from bluezone.client.check import check_server
from bluezone.client.state import ServerState
from bluezone.client.uploading import plan_upload, upload_own_keys
from bluezone.proximity.store import SightingStore
from bluezone.venues.checkins import check_in, record_visit, visits
from bluezone.venues.location import Venue

BAR = Venue.create("Bia Hơi", "Tạ Hiện", "food-service", 180, seed=bytes(range(16, 32)))


def _upload(server: Server, f0: Path, test_type: str) -> int:
    now = server.clock.now()
    with SightingStore.open(f0, create=False) as store:
        plan = plan_upload(store, now, include_today=False, server=URL)
        sent = upload_own_keys(store, server.client, server.code(test_type=test_type), now, include_today=False,
                               checkins=plan.checkins)
    server.export()
    return len(sent.checkins)


def _check(server: Server, visitor: Path) -> list[dict]:
    with SightingStore.open(visitor, create=False) as store:
        result = check_server(server.client, ServerState(store), now=server.clock.now(), load_visits=lambda: visits(store))
    return [e.as_dict() for e in result.venue_exposures]


def test_a_visitor_who_checked_between_the_two_uploads_is_told_the_whole_stay(tmp_path: Path) -> None:
    """The case checked in at 11:00 and uploads at 12:00 (11:00-12:00) and 13:00 (12:00-13:00); the visitor
    was there 11:50-12:10 and checks after each upload.  The second check told '10 minutes' again, the
    first part being in a file it had read: the 20 minutes, 'fifteen_minutes_or_more', were never told."""
    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as store:
        check_in(store, BAR, NOW - 3600)
    visitor = tmp_path / "visitor.db"
    with SightingStore.open(visitor) as store:
        record_visit(store, BAR, NOW - 600, NOW + 600, NOW + 3600)
    try:
        assert _upload(server, nodes["a"], "likely") == 1
        [first] = _check(server, visitor)
        assert first["overlap_minutes"] == 10 and first["fifteen_minutes_or_more"] is False
        server.clock.advance(3600)
        assert _upload(server, nodes["a"], "confirmed") == 1  # only 12:00-13:00
        [second] = _check(server, visitor)
        assert second["overlap_minutes"] == 20 and second["fifteen_minutes_or_more"] is True  # was 10, False
        assert (second["overlap_start"], second["overlap_end"]) == (first["overlap_start"], second["overlap_end"])
        assert second["case_visit"]["start"] == first["case_visit"]["start"] and second["cases"] == 1
    finally:
        server.storage.close()
