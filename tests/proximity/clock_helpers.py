"""What the tests of a wall clock that steps share: the step, and a wall clock the test steps."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bluezone.boottime import boot_id, boot_seconds
from bluezone.clock import CheckedClock, VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.runner import run_daemon
from bluezone.proximity.store import SightingStore

from .conftest import NOON, random_sightings

YEAR = 365 * DAY_SECONDS
# Hours of virtual time at a third of the CPU (a clock test's daemons did nothing else): the daemons write every 30 s,
# not 5, and the air of ``me_and_a_neighbour`` works in 10-s ticks, not 1 (each advert still carries its own send time)
WRITES_EVERY = DaemonConfig(flush_interval=30.0)
AIR_TICK = 10.0


class SteppedWall:
    """The virtual clock's time plus a step the test sets: the wall clock; the virtual clock stays the steady one."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock, self.step = clock, 0.0

    def now(self) -> float:
        return self.clock.now() + self.step

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.clock.run(coro)


def store_of_ten_days(path: Path) -> SightingStore:
    """Ten days of sightings and daily keys up to NOON, and 30 sightings really past the retention."""
    store = SightingStore.open(path, purge_now=NOON)
    for day in range(10):
        at = NOON - day * DAY_SECONDS
        store.save_daily_key(DailyKey(bytes([day + 1]) * 16, rolling_start(at)), created_at=at)
        store.add_sightings(random_sightings(100, at - 7200, 3600, seed=day))
    store.add_sightings(random_sightings(30, NOON - 20 * DAY_SECONDS, 600, seed=99))  # really past the retention
    return store


def leave_a_mark(path: Path, measured: float, off_by: float = YEAR, *, same_boot: bool = True) -> None:
    """The daemon's last report while it did not believe a step of ``off_by``: its measured time, this boot (or not)."""
    with SightingStore.open(path, create=False, purge_now=measured) as store:
        mark = {"off_by": off_by, "measured": measured, "boot_seconds": boot_seconds(),
                "boot_id": boot_id() if same_boot else "another boot"}
        store.save_daemon_state({"backend": "emulated", "clock": mark}, measured)


def leave_a_line(path: Path, anchor: float, origin: float | None = None, *, same_boot: bool = True) -> None:
    """The last report of a daemon that believed the clock: its line (anchored at ``anchor`` now, its believed steps
    begun from ``origin`` if any), this boot (or not)."""
    steady = boot_seconds()
    with SightingStore.open(path, create=False, purge_now=anchor) as store:
        line = {"anchor": [anchor, steady], "origin": None if origin is None else [origin, steady], "left": None,
                "boot_id": boot_id() if same_boot else "another boot"}
        store.save_daemon_state({"backend": "emulated", "clock_line": line}, anchor)


def run_stepped(path: Path, virtual: VirtualClock, wall: SteppedWall, step: float, hours: float) -> None:
    """One daemon run (``run_daemon``) of ``hours`` on a new clock of this boot; half an hour in, the wall clock steps
    to ``step``."""
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)

    async def run() -> None:
        async def stepped() -> None:
            await asyncio.sleep(1800)
            wall.step = step
        await asyncio.gather(
            run_daemon("emulated:1", path, WRITES_EVERY, hours * 3600, clock=clock, handle_signals=False), stepped()
        )

    virtual.run(run())


def me_and_a_neighbour(
    air_clock: Any, virtual: VirtualClock, store: SightingStore, clock: Any, config: DaemonConfig | None = None
) -> tuple[Daemon, Daemon]:
    """This device's daemon (its ``store`` and ``clock``) and a neighbour's 1 m away (its own store, on ``virtual``),
    on one emulated air that stamps what it hears with ``air_clock``."""
    config = config or WRITES_EVERY
    air = Air(air_clock, 1, tick=AIR_TICK)
    neighbour = Daemon(air.radio("them", (1, 0)), SightingStore.open(":memory:"), virtual, config, on_status=lambda _: None)
    return Daemon(air.radio("me", (0, 0)), store, clock, config, on_status=lambda _: None), neighbour
