"""What the tests of ``CheckedClock`` share: a wall clock and a steady one moved by hand."""

from __future__ import annotations

from bluezone.clock import ANCHOR_SECONDS, CheckedClock

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


def hold(w: Wall, clock: CheckedClock, seconds: float) -> None:
    """``seconds`` of real time, the clock read once a minute as the daemon reads it (far more often, in fact)."""
    for _ in range(int(seconds // ANCHOR_SECONDS)):
        w.advance(ANCHOR_SECONDS)
        clock.now()


def paused(w: Wall, clock: CheckedClock, seconds: float) -> None:
    """A host pauses the virtual machine ``seconds``: neither of its clocks moves; then NTP steps the wall clock
    (and the daemon reads it at once)."""
    clock.now()
    w.advance(ANCHOR_SECONDS)
    clock.now()
    w.wall += seconds
    clock.now()


def restarted(w: Wall, clock: CheckedClock) -> CheckedClock:
    """A daemon restarted in the same boot, as ``run_daemon`` starts one: a new clock counting on from the old one's
    line, mark and hold."""
    again = clock_of(w)
    again.restore(clock.line())
    again.resume(clock.mark(), clock.held())
    return again
