"""A venue beacon heard while the daemon rewrites its store (the day's VACUUM, in a thread): the check-in its dwell
earns then waits for the rewrite's end, as the sightings do, instead of a write on the loop that waits for the
VACUUM's lock (the loop stopped again, the very thing the thread is for) or fails when the VACUUM outlasts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from bluezone.clock import VirtualClock
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.broadcast import run_beacon
from bluezone.venues.checkins import visits
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

from store_rows import rows_in_file
from tests.venues.venue_helpers import CLINIC

T0 = 1_796_400_000.0
REWRITE_SECONDS = 600.0  # the rewrite's virtual length: the 300 s dwell ends within it


def test_a_check_in_earned_during_the_rewrite_is_written_after_it(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    old = np.zeros(1, SIGHTING_DTYPE)
    old["time"] = T0 - 15 * 86_400  # the start's purge deletes it: the rewrite is due at once
    with SightingStore.open(path, purge_now=T0 - 15 * 86_400) as store:
        store.add_sightings(old)
    clock = VirtualClock(T0, thread_seconds=REWRITE_SECONDS)
    air = Air(clock, 1)
    store = SightingStore.open(path)
    listener = BeaconCheckIns(store)
    daemon = Daemon(air.radio("visitor", (3.0, 0.0)), store, clock, listeners=[listener])
    during: list[tuple[bool, int]] = []  # (rewriting, check-ins in the file) after the dwell, within the rewrite

    async def look() -> None:
        for at in (400.0, 590.0):
            await asyncio.sleep(at - (clock.now() - T0))
            during.append((daemon._rewriting is not None, rows_in_file(path, "checkins")))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_beacon(air.radio("cafe", (0.0, 0.0), beacon.SERVICE_UUID), VenueSecrets(CLINIC, bytes(32)),
                                      clock, 900))
            tg.create_task(daemon.run(900))
            tg.create_task(look())

    clock.run(main())
    assert during == [(True, 0), (True, 0)]  # earned at ~T0 + 300 s, not written while the VACUUM holds the lock
    [stay] = visits(store)  # written after it, from the first frame heard
    assert stay.source == "beacon" and T0 <= stay.start <= T0 + 60 and listener.checkins == 1
    store.close()
