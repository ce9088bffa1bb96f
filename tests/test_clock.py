"""The virtual clock: asyncio timers follow virtual time and jump when everyone waits."""

from __future__ import annotations

import asyncio
import time

import pytest

from bluezone.clock import SystemClock, VirtualClock


def test_sleep_advances_virtual_time_instantly() -> None:
    clock = VirtualClock(start=1_000_000.0)
    seen: list[tuple[str, float]] = []

    async def ticker(name: str, period: float) -> None:
        for _ in range(3):
            await clock.sleep(period)
            seen.append((name, clock.now()))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(ticker("a", 10))
            tg.create_task(ticker("b", 25))

    wall = time.perf_counter()
    clock.run(main())
    assert time.perf_counter() - wall < 5  # hours would be hours on a real clock; here, no wait
    assert seen == [
        ("a", 1_000_010.0),
        ("a", 1_000_020.0),
        ("b", 1_000_025.0),
        ("a", 1_000_030.0),
        ("b", 1_000_050.0),
        ("b", 1_000_075.0),
    ]
    assert clock.now() == 1_000_075.0


def test_timeouts_follow_virtual_time() -> None:
    clock = VirtualClock(start=0.0)

    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3600):
                await asyncio.sleep(7200)
        return clock.now()

    assert clock.run(main()) == 3600.0


def test_manual_advance_outside_run() -> None:
    clock = VirtualClock(start=100.0)
    clock.advance(50)
    assert clock.now() == 150.0
    clock.set(1000.0)
    assert clock.now() == 1000.0


def test_system_clock_is_wall_time() -> None:
    assert abs(SystemClock().now() - time.time()) < 5
