"""A daemon restarted in the same boot counts on from what its clock believed (``CheckedClock.line``, kept in its
report beside the boot id): a restart began a new line, so the 3 days a hold may make believed bounded each daemon
run, not the boot (a second pause of 2.9 days after a restart was believed: 5.8 days ahead, two days of sightings
purged as past the 14).  A command opening the store while the daemon is stopped judges by that line too where no
daemon would believe the clock (a year ahead: the first command purged every sighting and this device's keys)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bluezone.boottime import BELIEVED_STEP, boot_id
from bluezone.clock import CheckedClock, VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.store import SightingStore

from click.testing import CliRunner

from bluezone.cli import cli

from .clock_helpers import SteppedWall, YEAR, leave_a_line, me_and_a_neighbour, run_stepped, store_of_ten_days
from .conftest import NOON


def test_a_restarted_daemon_keeps_the_bound_on_believed_steps_for_the_boot(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    run_stepped(path, virtual, wall, 2.9 * DAY_SECONDS, 2)  # a host paused the machine 2.9 days: believed after the hold
    with SightingStore.open(path, create=False, purge_now=wall.now()) as store:
        state = store.daemon_state()
        assert state is not None and "clock" not in state and state["clock_line"]["boot_id"] == boot_id()
    run_stepped(path, virtual, wall, 5.8 * DAY_SECONDS, 4)  # restarted, then paused 2.9 days again
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


def _status(path: Path, now: float) -> dict:
    done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(now)})
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_a_command_while_the_daemon_is_stopped_purges_no_further_than_the_daemon_could_believe(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_line(path, NOON)  # the daemon believed the clock at NOON, then stopped; then a bad answer a year ahead
    shown = _status(path, NOON + YEAR)
    assert (shown["sightings"], shown["daily_keys"]) == (1000, 10)  # was (0, 0): every sighting and key purged
    assert abs(shown["clock_not_believed_by"] - YEAR) < 600
    text = CliRunner().invoke(cli, ["status", "--db", str(path)], obj={"clock": VirtualClock(NOON + YEAR)}).stdout
    assert "clock      NOT BELIEVED: the wall clock stepped +8760.0 h" in text


@pytest.mark.parametrize("origin, ahead, believed", [
    (None, BELIEVED_STEP - 3600, True),  # within the bound: only the daemon's hold can tell, so the wall clock
    (NOON - 2 * DAY_SECONDS, BELIEVED_STEP - 3600, False),  # a day's believed step already: 2 more are past the bound
    (None, BELIEVED_STEP + 3 * 3600, False),
])
def test_the_bound_counts_from_where_the_boots_believed_steps_began(
    tmp_path: Path, origin: float | None, ahead: float, believed: bool
) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_line(path, NOON, origin)
    assert (_status(path, NOON + ahead)["clock_not_believed_by"] is None) == believed


def test_another_boots_line_judges_nothing(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_line(path, NOON, same_boot=False)
    assert _status(path, NOON + YEAR)["sightings"] == 0  # a device off for a year keeps nothing, as before


def test_a_command_reads_the_line_without_importing_asyncio(tmp_path: Path) -> None:
    """Every command's open judges by the daemon's line now (a daemon of this version always leaves one): through
    ``bluezone.boottime``, not ``bluezone.clock``, whose asyncio (~25 ms) a check never needs."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_line(path, NOON)
    code = (f"import sys; from bluezone.proximity.store import SightingStore\n"
            f"with SightingStore.open({str(path)!r}, create=False, purge_now={NOON + YEAR}) as s: print(s.count_sightings())\n"
            "print(' '.join(m for m in sys.modules if m == 'asyncio' or m == 'bluezone.clock'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["1000", ""]


def test_a_daemon_does_not_believe_a_bad_answer_after_ntp_was_blocked(tmp_path: Path) -> None:
    """The daemon on the virtual clock: NTP blocked half an hour in (the kernel says unsynchronised), then its first
    answer, at two hours, a year ahead (synchronised again).  Was: the anchor dropped with the synchronisation, the
    year believed, and every sighting and daily key purged at the next tick.  (The air runs on the virtual clock, the
    real time: on the daemon's clock a believed year would have it deliver a year of adverts at once.)"""
    store = store_of_ten_days(tmp_path / "me.db")
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    synced = [True]
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: synced[0])
    daemon, neighbour = me_and_a_neighbour(virtual, virtual, store, clock)

    async def run() -> None:
        async def ntp() -> None:
            await asyncio.sleep(1800)
            synced[0] = False
            await asyncio.sleep(5400)
            wall.step, synced[0] = YEAR, True
        await asyncio.gather(daemon.run(4.5 * 3600), neighbour.run(4.5 * 3600), ntp())  # two purge ticks after the step

    virtual.run(run())
    assert store.count_sightings(until=NOON) == 1000 and len(store.daily_keys()) >= 10  # was 0 and 0
    state = store.daemon_state()
    assert state is not None and abs(state["clock"]["off_by"] - YEAR) < 60
    store.close()
