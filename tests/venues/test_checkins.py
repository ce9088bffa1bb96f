"""The visitor's check-ins never overlap, however they were made (QR code, beacon, past visit)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bluezone.errors import StoreError, VenueError
from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.checkins import check_in, check_in_by_beacon, check_out, end_beacon_checkin, open_visits, visits
from bluezone.venues.location import Venue
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

T = 1_800_000_000.0


def test_a_beacon_checkin_does_not_date_back_into_a_visit_that_ended(tmp_path: Path) -> None:
    """The beacon listener checks in from the first frame heard, minutes ago; a beacon's visit that ended
    in those minutes (the café's, the shop's beacon already heard at its door), or a visit at the same venue,
    keeps them, and the new one starts where it ended.  A typed visit elsewhere does not: both rooms."""
    cafe, shop, bar = Venue.create("Café", "1 Main St"), Venue.create("Shop", "3 Main St"), Venue.create("Bar", "5 Main St")
    with SightingStore.open(tmp_path / "v.db") as store:
        first = check_in_by_beacon(store, cafe, T + 300, start=T)
        assert first is not None and end_beacon_checkin(store, first.visit.id, T + 800, T + 600) is not None
        check_in_by_beacon(store, shop, T + 900, start=T + 300)
        check_in(store, bar, T + 1000)
        check_out(store, T + 1200)
        check_in_by_beacon(store, bar, T + 1300, start=T + 1100)  # the bar's beacon, heard since before the check-out
        assert [(v.description, v.start - T, v.end - T) for v in visits(store)] == [
            ("Café", 0, 600), ("Shop", 600, 1200), ("Bar", 1000, 1200), ("Bar", 1200, 1200 + 15 * 60)
        ]  # the shop's beacon visit, open beside the bar's, ended by the check-out too


def test_a_beacon_checkin_beside_a_typed_one_ends_neither(tmp_path: Path) -> None:
    """A beacon ends only what it started: checked in at the café by QR code, the shop's beacon checks in
    beside it (it ended the café's visit, where the visitor may well have been all along); a QR check-in
    elsewhere later ends the café's, not the beacon's."""
    cafe, shop, bar = Venue.create("Café", "1 Main St"), Venue.create("Shop", "3 Main St"), Venue.create("Bar", "5 Main St")
    with SightingStore.open(tmp_path / "v.db") as store:
        check_in(store, cafe, T)
        result = check_in_by_beacon(store, shop, T + 800, start=T + 300)
        assert result is not None and result.ended is None and result.visit.start == T + 300
        assert [v.description for v in open_visits(store, T + 800)] == ["Shop", "Café"]
        typed = check_in(store, bar, T + 850)
        assert typed.ended is not None and typed.ended.description == "Café" and typed.ended.end == T + 850
        assert [v.description for v in open_visits(store, T + 850)] == ["Bar", "Shop"]
        with pytest.raises(ValueError, match="not typed"):
            check_in(store, shop, T + 950, source="beacon")


def _another_process_checks_in_during_the_first_read(store: SightingStore, path: Path, venue: Venue) -> list[object]:
    """Arm ``store`` so that, just after its first read of the check-ins (the open one, at ``now``), another
    connection to the same file (another process: a typed ``bluezone checkin`` beside the daemon)
    checks in at ``venue`` at that ``now``.  That one runs in a thread: while this store holds the
    check-ins it waits (the busy timeout), so it is given a second and then left to finish after.
    Returns [its thread, then what it returned or raised]."""
    done: list[object] = []
    read = store.checkin_rows

    def typed(now: float) -> None:
        try:
            with SightingStore.open(path) as other:
                done.append(check_in(other, venue, now))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            done.append(exc)

    def first_read(**kwargs: object) -> object:
        rows = read(**kwargs)  # type: ignore[arg-type]
        if not done:
            done.append(threading.Thread(target=typed, args=(kwargs["open_at"],)))
            done[0].start()  # type: ignore[attr-defined]
            done[0].join(1.0)  # type: ignore[attr-defined]
        return rows

    store.checkin_rows = first_read  # type: ignore[method-assign]
    return done


def _joined(done: list[object]) -> None:
    done[0].join()  # type: ignore[attr-defined]
    assert len(done) == 2 and not isinstance(done[1], Exception), done


def _no_overlaps(store: SightingStore) -> list[tuple[str, float, float]]:
    seen = [(v.description, v.start, v.end) for v in visits(store)]
    for (_, _, a_end), (_, b_start, _) in zip(seen, seen[1:]):
        assert a_end <= b_start, seen
    return seen


def test_two_check_ins_at_the_same_moment_do_not_overlap(tmp_path: Path) -> None:
    """Two `bluezone checkin` at once (or one beside the daemon): each read 'checked in nowhere'
    before either wrote, and both were stored open, overlapping."""
    cafe, shop = Venue.create("Café", "1 Main St"), Venue.create("Shop", "3 Main St")
    path = tmp_path / "v.db"
    with SightingStore.open(path) as store:
        done = _another_process_checks_in_during_the_first_read(store, path, shop)
        check_in(store, cafe, T)
        _joined(done)
        assert [d for (d, _, _) in _no_overlaps(store)] == ["Café", "Shop"]  # the later one ended the first


def _cafe_beacon_heard(listener: BeaconCheckIns, secrets: VenueSecrets, seconds: int) -> None:
    for t in range(int(T), int(T) + seconds):  # the café's beacon, a frame a second, on the listener's timeline
        frames = beacon.frames(secrets.venue.payload, secrets.beacon_key, beacon.epoch_of(t))
        listener.on_advert(Advert(float(t), frames[t % len(frames)], -70, beacon.SERVICE_UUID))


@pytest.mark.parametrize("typed_at", ["Pharmacy", "Café"])
def test_a_beacon_and_a_check_in_typed_at_the_same_moment_see_each_other(tmp_path: Path, typed_at: str) -> None:
    """Two writers: the daemon's beacon listener reads the check-ins, and another process types a check-in
    at that moment (it waits for the listener's transaction, then reads what it wrote).  At the pharmacy:
    both stand, side by side, and the café's silence ends the café's alone.  At the café itself: one
    check-in there (the typed one is refused as 'already checked in'), never two."""
    cafe, pharmacy = Venue.create("Café", "1 Main St"), Venue.create("Pharmacy", "3 Main St")
    secrets = VenueSecrets(cafe, bytes(range(32)))
    path = tmp_path / "v.db"
    with SightingStore.open(path) as store:
        listener = BeaconCheckIns(store)
        listener.tick(T - 1)  # its first moment (it takes over the beacon check-ins open then: none), before the race
        done = _another_process_checks_in_during_the_first_read(store, path, pharmacy if typed_at == "Pharmacy" else cafe)
        _cafe_beacon_heard(listener, secrets, 10 * 60)
        done[0].join()  # type: ignore[attr-defined]
        listener.tick(T + 14 * 60)  # the café silent for 4 minutes
        found = [(v.description, v.source, v.checked_out) for v in visits(store)]
        if typed_at == "Pharmacy":
            assert not isinstance(done[1], Exception), done
            assert found == [("Café", "beacon", True), ("Pharmacy", "url", False)]
        else:
            assert isinstance(done[1], VenueError) and "already checked in at Café" in str(done[1])
            assert found == [("Café", "beacon", True)]
        assert listener.checkins == 1 and listener.checkouts == 1


def test_a_checkout_typed_while_the_beacon_checks_out_ends_each_once(tmp_path: Path) -> None:
    """Two writers again: the listener ends its café check-in (the beacon silent) while another process
    types `checkout`.  The typed one waits and ends what is still open (the QR check-in at the pharmacy);
    the café's ends at its last frame, as the listener read it."""
    cafe, pharmacy = Venue.create("Café", "1 Main St"), Venue.create("Pharmacy", "3 Main St", "retail", 60)
    secrets = VenueSecrets(cafe, bytes(range(32)))
    path = tmp_path / "v.db"
    with SightingStore.open(path) as store:
        check_in(store, pharmacy, T - 60)
        listener = BeaconCheckIns(store)
        _cafe_beacon_heard(listener, secrets, 10 * 60)
        done: list[object] = []
        read = store.checkin_rows

        def typed() -> None:
            with SightingStore.open(path) as other:
                done.append(check_out(other, T + 14 * 60))

        def first_read(**kwargs: object) -> object:
            rows = read(**kwargs)  # type: ignore[arg-type]
            if not done:
                done.append(threading.Thread(target=typed))
                done[0].start()  # type: ignore[attr-defined]
                done[0].join(1.0)  # type: ignore[attr-defined]
            return rows

        store.checkin_rows = first_read  # type: ignore[method-assign]
        listener.tick(T + 14 * 60)
        done[0].join()  # type: ignore[attr-defined]
        [typed_out] = done[1]  # type: ignore[misc]
        assert typed_out.description == "Pharmacy" and typed_out.end == T + 14 * 60
        cafe_visit, pharmacy_visit = sorted(visits(store), key=lambda v: v.description)
        assert cafe_visit.checked_out and cafe_visit.end == T + 10 * 60 - 1 and listener.checkouts == 1


def test_a_check_in_whose_write_fails_leaves_the_open_one_as_it_was(tmp_path: Path) -> None:
    """Ending the open check-in and writing the new one are one transaction (the first write kept
    alone would leave the visitor checked in nowhere)."""
    cafe, shop = Venue.create("Café", "1 Main St"), Venue.create("Shop", "3 Main St")
    path = tmp_path / "v.db"
    with SightingStore.open(path) as store:
        check_in(store, cafe, T)
        before = visits(store)
        with sqlite3.connect(path) as conn:  # the second write (the new row) fails
            conn.execute("CREATE TRIGGER no_room BEFORE INSERT ON checkins BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        with pytest.raises(StoreError, match="disk full"):
            check_in(store, shop, T + 60)
        assert visits(store) == before and not before[0].checked_out
