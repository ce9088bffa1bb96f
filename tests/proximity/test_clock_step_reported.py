"""attack19: a step of the wall clock the daemon does not believe is in its report within a flush, not at
the next status line a minute later: a command opening the store meanwhile (``bluezone status``, a timer's
``check``) reads the mark from that report, and without it purged at the stepped clock (every sighting, a
year ahead).  And ``status``/``purge --dated-ahead`` count "ahead" from the time the daemon measured: a clock
stepped back a year made every sighting "dated ahead", and ``purge --dated-ahead`` deleted them all."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.boottime import boot_id, boot_seconds
from bluezone.clock import CheckedClock, VirtualClock
from bluezone.config import DaemonConfig
from bluezone.proximity.store import SightingStore

from .clock_helpers import SteppedWall, YEAR, me_and_a_neighbour
from .conftest import NOON, random_sightings


def test_a_step_not_believed_is_reported_within_a_flush(tmp_path: Path) -> None:
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    config = DaemonConfig()  # status every 60 s, flush every 5 s
    daemon, neighbour = me_and_a_neighbour(clock, virtual, store, clock, config)
    seen: list[object] = []

    async def both() -> None:
        async def step() -> None:
            await asyncio.sleep(1830)  # between two status lines (every 60 s from the start)
            wall.step = YEAR
            await asyncio.sleep(2 * config.flush_interval)
            seen.append((store.daemon_state() or {}).get("clock"))
        await asyncio.gather(daemon.run(1900), neighbour.run(1900), step())

    virtual.run(both())
    assert isinstance(seen[0], dict) and abs(seen[0]["off_by"] - YEAR) < 1, seen
    store.close()


def _stepped_back_store(path: Path) -> None:
    """Ten days of sightings up to NOON, and a daemon of this boot that does not believe its clock stepped a
    year back (it measured NOON)."""
    with SightingStore.open(path, purge_now=NOON) as store:
        for day in range(10):
            store.add_sightings(random_sightings(100, NOON - day * 86_400 - 7200, 3600, seed=day))
        mark = {"off_by": -YEAR, "measured": NOON, "boot_seconds": boot_seconds(), "boot_id": boot_id()}
        store.save_daemon_state({"backend": "emulated", "clock": mark}, NOON)


def test_a_clock_stepped_back_and_not_believed_dates_nothing_ahead(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    _stepped_back_store(path)
    back = {"clock": VirtualClock(NOON - YEAR)}
    shown = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj=back)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["dated_ahead"] == 0
    text = CliRunner().invoke(cli, ["status", "--db", str(path)], obj=back)
    assert "NOT BELIEVED" in text.stdout and "purge --dated-ahead" not in text.stdout
    done = CliRunner().invoke(cli, ["purge", "--dated-ahead", "--db", str(path), "--json"], obj=back)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["dated_ahead_deleted"] == 0
    with SightingStore.open(path, create=False, purge_now=NOON) as store:
        assert store.count_sightings() == 1000
