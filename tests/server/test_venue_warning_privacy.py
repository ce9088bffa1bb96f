"""A venue warning tells the visitor their own stay, its date and the minutes a case was there too, never when the
case came or went: in a small shop "a case 10:10-10:40" can name them (user31's walk; CWA shows a warned visitor
the check-in, its date and the risk, ``TraceLocationCheckInRisk``)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from server_helpers import NOW, URL, Server, make_nodes

from bluezone.checkreport import report_as_dict, report_lines
from bluezone.client.check import check_server
from bluezone.client.state import ServerState
from bluezone.client.uploading import plan_upload, upload_own_keys
from bluezone.proximity.store import SightingStore
from bluezone.venues.checkins import check_in, record_visit, visits
from bluezone.venues.location import Venue

SHOP = Venue.create("Tiệm may Lan", "3 Hàng Gai", "retail", 60, seed=bytes(range(32, 48)))


def _times(t: float) -> list[str]:
    """The ways a report could show the instant ``t`` (UTC, the zone this test sets)."""
    at = dt.datetime.fromtimestamp(t, dt.UTC)
    return [f"{at:%H:%M}", at.isoformat(timespec="seconds"), str(t), str(int(t))]


@pytest.mark.parametrize(
    ("stay", "shared"),
    [((NOW - 2400, NOW - 1200), 20), ((NOW - 5400, NOW + 1800), 60)],
    ids=["inside the case's hour", "around the case's hour"],
)
def test_the_cases_own_times_at_the_venue_appear_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stay: tuple[float, float], shared: int
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as store:  # the case: in the shop 11:00-12:00 UTC
        check_in(store, SHOP, NOW - 3600)
        plan = plan_upload(store, NOW, include_today=False, server=URL)
        upload_own_keys(store, server.client, server.code(test_type="confirmed"), NOW, include_today=False,
                        checkins=plan.checkins)
    server.clock.advance(60)  # (the files' names carry the export's time: not the case's end)
    server.export()
    visitor = tmp_path / "visitor.db"
    with SightingStore.open(visitor) as store:
        record_visit(store, SHOP, *stay, NOW + 3600)
    try:
        with SightingStore.open(visitor, create=False) as store:
            result = check_server(server.client, ServerState(store), now=NOW + 3600, load_visits=lambda: visits(store))
        text = "\n".join(report_lines(result, True, lambda day: False, visitor, URL))
        report = json.dumps(report_as_dict(result))
    finally:
        server.storage.close()
        monkeypatch.delenv("TZ")
        time.tzset()
    [line] = [line for line in text.splitlines() if "Tiệm may Lan" in line]
    mine = f"{dt.datetime.fromtimestamp(stay[0], dt.UTC):%H:%M}-{dt.datetime.fromtimestamp(stay[1], dt.UTC):%H:%M} UTC"
    assert f"you were there {mine}; a case was there too for {shared} min of it" in line, line
    case = [*_times(NOW - 3600), *_times(NOW)]  # when the case came and went
    assert [t for t in case if t in text or t in report] == [], report
    assert json.loads(report)["venue_exposures"][0]["overlap_minutes"] == shared
