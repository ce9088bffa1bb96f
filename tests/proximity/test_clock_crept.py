"""attack20: a wall clock moved forward below the tolerance a minute at a time (450 s each minute, as a time
daemon that steps any offset above 0.4 s would follow a bad server) was followed by the daemon: a day later it
read 8 days ahead and the hourly purge had deleted 400 of the 1,000 sightings (16 days a day at 999 s).  And steps
within the 3 days a hold makes believed, one after another, were each believed: 14.5 days ahead in four hours."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from bluezone.boottime import BELIEVED_STEP, STEP_TOLERANCE
from bluezone.clock import CheckedClock, VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

from .clock_helpers import AIR_TICK, WRITES_EVERY, SteppedWall, store_of_ten_days
from .conftest import NOON


def _run_with(tmp_path: Path, seconds: float, move: Callable[[SteppedWall], Awaitable[None]]) -> tuple[SightingStore, float]:
    """Ten days' sightings; a daemon run ``seconds`` while ``move`` steps its wall clock and the radio reads the
    clock every 10 s (it stamps each advert with it): the store, and how far the daemon's clock reads ahead."""
    store = store_of_ten_days(tmp_path / "me.db")
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    daemon = Daemon(Air(clock, 1, tick=AIR_TICK).radio("me", (0, 0)), store, clock, WRITES_EVERY, on_status=lambda _: None)

    async def hear() -> None:
        for _ in range(int(seconds // 10)):
            await asyncio.sleep(10)
            clock.now()

    async def run() -> None:
        await asyncio.gather(daemon.run(seconds), move(wall), hear())

    virtual.run(run())
    return store, clock.now() - virtual.now()


def test_a_daemon_whose_clock_creeps_ahead_below_the_tolerance_keeps_its_data(tmp_path: Path) -> None:
    async def creep(wall: SteppedWall) -> None:
        for _ in range(26 * 60):
            await asyncio.sleep(60)
            wall.step += STEP_TOLERANCE * 0.45  # two of them within the tolerance too

    store, ahead = _run_with(tmp_path, 26 * 3600, creep)
    assert ahead <= STEP_TOLERANCE  # the wall clock read 8 days ahead
    assert store.count_sightings(until=NOON) == 1000  # was 600: the rest purged as past the 14 days
    assert len(store.daily_keys()) >= 10
    store.close()


def test_a_daemon_whose_clock_steps_2_9_days_again_and_again_believes_3_days_in_all(tmp_path: Path) -> None:
    """Five steps of 2.9 days, each held 45 minutes while synchronised (node20's hold believes one within 3 days):
    every one was believed, 14.5 days ahead after four hours."""
    async def step(wall: SteppedWall) -> None:
        for _ in range(5):
            await asyncio.sleep(45 * 60)
            wall.step += 2.9 * DAY_SECONDS

    store, ahead = _run_with(tmp_path, 5 * 45 * 60 + 3600, step)
    assert ahead <= BELIEVED_STEP  # the first step believed, no more
    assert store.count_sightings(until=NOON) == 1000  # was 0
    store.close()
