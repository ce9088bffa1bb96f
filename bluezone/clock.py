"""Real and virtual time behind one small interface.

Everything time-based in bluezone asks a :class:`Clock` for ``now()`` and sleeps with
``await clock.sleep()``.  A :class:`VirtualClock` runs coroutines on an event loop whose own
time is virtual: whenever every task is waiting, the loop jumps straight to the next timer.
So ``asyncio.sleep``, ``asyncio.timeout`` and ``loop.call_later`` all follow virtual time,
and hours of daemon life take milliseconds, with no patching.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, TypeVarTuple, Unpack

from bluezone.boottime import (
    BELIEVED_STEP,
    HOLD_SECONDS,
    STEP_TOLERANCE,
    Hold,
    Line,
    Reading,
    boot_seconds,
    kernel_clock_synced,
    on_line,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger(__name__)


#: How far ahead of UTC a calendar can be (UTC+14, Kiribati): a date someone gives as today may be
#: UTC's tomorrow (in Vietnam, UTC+7, from midnight to 07:00 local time).
LATEST_UTC_OFFSET = 14 * 3600


def latest_date(now: float) -> dt.date:
    """The latest calendar date anywhere at ``now``: dates people give (a test, symptoms, an exposure)
    after it are in the future for everyone; before it they may be today where they live."""
    return dt.datetime.fromtimestamp(now + LATEST_UTC_OFFSET, dt.UTC).date()


#: How far behind UTC a calendar can be (UTC-12, Baker Island).
EARLIEST_UTC_OFFSET = -12 * 3600
#: How many days back a test date or symptom onset may lie, as GAEN's verification server allows
#: (ALLOWED_PAST_SYMPTOM_DAYS, 28 days): further back, no key still kept has a known days since onset.
MAX_DATE_AGE_DAYS = 28


def earliest_date(now: float, days_back: int) -> dt.date:
    """The earliest calendar date anywhere that lies at most ``days_back`` days before today there."""
    return dt.datetime.fromtimestamp(now + EARLIEST_UTC_OFFSET, dt.UTC).date() - dt.timedelta(days=days_back)


class Clock(Protocol):
    """Wall-clock time in Unix seconds, and a way to wait."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)


def run_on(clock: Clock, coro: Coroutine[Any, Any, T]) -> T:
    """``coro`` run to its end on ``clock``'s loop (the real clock: ``asyncio.run``; a test's clock runs its own
    virtual-time loop), and closed whatever ends it: a Ctrl-C before the loop took it left "coroutine ... was never
    awaited" at exit (``run``, ``venue beacon``, ``doctor``, ``calibrate``)."""
    try:
        if isinstance(clock, SystemClock):
            return asyncio.run(coro)
        return clock.run(coro)  # type: ignore[attr-defined,no-any-return]
    finally:
        coro.close()


#: How often the kernel is asked whether the clock is synchronised (until it first is in a boot, and during a hold).
ANCHOR_SECONDS = 60.0


#: What a clock no time daemon keeps synchronised leaves unguarded (``status``, ``doctor``): ``CheckedClock`` has
#: nothing to check its steps by, and the store alone cannot tell a wrong date from a device off for weeks.
UNSYNCHRONISED = (
    "not synchronised (the kernel says no time daemon keeps it): a clock not synchronised since boot is believed as it"
    " reads, so a date set wrong by hand or wrong since boot is not guarded: ahead, it deletes what it puts past 14"
    " days (this device's daily keys too); behind, sightings are stamped where they miss their keys"
)
START_A_TIME_DAEMON = "`timedatectl set-ntp true` starts one (systemd-timesyncd), or install chrony"


