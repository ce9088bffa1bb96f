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
import selectors
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


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
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when every task waits on a timer."""

    def __init__(self) -> None:
        selector = _SkippingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_time = 0.0

    def time(self) -> float:
        return self._virtual_time

    def advance(self, seconds: float) -> None:
        self._virtual_time += seconds


class VirtualClock:
    """A clock starting at ``start`` (Unix seconds) that runs coroutines in virtual time.

    Use ``clock.run(main())`` instead of ``asyncio.run``; inside it ``clock.now()`` and every
    asyncio timer are virtual.  Outside a run, ``now()`` is frozen at the last virtual moment
    and ``set()`` / ``advance()`` move it by hand (for synchronous tests).
    """

    def __init__(self, start: float) -> None:
        self._offset = float(start)
        self._loop: VirtualTimeLoop | None = None

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
        loop = VirtualTimeLoop()
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
