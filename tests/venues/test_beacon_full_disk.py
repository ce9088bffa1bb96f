"""A venue beacon heard while the store refuses writes (a full disk, a lock held past the busy timeout): the check-in
its dwell earns, and the check-out its silence earns, wait and are written once the store takes writes, as the
daemon's sightings do; the daemon keeps running.
Before, the listener's failed write ended the daemon ("cannot write to ... now: database or disk is full", exit 1):
a full disk near a venue beacon stopped every sighting too."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bluezone.clock import VirtualClock
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.broadcast import run_beacon
from bluezone.venues.checkins import visits
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

from tests.proximity.full_disk_helpers import fill, make_room
from tests.venues.venue_helpers import CLINIC

T0 = 1_796_400_000.0
BEACON_SECONDS = 600.0


def _checkins_in_file(path: Path) -> list[tuple[float, float, int]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT start_time, end_time, checked_out FROM checkins WHERE end_time IS NOT NULL").fetchall()
    conn.close()
    return rows


def test_check_in_and_out_wait_for_the_store_and_the_daemon_runs_on(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    clock = VirtualClock(T0)
    air = Air(clock, 1)
    store = SightingStore.open(path, purge_now=T0)
    listener = BeaconCheckIns(store)
    daemon = Daemon(air.radio("visitor", (3.0, 0.0)), store, clock, listeners=[listener])
    seen: dict[str, list[tuple[float, float, int]]] = {}

    async def disk() -> None:
        async def at(t: float) -> None:
            await asyncio.sleep(t - (clock.now() - T0))

        await at(100)
        fill(store)  # before the 300 s dwell ends
        await at(390)
        seen["full at check-in"] = _checkins_in_file(path)
        make_room(store)
        await at(420)
        seen["room again"] = _checkins_in_file(path)
        await at(650)  # the beacon fell silent at 600: the check-out is due 180 s later, and another writer holds
        other = sqlite3.connect(path, isolation_level=None)  # the store's lock past its busy timeout (0 s here)
        other.execute("BEGIN IMMEDIATE")
        store.db.conn.execute("PRAGMA busy_timeout = 0")
        await at(890)
        seen["refused at check-out"] = _checkins_in_file(path)
        other.rollback()
        other.close()
        await at(920)
        seen["room at last"] = _checkins_in_file(path)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_beacon(air.radio("cafe", (0.0, 0.0), beacon.SERVICE_UUID), VenueSecrets(CLINIC, bytes(32)),
                                      clock, BEACON_SECONDS))
            tg.create_task(daemon.run(1000))
            tg.create_task(disk())

    clock.run(main())  # (no error: the daemon ran its 1000 s)
    assert seen["full at check-in"] == []
    [(start, end, out)] = seen["room again"]  # the dwell's check-in, from the first frame heard
    assert T0 <= start <= T0 + 60 and out == 0
    assert seen["refused at check-out"] == seen["room again"]
    [(start_after, end, out)] = seen["room at last"]  # checked out at the last frame heard, not when the disk had room
    assert start_after == start and out == 1 and T0 + BEACON_SECONDS - 10 <= end <= T0 + BEACON_SECONDS
    assert listener.checkins == 1 and listener.checkouts == 1
    [visit] = visits(store)
    assert visit.source == "beacon"
    store.close()


def test_a_clock_stepped_back_while_writes_wait_does_not_hold_them_until_it_catches_up(tmp_path: Path) -> None:
    """The store refused the dwell's check-in (a full disk), then the daemon's clock stepped back an hour: the next try
    was due on the old clock, so a visitor who stayed was checked in an hour late (or not at all) once the store took
    writes again.  A try due further off than ``RETRY_SECONDS`` is due now, as the daemon's backoff (backlog.py)."""
    from bluezone.proximity.radio import Advert

    store = SightingStore.open(tmp_path / "me.db", purge_now=T0)
    listener = BeaconCheckIns(store)
    secrets = VenueSecrets(CLINIC, bytes(32))

    def hear(start: float, seconds: int) -> None:
        for i in range(seconds):
            t = start + i
            frames = beacon.frames(CLINIC.payload, secrets.beacon_key, beacon.epoch_of(t))
            listener.on_advert(Advert(t, frames[int(t) % len(frames)], -70, beacon.SERVICE_UUID))

    fill(store)
    hear(T0, 6 * 60)  # the dwell is over at 300 s: the check-in is refused and waits
    assert visits(store) == [] and listener.checkins == 0
    make_room(store)
    back = T0 + 6 * 60 - 3600  # the clock steps back an hour; the visitor stays
    hear(back, 7 * 60)
    [visit] = visits(store)
    assert back <= visit.start <= back + 60 and listener.checkins == 1
