"""The daemon's stop while another process holds the store's write lock (a `sqlite3` shell's open transaction, a long
purge).  Its last writes, the daily key sent but never saved, the sightings waiting and the report owed, each waited
the store's busy time (10 s) in turn: a 31.2 s stop (a real clock, a held BEGIN IMMEDIATE), and only the sightings'
loss said (the key's, which no upload can send, and the report's, not).  Now the lock is waited for once: after a
refusal the rest are tried without waiting (10.3 s), and everything lost is said in one line."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from bluezone.clock import VirtualClock
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore, interface

MIDNIGHT = 1_796_428_800.0  # 2026-12-05 00:00 UTC: the day's new key is made under the lock, and cannot be saved


def test_a_stop_under_a_held_lock_waits_for_it_once_and_says_what_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)  # the store's busy time (10 s) made short
    path = tmp_path / "me.db"
    SightingStore.open(path, purge_now=MIDNIGHT - 30).close()
    clock = VirtualClock(MIDNIGHT - 30)
    air = Air(clock, 1)
    store = SightingStore.open(path)
    daemon = Daemon(air.radio("me", (3.0, 0.0)), store, clock, on_status=lambda _: None)
    neighbour = Daemon(air.radio("neighbour", (1.0, 0.0)), SightingStore.open(":memory:"), clock, on_status=lambda _: None)
    waits: list[tuple[str, int]] = []  # each write of the stop, and how long it may wait for the lock (ms)
    stopping = False
    for name in ("save_daily_key", "add_sightings", "save_daemon_state"):
        write = getattr(store, name)

        def spied(*args: object, _write: object = write, _name: str = name, **kwargs: object) -> object:
            if stopping:  # (the store's own method runs: a spy, not a mock)
                waits.append((_name, int(store._conn.execute("PRAGMA busy_timeout").fetchone()[0])))
            return _write(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(store, name, spied)
    other = sqlite3.connect(path, isolation_level=None)

    async def main() -> None:
        async def hold() -> None:
            await asyncio.sleep(10)
            other.execute("BEGIN IMMEDIATE")  # held past the stop

        async def stop() -> None:
            nonlocal stopping
            await asyncio.sleep(100)
            stopping = True
            daemon.stop()

        await asyncio.gather(hold(), daemon.run(), neighbour.run(100), stop())

    try:
        with caplog.at_level(logging.WARNING, logger="bluezone.proximity.daemon"):
            clock.run(main())
    finally:
        other.close()
    try:
        # the key waits the store's time; the sightings and the report, after its refusal, none (each waited 200 ms)
        assert waits == [("save_daily_key", 200), ("add_sightings", 0), ("save_daemon_state", 0)], waits
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        lost = daemon.stats.lost_at_stop
        assert lost > 0 and errors == [
            f"the store refused the stop's writes (cannot write to {path} now: database is locked): lost {lost} sightings,"
            " the daily key of 2026-12-05 (sent, never saved: no upload can send it), the daemon's report (status shows"
            " the one before)"
        ], errors
        assert daemon.key is not None and daemon.key.key.hex() not in caplog.text
    finally:
        store.close()