class CheckedClock:
    """The wall clock, except a step of it away from the first reading it believed while the kernel said it was
    synchronised: a bad NTP answer, a clock set by hand a year ahead.  Then ``now()`` is the time measured
    (``boot_seconds``) since the last reading it believed, until the wall clock comes back within ``STEP_TOLERANCE``
    of it; ``off_by`` says by how much it is not believed (0: believed).  A clock not synchronised since boot (no
    NTP, or before it answered, as a board without a real-time clock starts) is believed as it reads: its first step
    forward is the correction, and nothing measured could judge it.  Once anchored the line is kept for the boot,
    through spells the kernel says unsynchronised (NTP blocked for hours, then a bad answer, was believed whole).
    A step forward of at most ``believed_step`` that the wall clock keeps to for ``hold`` seconds while synchronised
    is believed: a virtual machine its host paused (its boot clock stood still too) then put right by NTP; and a step
    back to the line it left, should that step prove wrong after all.  The daemon's clock: what it stamps, and the
    purge that would otherwise delete every sighting as past the 14 days."""

    def __init__(
        self,
        wall: Clock | None = None,
        steady: Callable[[], float] = boot_seconds,
        synced: Callable[[], bool] = kernel_clock_synced,
        tolerance: float = STEP_TOLERANCE,
        hold: float = HOLD_SECONDS,
        believed_step: float = BELIEVED_STEP,
    ) -> None:
        self.wall: Clock = wall or SystemClock()
        self._steady, self._synced, self.tolerance = steady, synced, tolerance
        self.hold, self.believed_step = hold, believed_step
        self._anchor: Reading | None = None  # (a believed wall reading, steady then), from the first one synchronised
        self._asked = -float("inf")  # steady time the kernel was last asked
        self._held: Hold | None = None  # where the wall clock began to keep to a forward step not believed
        self._left: Reading | None = None  # the anchor before the last step a hold made believed
        self._origin: Reading | None = None  # the anchor before the first: believed steps add up from it
        self.off_by = 0.0

    def line(self) -> Line | None:
        """What this clock believes in this boot, for a daemon restarted in it to count on from (``restore``): else a
        restart began a new line, and the bound on believed steps held per daemon run, not per boot.  None before its
        first synchronised reading."""
        return None if self._anchor is None else (self._anchor, self._origin, self._left)

    def restore(self, line: Line | None) -> None:
        """Count on from ``line`` (``line()`` of an earlier clock of this boot); None, or a line read later than now
        (damaged: none of this boot's), is nothing to count from."""
        steady = self._steady()
        if line is not None and all(reading is None or reading[1] <= steady for reading in line):
            (self._anchor, self._origin, self._left), self._asked = line, steady
            self.now()

    def mark(self) -> tuple[float, float] | None:
        """(the measured time now, ``steady`` now) while the wall clock is not believed, else None."""
        now = self.now()
        return (now, self._steady()) if self.off_by else None

    def held(self) -> Hold | None:
        """Where the wall clock began to keep to the step not believed now (None: none, or believed), for a daemon
        restarted in this boot to hold on from (``resume``) and a command to judge by (``StoreStatus.clock_step``)."""
        return self._held if self.off_by else None

    def resume(self, mark: tuple[float, float] | None, held: Hold | None = None) -> None:
        """Count from ``mark`` (a time measured while the wall clock was not believed, ``boot_seconds`` then: the
        last report of a daemon of this boot), so that a restart does not believe the step it did not; and hold on
        from ``held`` (``held()`` then; one read later than now is damaged: none), the kernel asked at once (nobody
        asked it while no daemon ran).  Else a restart began the hold again, and a daemon restarted more often than
        every 40 minutes (``Restart=on-failure``) never believed a pause put right."""
        if mark is not None:
            steady = self._steady()
            self._anchor, self._asked = mark, steady
            if held is not None and held[1] <= steady:
                self._held, self._asked = held, -float("inf")
            self.now()

    def now(self) -> float:
        wall, steady = self.wall.now(), self._steady()
        if self._anchor is not None:
            measured = self._anchor[0] + (steady - self._anchor[1])
            if abs(wall - measured) > self.tolerance and not self._believe(wall, measured, steady):
                if not self.off_by:
                    log.warning("the wall clock stepped %+.0f s from the time measured since it last agreed (this"
                                " boot's clock was synchronised then): not believed (stamps and purges at the measured time) until it agrees"
                                " again; check the time source (timedatectl timesync-status)", wall - measured)
                self.off_by = wall - measured
                return measured
            if self.off_by:
                log.warning("the wall clock agrees again with the time measured (off by %+.0f s before)", self.off_by)
                self.off_by = 0.0
            self._held = None  # a step undone and made again holds anew (a time daemon undid it: what the hold waits for)
        if self._anchor is None and steady - self._asked >= ANCHOR_SECONDS:
            self._asked = steady
            if self._synced():  # kept for the boot: steps below the tolerance add up against it, and an unsynchronised
                self._anchor = (wall, steady)  # spell (NTP blocked) is no licence for the next answer's step
        return wall

    def _believe(self, wall: float, measured: float, steady: float) -> bool:
        """Whether a step of the wall clock from ``measured`` is believed after all (then it is the new anchor): a
        step forward that has held and keeps the clock within ``believed_step`` of the line the first such step left
        (steps in turn add up), or a step back to the line the last such step left."""
        step, left, origin = wall - measured, self._left, self._origin or self._anchor
        assert origin is not None  # asked only against an anchor
        if left is not None and abs(wall - (left[0] + steady - left[1])) <= self.tolerance:
            log.warning("the wall clock stepped %+.0f s back to the time measured before the step believed last: believed",
                        step)
        elif not self._holds(wall - (origin[0] + steady - origin[1]), wall, steady):
            return False
        else:
            log.warning("the wall clock's step of %+.0f s has held %.0f min while synchronised: believed (a virtual"
                        " machine its host paused, put right)", step, self.hold / 60)
            left = self._anchor
            self._origin = self._origin or left
        self._anchor, self._left, self._held, self.off_by = (wall, steady), left, None, 0.0
        return True

    def _holds(self, step: float, wall: float, steady: float) -> bool:
        """Whether ``step`` (forward, within ``believed_step``) is the one the wall clock (``wall``) has kept to
        (within the tolerance) for ``hold`` seconds, the kernel saying synchronised whenever asked (once a minute)."""
        if not 0 < step <= self.believed_step:
            self._held = None
            return False
        if self._held is None or not on_line(self._held, wall, steady, self.tolerance):
            self._held = (wall, steady)  # (again) from now
        if steady - self._asked >= ANCHOR_SECONDS:
            self._asked = steady
            if not self._synced():
                self._held = (wall, steady)  # a date set by hand unsynchronises the kernel: not until it is again
        return steady - self._held[1] >= self.hold

    async def sleep(self, seconds: float) -> None:
        await self.wall.sleep(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.wall.run(coro)  # type: ignore[attr-defined,no-any-return]


class _SkippingSelector(selectors.DefaultSelector):
    """A selector that never blocks on a timer: it advances the loop's virtual time instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None):  # type: ignore[override]
        events = super().select(0)
        if events or timeout is None or timeout <= 0:
            if not events and timeout is None:
                # Nothing scheduled at all: only I/O (e.g. a worker thread) can wake us.
                return super().select(None)
            return events
        assert self.loop is not None
        held = self.loop.thread_due()
        if held is not None and held <= self.loop.time() + timeout:
            # time stands at the end a thread's work was given until the work really ends (its wake is I/O)
            self.loop.advance(max(held - self.loop.time(), 0.0))
            return super().select(None)
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when every task waits on a timer.

    Work in a thread (``run_in_executor``, ``asyncio.to_thread``) takes ``thread_seconds`` of virtual time,
    however long it really takes: the loop runs on until then and waits for the work there, really, and its
    result comes at that moment.  Without it, virtual time raced on while a thread worked, as far as the thread's
    real speed let it: a test's outcome would depend on the machine's load."""

    def __init__(self, thread_seconds: float = 0.0) -> None:
        selector = _SkippingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_time = 0.0
        self.thread_seconds = thread_seconds
        self._thread_ends: list[float] = []  # when each thread's work that still runs is to end

    def time(self) -> float:
        return self._virtual_time

    def advance(self, seconds: float) -> None:
        self._virtual_time += seconds

    def thread_due(self) -> float | None:
        """The virtual moment the first thread's work still running is to end, or None."""
        return min(self._thread_ends, default=None)

    def run_in_executor(self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: Unpack[Ts]) -> asyncio.Future[T]:
        work = super().run_in_executor(executor, func, *args)
        due = self.time() + self.thread_seconds
        self._thread_ends.append(due)
        result: asyncio.Future[T] = self.create_future()

        def deliver() -> None:
            if result.cancelled():
                return
            if work.cancelled():
                result.cancel()
            elif work.exception() is not None:
                result.set_exception(work.exception())  # type: ignore[arg-type]
            else:
                result.set_result(work.result())

        def ended(_: asyncio.Future[T]) -> None:
            self._thread_ends.remove(due)
            self.call_at(due, deliver)  # (at once when due is past)

        work.add_done_callback(ended)
        return result


class VirtualClock:
    """A clock starting at ``start`` (Unix seconds) that runs coroutines in virtual time.

    Use ``clock.run(main())`` instead of ``asyncio.run``; inside it ``clock.now()`` and every
    asyncio timer are virtual.  Outside a run, ``now()`` is frozen at the last virtual moment
    and ``set()`` / ``advance()`` move it by hand (for synchronous tests).  Work in a thread
    (``asyncio.to_thread``) takes ``thread_seconds`` of virtual time (``VirtualTimeLoop``).
    """

    def __init__(self, start: float, *, thread_seconds: float = 0.0) -> None:
        self._offset = float(start)
        self._loop: VirtualTimeLoop | None = None
        self.thread_seconds = thread_seconds  # how long work in a thread takes (``VirtualTimeLoop``)

    def now(self) -> float:
        if self._loop is not None:
            return self._offset + self._loop.time()
        return self._offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def advance(self, seconds: float) -> None:
        if self._loop is not None:
            raise RuntimeError("advance() by hand only outside clock.run(); inside, sleep")
        self._offset += seconds

    def set(self, when: float) -> None:
        self.advance(when - self.now())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on a fresh virtual-time loop."""
        loop = VirtualTimeLoop(self.thread_seconds)
        self._loop = loop
        try:
            return loop.run_until_complete(coro)
        finally:
            self._offset = self.now()
            self._loop = None
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
