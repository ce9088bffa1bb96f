"""The visitor's check-ins never overlap, however they were made (QR code, beacon, past visit)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bluezone.errors import StoreError
from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.checkins import check_in, check_out, open_visit, visits
from bluezone.venues.location import Venue
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

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


def test_a_beacon_never_ends_a_check_in_typed_at_the_same_moment(tmp_path: Path) -> None:
    """The beacon listener read 'checked in nowhere', then a QR check-in at the pharmacy was typed,
    then the listener checked in at the café: that ended the pharmacy visit just made (a beacon must
    never end a check-in elsewhere)."""
    cafe, pharmacy = Venue.create("Café", "1 Main St"), Venue.create("Pharmacy", "3 Main St")
    secrets = VenueSecrets(cafe, bytes(range(32)))
    path = tmp_path / "v.db"
    with SightingStore.open(path) as store:
        listener = BeaconCheckIns(store)
        done = _another_process_checks_in_during_the_first_read(store, path, pharmacy)
        for t in range(int(T), int(T) + 10 * 60):  # the café's beacon heard for 10 minutes, a frame a second
            frames = beacon.frames(cafe.payload, secrets.beacon_key, beacon.epoch_of(t))
            listener.on_advert(Advert(float(t), frames[t % len(frames)], -70, beacon.SERVICE_UUID))
        _joined(done)
        current = open_visit(store, T + 10 * 60)
        assert current is not None and current.description == "Pharmacy" and not current.checked_out
        # the café's check-in was written first, then the typed one ended it (the visitor moved)
        assert listener.checkins == 1 and [d for (d, _, _) in _no_overlaps(store)] == ["Café", "Pharmacy"]


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
