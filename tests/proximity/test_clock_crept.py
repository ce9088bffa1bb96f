"""attack20: a wall clock moved forward below the tolerance a minute at a time (450 s each minute, as a time
daemon that steps any offset above 0.4 s would follow a bad server) was followed by the daemon: a day later it
read 8 days ahead and the hourly purge had deleted 400 of the 1,000 sightings (16 days a day at 999 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bluezone.clock import STEP_TOLERANCE, CheckedClock, VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon

from .clock_helpers import SteppedWall, store_of_ten_days
from .conftest import NOON


def test_a_daemon_whose_clock_creeps_ahead_below_the_tolerance_keeps_its_data(tmp_path: Path) -> None:
    store = store_of_ten_days(tmp_path / "me.db")
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    daemon = Daemon(Air(clock, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)

    async def creeping() -> None:
        async def creep() -> None:
            for _ in range(26 * 60):
                await asyncio.sleep(60)
                wall.step += STEP_TOLERANCE * 0.45  # two of them within the tolerance too

        async def hear() -> None:  # the radio stamps each advert it hears with the daemon's clock
            for _ in range(26 * 360):
                await asyncio.sleep(10)
                clock.now()
        await asyncio.gather(daemon.run(26 * 3600), creep(), hear())

    virtual.run(creeping())
    assert wall.step > 8 * DAY_SECONDS
    assert store.count_sightings(until=NOON) == 1000  # was 600: the rest purged as past the 14 days
    assert len(store.daily_keys()) >= 10
    store.close()
