"""A new daily key the store refuses (another process holds its lock) is tried again as the sightings' backlog is:
after ``flush_interval`` seconds, doubling up to 300 s, not at every flush.  Each try under the lock stops the loop up
to ``LOOP_BUSY_SECONDS``: at every flush (5 s) that was 2% of the loop's time for as long as the lock was held."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bluezone.clock import VirtualClock
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.backlog import Backoff
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

T0 = 1_796_400_000.0
HELD = 300.0  # virtual seconds the lock is held from the start


def test_the_unsaved_daily_key_backs_off_while_the_lock_is_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "me.db"
    SightingStore.open(path, purge_now=T0).close()
    clock = VirtualClock(T0)
    store = SightingStore.open(path)
    tries: list[float] = []  # the clock at each save of a daily key (the store's own method runs: a spy, not a mock)
    save = store.save_daily_key

    def counted(key: DailyKey, created_at: float | None = None) -> None:
        tries.append(clock.now())
        save(key, created_at=created_at)

    monkeypatch.setattr(store, "save_daily_key", counted)
    daemon = Daemon(Air(clock, 1).radio("alone", (0.0, 0.0)), store, clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def release() -> None:
        await asyncio.sleep(HELD)
        other.execute("ROLLBACK")

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.run(HELD + 60))
            tg.create_task(release())

    try:
        clock.run(main())
        held = [t - T0 for t in tries if t - T0 < HELD]
        # at the start, then 5, 10, 20, 40, 80 s apart (at every flush, 5 s, before: 61 tries)
        assert held == [0.0, 5.0, 15.0, 35.0, 75.0, 155.0], held
        assert [t - T0 for t in tries[len(held):]] == [315.0]  # the next try, after the release, saved it
        assert len(store.daily_keys()) == 1 and store.daily_keys()[0] == daemon.key
    finally:
        other.close()
        store.close()


def test_backoff_doubles_to_its_limit_and_resets_on_success() -> None:
    backoff = Backoff(min_delay=5.0, max_delay=40.0)
    assert backoff.due(0.0)
    delays = []
    now = 0.0
    for _ in range(6):
        backoff.failed(now)
        assert not backoff.due(now + backoff.delay - 0.01)
        now += backoff.delay
        assert backoff.due(now)
        delays.append(backoff.delay)
    assert delays == [5.0, 10.0, 20.0, 40.0, 40.0, 40.0]
    backoff.succeeded()
    assert backoff.due(now) and backoff.delay == 0.0
