"""The 40-minute hold of a step not believed is kept in the daemon's report (``clock.hold``): a daemon restarted mid-hold
holds on from it (a restart began the hold again), and a command opening the store while the daemon is stopped believes
the step once the wall clock has kept to it 40 minutes, as the daemon would have (a daemon stopped mid-hold left every
command on the measured time for the rest of the boot: purging up to 3 days late, "clock NOT BELIEVED")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.boottime import boot_id, boot_seconds
from bluezone.cli import cli
from bluezone.clock import CheckedClock, VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
import bluezone.proximity.store.status as status_module
from bluezone.proximity.store import SightingStore

from .clock_helpers import SteppedWall, me_and_a_neighbour, run_stepped, store_of_ten_days
from .conftest import NOON, random_sightings

PAUSED = 2 * DAY_SECONDS  # a host paused the machine two days; NTP then stepped the wall clock


def test_a_daemon_restarted_mid_hold_believes_the_step_once_it_has_held_40_minutes(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    run_stepped(path, virtual, wall, PAUSED, 0.9)  # stopped 24 minutes into the hold
    with SightingStore.open(path, create=False) as store:
        state = store.daemon_state()
        assert state is not None and state["clock"]["hold"] is not None
    run_stepped(path, virtual, wall, PAUSED, 0.5)  # restarted: 30 minutes
    with SightingStore.open(path, create=False) as store:
        state = store.daemon_state()
        assert state is not None and "clock" not in state  # believed 16 minutes in; was: the hold began again
        assert store.sightings(since=NOON + PAUSED)["time"].min() < NOON + PAUSED + 0.9 * 3600 + 20 * 60


def _stopped_mid_hold(path: Path, minutes_ago: float) -> None:
    """A daemon whose wall clock stepped ``PAUSED`` half an hour in, stopped 10 minutes into the hold; its boot clock
    set so that the hold began ``minutes_ago`` before this boot's ``boot_seconds`` now (what a command reads)."""
    store = store_of_ten_days(path)
    store.add_sightings(random_sightings(40, NOON - 13 * DAY_SECONDS, 600, seed=98))  # 15 days old once believed
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    shift = boot_seconds() - minutes_ago * 60 - (NOON + 1800)
    clock = CheckedClock(wall, steady=lambda: virtual.now() + shift, synced=lambda: True)
    daemon, neighbour = me_and_a_neighbour(virtual, virtual, store, clock)

    async def run() -> None:
        async def resumed() -> None:
            await asyncio.sleep(1800)
            wall.step = PAUSED
        await asyncio.gather(daemon.run(2400), neighbour.run(2400), resumed())

    virtual.run(run())
    store.close()


@pytest.fixture
def kernel_synced(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """Set what the kernel says of the wall clock to a command opening the store (this machine's may say either)."""
    return lambda synced: monkeypatch.setattr(status_module, "kernel_clock_synced", lambda: synced)


@pytest.mark.parametrize("minutes_ago, believed", [(45, True), (25, False)])
def test_a_command_believes_a_stopped_daemons_step_once_it_has_held_40_minutes(
    tmp_path: Path, minutes_ago: float, believed: bool, kernel_synced: Callable[[bool], None]
) -> None:
    kernel_synced(True)
    path = tmp_path / "me.db"
    _stopped_mid_hold(path, minutes_ago)
    now = NOON + PAUSED + 1800 + minutes_ago * 60  # the wall clock, kept to the step
    done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(now)})
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert (shown["clock_not_believed_by"] is None) == believed  # was: not believed (for the rest of the boot)
    with SightingStore.open(path, create=False) as store:
        assert store.count_sightings(until=NOON) == (1000 if believed else 1040)  # purged at the wall clock, or not
    moved = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(now + 3600)})
    assert json.loads(moved.stdout)["clock_not_believed_by"] is not None  # off the step held: not believed


def test_a_command_does_not_believe_a_held_step_while_the_kernel_says_unsynchronised(
    tmp_path: Path, kernel_synced: Callable[[bool], None]
) -> None:
    """A daemon restarted 45 minutes into a hold believes the step only if the kernel says synchronised now (a date
    set by hand unsynchronises it: what the hold waits out); a command judging the stopped daemon's hold did not ask,
    so it believed such a step the daemon never would, and purged two days of sightings early (attack22)."""
    kernel_synced(False)
    path = tmp_path / "me.db"
    _stopped_mid_hold(path, 45)
    now = NOON + PAUSED + 1800 + 45 * 60  # the wall clock, kept to the step
    done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(now)})
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["clock_not_believed_by"] is not None  # was: None (believed)
    with SightingStore.open(path, create=False) as store:
        assert store.count_sightings(until=NOON) == 1040  # was: 1000 (purged at the stepped clock)


@pytest.mark.parametrize("hold", ["x", [1.0], ["nan", 1.0], [1.0, "inf"], [NOON, 1e12], {"wall": 1}])
def test_a_damaged_hold_is_ignored(tmp_path: Path, hold: object) -> None:
    with SightingStore.open(tmp_path / "me.db", purge_now=NOON) as store:
        mark = {"off_by": PAUSED, "measured": NOON, "boot_seconds": boot_seconds(), "boot_id": boot_id(), "hold": hold}
        store.save_daemon_state({"backend": "emulated", "clock": mark}, NOON)
        line = store.clock_hold()
        assert line is None or line == (NOON, 1e12)  # (read later than now: the commands' judgement refuses it)
        assert store.clock_step(NOON + PAUSED) is not None
