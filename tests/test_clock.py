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


def _ticks_during_thread(clock: VirtualClock, real_seconds: float) -> tuple[float, int]:
    """(the virtual seconds a thread's work of ``real_seconds`` took, the ticks of a 0.7 s ticker meanwhile)."""
    ticks = [0]

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.7)
            ticks[0] += 1

    async def main() -> tuple[float, int]:
        beside = asyncio.create_task(ticker())
        began = clock.now()
        await asyncio.to_thread(time.sleep, real_seconds)
        took, seen = clock.now() - began, ticks[0]
        beside.cancel()
        return took, seen

    return clock.run(main())


def test_work_in_a_thread_takes_no_virtual_time_however_long_it_really_takes() -> None:
    """While a thread worked, virtual time raced on as far as the thread's real speed let it (a loaded machine:
    more ticks): the loop now waits for it where it stands, so a daemon's rewrite in a thread is the same run
    on every machine."""
    assert _ticks_during_thread(VirtualClock(1_000_000.0), 0.05) == (0.0, 0)


@pytest.mark.parametrize("real_seconds", [0.0, 0.05])
def test_work_in_a_thread_can_be_given_virtual_seconds_to_take(real_seconds: float) -> None:
    """``thread_seconds``: the loop runs on that long while the thread works (adverts arrive during a rewrite),
    and the result comes then, whether the work really ended sooner or later."""
    assert _ticks_during_thread(VirtualClock(1_000_000.0, thread_seconds=30.0), real_seconds) == (30.0, 42)
