"""The visitor's check-ins never overlap, however they were made (QR code, beacon, past visit)."""

from __future__ import annotations

from pathlib import Path

from bluezone.proximity.store import SightingStore
from bluezone.venues.checkins import check_in, check_out, visits
from bluezone.venues.location import Venue

T = 1_800_000_000.0


def test_a_beacon_checkin_does_not_date_back_into_a_visit_that_ended(tmp_path: Path) -> None:
    """The beacon listener checks in from the first frame heard, minutes ago; a visit that ended in
    those minutes (checked out at the café, the shop's beacon already heard at its door) keeps
    them, and the new one starts where it ended (both were sent and matched for those minutes)."""
    cafe, shop = Venue.create("Café", "1 Main St"), Venue.create("Shop", "3 Main St")
    with SightingStore.open(tmp_path / "v.db") as store:
        check_in(store, cafe, T)
        check_out(store, T + 600)
        check_in(store, shop, T + 900, source="beacon", start=T + 300)
        [(a_start, a_end), (b_start, b_end)] = [(v.start - T, v.end - T) for v in visits(store)]
    assert (a_start, a_end) == (0, 600)
    assert b_start == 600 and b_end > b_start


def test_a_beacon_checkin_after_an_open_one_ends_it_where_the_new_one_starts(tmp_path: Path) -> None:
    cafe, shop = Venue.create("Café", "1 Main St"), Venue.create("Shop", "3 Main St")
    with SightingStore.open(tmp_path / "v.db") as store:
        check_in(store, cafe, T)
        result = check_in(store, shop, T + 800, source="beacon", start=T + 300)  # the café's stay: 15 min
        assert result.ended is not None and result.ended.end == T + 300
        assert result.visit.start == T + 300
