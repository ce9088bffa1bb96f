"""What the tests of a wall clock that steps share: the step, and a wall clock the test steps."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS

YEAR = 365 * DAY_SECONDS


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
