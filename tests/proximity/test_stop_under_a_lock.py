"""The daemon's stop while another process holds the store's write lock (a `sqlite3` shell's open transaction, a long
purge).  Its last writes, the daily key sent but never saved, the sightings waiting and the report owed, each waited
the store's busy time (10 s) in turn: a 31.2 s stop (a real clock, a held BEGIN IMMEDIATE), and only the sightings'
loss said (the key's, which no upload can send, and the report's, not).  Now the lock is waited for once: after a
refusal the rest are tried without waiting (10.3 s), and everything lost is said in one line.  Since the thirtieth
session the stop's writes share one wait, ``STOP_BUSY_SECONDS`` (20 s), each what is left of it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from bluezone.clock import VirtualClock
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity import daemon as daemon_module
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore, interface

MIDNIGHT = 1_796_428_800.0  # 2026-12-05 00:00 UTC: the day's new key is made under the lock, and cannot be saved


def _a_daemon_heard_by_a_neighbour(path: Path, clock: VirtualClock) -> tuple[Daemon, Daemon, SightingStore]:
    """The daemon on a new store at ``path`` and a neighbour 2 m away it hears; no lock taken: each test takes its own."""
    SightingStore.open(path, purge_now=clock.now()).close()
    air = Air(clock, 1)
    store = SightingStore.open(path)
    daemon = Daemon(air.radio("me", (3.0, 0.0)), store, clock, on_status=lambda _: None)
    neighbour = Daemon(air.radio("neighbour", (1.0, 0.0)), SightingStore.open(":memory:"), clock, on_status=lambda _: None)
    return daemon, neighbour, store


def test_a_stop_under_a_held_lock_waits_for_it_once_and_says_what_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)  # the store's busy time (10 s) made short
    monkeypatch.setattr(daemon_module, "STOP_BUSY_SECONDS", 0.2)  # and the stop's (20 s)
    path = tmp_path / "me.db"
    clock = VirtualClock(MIDNIGHT - 30)
    daemon, neighbour, store = _a_daemon_heard_by_a_neighbour(path, clock)
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
        # the key waits the stop's time; the sightings and the report, after its refusal, none (each waited 200 ms)
        assert [name for name, _ in waits] == ["save_daily_key", "add_sightings", "save_daemon_state"], waits
        assert 100 <= waits[0][1] <= 200 and waits[1][1] == waits[2][1] == 0, waits
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


def test_a_lock_first_refused_at_the_stop_is_said_in_its_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock taken just before the stop, whose first refusal is the stop's own write: the backlog warned 'keeping up to
    ... sightings in memory and retrying' (there is no retry) before the stop's ERROR line said they were lost."""
    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)
    monkeypatch.setattr(daemon_module, "STOP_BUSY_SECONDS", 0.2)
    path = tmp_path / "me.db"
    clock = VirtualClock(MIDNIGHT + 600)
    daemon, neighbour, store = _a_daemon_heard_by_a_neighbour(path, clock)
    other = sqlite3.connect(path, isolation_level=None)

    async def main() -> None:
        async def hold_and_stop() -> None:
            await asyncio.sleep(100.5)  # (the loop's flushes are on the whole seconds: none between the two)
            other.execute("BEGIN IMMEDIATE")
            daemon.stop()

        await asyncio.gather(daemon.run(), neighbour.run(100), hold_and_stop())

    try:
        with caplog.at_level(logging.WARNING, logger="bluezone.proximity"):
            clock.run(main())
    finally:
        other.close()
        store.close()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    lost = daemon.stats.lost_at_stop
    assert lost > 0 and said == [(
        "ERROR", f"the store refused the stop's writes (cannot write to {path} now: database is locked): lost {lost}"
        " sightings, the daemon's report (status shows the one before)"
    )], said


def test_a_lock_released_after_the_stores_busy_time_but_within_the_stops_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The stop's first write waited the store's busy time (10 s) and, refused, the rest were tried without waiting: a
    lock released 10-20 s into the stop (a `bluezone purge`'s rewrite of a large store on an SD card) lost the key,
    the sightings and the report that one more wait would have saved.  Now the stop's writes share one wait of
    STOP_BUSY_SECONDS (20 s, in the shipped unit's TimeoutStopSec=30), whatever the store's own busy time."""
    import threading

    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)  # (made short, as the stop's wait is)
    monkeypatch.setattr(daemon_module, "STOP_BUSY_SECONDS", 3.0)
    path = tmp_path / "me.db"
    clock = VirtualClock(MIDNIGHT - 30)
    daemon, neighbour, store = _a_daemon_heard_by_a_neighbour(path, clock)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    release = threading.Timer(0.6, other.rollback)  # in real time, as SQLite waits: past the busy time, within the stop's
    real_save = store.save_daily_key

    def saved_at_the_stop(*args: object, **kwargs: object) -> object:
        if daemon._stop is not None and daemon._stop.is_set() and not release.is_alive():
            release.start()
        return real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "save_daily_key", saved_at_the_stop)

    async def main() -> None:
        async def hold_and_stop() -> None:
            await asyncio.sleep(10)
            other.execute("BEGIN IMMEDIATE")  # held over midnight: the day's new key cannot be saved
            await asyncio.sleep(90)
            daemon.stop()

        await asyncio.gather(daemon.run(), neighbour.run(100), hold_and_stop())

    try:
        with caplog.at_level(logging.ERROR, logger="bluezone.proximity"):
            clock.run(main())
    finally:
        release.join()
        other.close()
    try:
        assert release.finished.is_set() and daemon.stats.lost_at_stop == 0 and not caplog.records, caplog.text
        assert store.key_covering(int(MIDNIGHT // 600)) is not None and store.count_sightings() > 0
    finally:
        store.close()
