"""What the tests of ``CheckedClock`` share: a wall clock and a steady one moved by hand."""

from __future__ import annotations

from bluezone.clock import CheckedClock

T0 = 1_790_000_000.0
YEAR = 365 * 86_400.0


class Wall:
    """A wall clock and a steady one moved by hand."""

    def __init__(self) -> None:
        self.wall, self.steady, self.synced = T0, 1000.0, True

    def now(self) -> float:
        return self.wall

    async def sleep(self, seconds: float) -> None:  # pragma: no cover (never awaited here)
        raise AssertionError

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.steady += seconds


def clock_of(w: Wall) -> CheckedClock:
    """The checked clock of ``w``: its steady clock and its kernel's word."""
    return CheckedClock(w, steady=lambda: w.steady, synced=lambda: w.synced)
