"""Commands beside a running daemon (its lock ``<db>.lock`` held).  A command's open (``status``, ``check``) leaves
the purge to the daemon, whose next purge deletes the rows and pays the rewrite; reads keep the 14 days meanwhile.
Before, the open deleted them too (redundant), and its delete waited for the daemon's rewrite (its VACUUM holds the
store's lock) up to the 10 s busy timeout.  ``bluezone purge``, an explicit request, deletes at once, but its rewrite
is asked of the daemon, which runs it in its thread at its next flush: the command's own VACUUM held the store's lock,
and the daemon's writes on its loop waited for it."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.runner import run_daemon
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.daemonlock import one_daemon_per_store

from .conftest import NOON, random_sightings

EXPIRED, KEPT = 500, 200


def _store(path: Path) -> None:
    with SightingStore.open(path, purge_now=NOON - 20 * DAY_SECONDS) as store:
        store.add_sightings(random_sightings(EXPIRED, NOON - 20 * DAY_SECONDS, 3600, seed=1))
        store.add_sightings(random_sightings(KEPT, NOON - DAY_SECONDS, 3600, seed=2))


def _in_file(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def _rewrite_rows(path: Path) -> set[str]:
    return {str(r[0]) for r in _in_file(path, "SELECT name FROM daemon_state WHERE name LIKE 'purge_rewrit%'")}


def test_status_beside_a_daemon_rewriting_deletes_nothing_and_waits_for_nothing(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    _store(path)
    vacuum = sqlite3.connect(path, isolation_level=None)
    with one_daemon_per_store(path):
        vacuum.execute("BEGIN IMMEDIATE")  # the daemon's rewrite holds the store's write lock (its VACUUM)
        try:
            began = time.monotonic()
            done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON)})
            took = time.monotonic() - began
        finally:
            vacuum.rollback()
            vacuum.close()
    assert done.exit_code == 0, done.output
    info = json.loads(done.output)
    assert info["sightings"] == KEPT  # the 14 days all the same
    assert info["purged_on_open"]["left_to_daemon"] and info["purged_on_open"]["sightings_deleted"] == 0
    assert _in_file(path, "SELECT COUNT(*) FROM sightings") == [(EXPIRED + KEPT,)]  # the daemon's to delete
    assert took < 5  # (it waited the 10 s busy timeout for the lock, then said the purge was postponed)


def test_purge_beside_a_daemon_deletes_now_and_the_daemon_rewrites_at_its_next_flush(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    _store(path)
    clock = VirtualClock(NOON - 15 * DAY_SECONDS + 3600)  # (the start's purge deletes nothing yet)
    seen: dict[str, object] = {}

    async def purge_then_look() -> None:
        await asyncio.sleep(30)
        done = CliRunner().invoke(cli, ["purge", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON)})
        assert done.exit_code == 0, done.output
        seen["purged"] = json.loads(done.output)
        seen["after the command"] = (_in_file(path, "SELECT COUNT(*) FROM sightings"), _rewrite_rows(path))
        await asyncio.sleep(10)  # two flushes
        seen["after a flush"] = _rewrite_rows(path)

    async def both() -> None:
        await asyncio.gather(run_daemon("emulated:0", path, DaemonConfig(), 60, clock=clock, handle_signals=False),
                             purge_then_look())

    clock.run(both())
    purged = seen["purged"]
    assert isinstance(purged, dict) and purged["sightings_deleted"] == EXPIRED
    assert purged["rewrite_owed"] is True and purged["rewrite_asked_of_daemon"] is True
    assert seen["after the command"] == ([(KEPT,)], {"purge_rewrite_owed", "purge_rewrite_asked"})  # deleted, not rewritten
    assert seen["after a flush"] == {"purge_rewritten_day"}  # the daemon's thread rewrote it, long before its next purge


def test_purge_without_a_daemon_still_rewrites_at_once(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    _store(path)
    done = CliRunner().invoke(cli, ["purge", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON)})
    assert done.exit_code == 0, done.output
    purged = json.loads(done.output)
    assert purged["sightings_deleted"] == EXPIRED and purged["rewrite_owed"] is False
    assert purged["rewrite_asked_of_daemon"] is False and _rewrite_rows(path) == {"purge_rewritten_day"}


def test_an_asked_rewrite_that_cannot_run_is_not_tried_at_every_flush(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The ask stays in the file when its rewrite fails (here the store's file was deleted under the daemon, so its
    thread cannot open it again; no room for the copy is the usual case): the daemon tried it again at each flush,
    every 5 s, a VACUUM each time; it is left to the day's rewrite."""
    path = tmp_path / "me.db"
    _store(path)
    clock = VirtualClock(NOON - 15 * DAY_SECONDS + 3600)

    async def purge_then_delete() -> None:
        await asyncio.sleep(30)
        done = CliRunner().invoke(cli, ["purge", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON)})
        assert done.exit_code == 0 and json.loads(done.output)["rewrite_asked_of_daemon"], done.output
        path.unlink()  # (before the daemon's next flush looks for the ask)

    async def both() -> None:
        await asyncio.gather(run_daemon("emulated:0", path, DaemonConfig(), 120, clock=clock, handle_signals=False),
                             purge_then_delete())

    with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
        clock.run(both())
    assert caplog.text.count("could not rewrite") == 1  # 18 flushes, one try


def test_purge_beside_a_daemon_waits_out_a_rewrite_longer_than_the_busy_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bluezone purge` beside a daemon whose rewrite's VACUUM outlasted the store's 10 s busy timeout (a large store, a
    Raspberry Pi's SD card) failed, exit 1, "database is locked": it waits the rewrite out now.  The busy timeout is made
    0.3 s here, and the rewrite's lock held for 1 s."""
    import threading

    from bluezone.proximity.store import interface

    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.3)
    path = tmp_path / "me.db"
    _store(path)
    vacuum = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with one_daemon_per_store(path):
        vacuum.execute("BEGIN IMMEDIATE")  # the daemon's rewrite holds the store's write lock (its VACUUM)
        done_at = threading.Timer(1.0, vacuum.rollback)
        done_at.start()
        try:
            done = CliRunner().invoke(cli, ["purge", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON)})
        finally:
            done_at.join()
            vacuum.close()
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["sightings_deleted"] == EXPIRED
    assert _in_file(path, "SELECT COUNT(*) FROM sightings") == [(KEPT,)]
