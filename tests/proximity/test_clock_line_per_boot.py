"""A daemon restarted in the same boot counts on from what its clock believed (``CheckedClock.line``, kept in its
report beside the boot id): a restart began a new line, so the 3 days a hold may make believed bounded each daemon
run, not the boot (a second pause of 2.9 days after a restart was believed: 5.8 days ahead, two days of sightings
purged as past the 14)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bluezone.clock import CheckedClock, VirtualClock, boot_id
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.runner import run_daemon
from bluezone.proximity.store import SightingStore

from .clock_helpers import SteppedWall, store_of_ten_days
from .conftest import NOON


def _run(path: Path, virtual: VirtualClock, wall: SteppedWall, step: float, hours: float) -> None:
    """One daemon run of ``hours`` on a new clock of this boot; half an hour in, the wall clock steps to ``step``."""
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)

    async def run() -> None:
        async def stepped() -> None:
            await asyncio.sleep(1800)
            wall.step = step
        await asyncio.gather(
            run_daemon("emulated:1", path, DaemonConfig(), hours * 3600, clock=clock, handle_signals=False), stepped()
        )

    virtual.run(run())


def test_a_restarted_daemon_keeps_the_bound_on_believed_steps_for_the_boot(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    _run(path, virtual, wall, 2.9 * DAY_SECONDS, 2)  # a host paused the machine 2.9 days: believed after the hold
    with SightingStore.open(path, create=False, purge_now=wall.now()) as store:
        state = store.daemon_state()
        assert state is not None and "clock" not in state and state["clock_line"]["boot_id"] == boot_id()
    _run(path, virtual, wall, 5.8 * DAY_SECONDS, 4)  # restarted, then paused 2.9 days again
    with SightingStore.open(path, create=False, purge_now=wall.now()) as store:
        state = store.daemon_state()
        assert state is not None and abs(state["clock"]["off_by"] - 2.9 * DAY_SECONDS) < 60  # not believed
        assert store.count_sightings(until=NOON) == 1000  # was 800: two days purged as past the 14
        assert store.sightings(since=NOON + 3 * DAY_SECONDS)["time"].max() < NOON + 3.2 * DAY_SECONDS


@pytest.mark.parametrize("kept", [
    "a line", {"anchor": [1.0, 2.0]}, {"anchor": ["nan", 1.0], "origin": None, "left": None},
    {"anchor": [1.0, 2.0, 3.0], "origin": None, "left": None}, {"anchor": None, "origin": None, "left": None},
    {"anchor": [1.0, "inf"], "origin": None, "left": None}, {"anchor": [1.0, 2.0], "origin": "x", "left": None},
])
def test_a_damaged_line_is_ignored(tmp_path: Path, kept: object) -> None:
    """A hand-edited or torn report counts from nothing (a new line, as before), and crashes nothing."""
    with SightingStore.open(tmp_path / "me.db", purge_now=NOON) as store:
        store.save_daemon_state({"backend": "emulated", "clock_line": {**kept, "boot_id": boot_id()}
                                 if isinstance(kept, dict) else kept}, NOON)
        assert store.believed_line() is None
        store.save_daemon_state({"clock_line": {"anchor": [NOON, 1.0], "origin": None, "left": None,
                                                "boot_id": "another boot"}}, NOON)
        assert store.believed_line() is None
        store.save_daemon_state({"clock_line": {"anchor": [NOON, 1.0], "origin": None, "left": [NOON, 0.5],
                                                "boot_id": boot_id()}}, NOON)
        assert store.believed_line() == ((NOON, 1.0), None, (NOON, 0.5))
    assert json.dumps(kept)  # (the parameters are JSON, as the report is)
