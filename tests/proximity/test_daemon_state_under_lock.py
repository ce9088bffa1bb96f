"""The daemon's report (``daemon_state``) while another process holds the store's lock.  Each save under the lock
stops the loop up to ``LOOP_BUSY_SECONDS``; a refused one was given up until the next status line (60 s), the report
of a clock step with it: a command opening the store once the lock went purged at the stepped clock meanwhile (a year
ahead: every sighting).  Now a refused report is owed and tried again at the flushes, backing off as the unsaved
daily key and the sightings do (``Backoff``), and said once, not at every status line."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bluezone.clock import CheckedClock, VirtualClock
from bluezone.config import DaemonConfig
from bluezone.errors import StoreReadOnlyError
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

from .clock_helpers import SteppedWall, YEAR
from .conftest import NOON


def _held(path: Path, start: float, end: float) -> Any:
    """A coroutine holding ``path``'s write lock from ``start`` to ``end`` seconds of the loop's clock, from another
    connection (another process's, as far as SQLite can tell)."""
    async def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            if start:
                await asyncio.sleep(start)
            other.execute("BEGIN IMMEDIATE")
            await asyncio.sleep(end - start)
            other.execute("ROLLBACK")
        finally:
            other.close()
    return hold()


def test_a_step_reported_under_a_lock_reaches_the_store_once_the_lock_goes(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    store = SightingStore.open(path, purge_now=NOON)
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    daemon = Daemon(Air(virtual, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)
    seen: list[object] = []

    async def main() -> None:
        async def step() -> None:
            await asyncio.sleep(130)  # between two status lines (every 60 s from the start), under the lock
            wall.step = YEAR
            await asyncio.sleep(30)  # the lock gone 20 s ago; the next status line at 180 s
            seen.append((store.daemon_state() or {}).get("clock"))
        await asyncio.gather(daemon.run(200), _held(path, 125, 140), step())

    try:
        virtual.run(main())
    finally:
        store.close()
    assert isinstance(seen[0], dict) and abs(seen[0]["off_by"] - YEAR) < 1, seen


def test_a_report_refused_is_tried_again_backing_off_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "me.db"
    SightingStore.open(path, purge_now=NOON).close()
    clock = VirtualClock(NOON)
    store = SightingStore.open(path)
    tries: list[float] = []  # the clock at each save of the report (the store's own method runs: a spy, not a mock)
    save = store.save_daemon_state

    def counted(state: dict[str, Any], now: float) -> None:
        tries.append(clock.now() - NOON)
        save(state, now)

    monkeypatch.setattr(store, "save_daemon_state", counted)
    daemon = Daemon(Air(clock, 1).radio("alone", (0.0, 0.0)), store, clock, on_status=lambda _: None)

    async def main() -> None:
        await asyncio.gather(_held(path, 0, 300), daemon.run(360))  # (the lock taken first)

    try:
        with caplog.at_level(logging.WARNING, logger="bluezone.proximity.daemon"):
            clock.run(main())
        # under the lock: at the start, then 5, 10, 20, 40, 80 s apart (before: at each status line, 60 s apart, each
        # said, and the status lines' saves as many stops of the loop); saved at the first try after it (315 s), and
        # at the stop
        assert tries == [0.0, 5.0, 15.0, 35.0, 75.0, 155.0, 315.0, 360.0], tries
        said = [r.getMessage() for r in caplog.records if "daemon state" in r.getMessage()]
        assert len(said) == 1 and "tried again" in said[0], said
        assert store.daemon_state()["updated_at"] == NOON + 360
    finally:
        store.close()


def test_a_report_the_store_refuses_otherwise_is_said_once_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal that is no StoreWriteError (a file system remounted read-only after a disk error) with a clock step
    to report: the step stays news, so each flush tried the report again, a WARNING each (every 5 s)."""
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    daemon = Daemon(Air(virtual, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)

    def refused(state: dict[str, Any], now: float) -> None:  # as the store says a read-only file system
        raise StoreReadOnlyError(f"cannot write to {store.path}: it is on a read-only file system")

    async def main() -> None:
        async def step() -> None:
            await asyncio.sleep(30)
            wall.step = YEAR
            monkeypatch.setattr(store, "save_daemon_state", refused)
        await asyncio.gather(daemon.run(300), step())

    try:
        with caplog.at_level(logging.WARNING, logger="bluezone.proximity.daemon"):
            virtual.run(main())
    finally:
        store.close()
    said = [r.getMessage() for r in caplog.records if "daemon state" in r.getMessage()]
    assert len(said) == 1 and "read-only file system" in said[0], said
