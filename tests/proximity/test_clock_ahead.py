"""A wall clock that steps a year ahead while NTP had it in hand (a bad answer, a clock set by hand): the
daemon's purge deleted every sighting and this device's own daily keys as past the 14 days (held one tick,
then done), and stamped what it heard a year ahead, rows that would then outlive the retention by a year.
Now the daemon's clock (``CheckedClock``) does not believe the step, and a command opening the store
meanwhile purges at the time the daemon measured; data really older than 14 days still goes."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.boottime import boot_id
from bluezone.clock import HOLD_SECONDS, START_A_TIME_DAEMON, UNSYNCHRONISED, CheckedClock, VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.store import SightingStore

from .clock_helpers import SteppedWall, YEAR, leave_a_mark, me_and_a_neighbour, store_of_ten_days
from .conftest import NOON, random_sightings

def test_a_daemon_whose_clock_steps_a_year_ahead_keeps_its_data_and_stamps_the_measured_time(tmp_path: Path) -> None:
    store = store_of_ten_days(tmp_path / "me.db")
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    # the radio stamps what it hears with the daemon's clock, as run_daemon opens it
    daemon, neighbour = me_and_a_neighbour(clock, virtual, store, clock)

    async def both() -> None:
        async def step() -> None:
            await asyncio.sleep(1800)
            wall.step = YEAR  # half an hour in: the clock reads a year ahead
        await asyncio.gather(daemon.run(4 * 3600), neighbour.run(4 * 3600), step())

    virtual.run(both())
    assert store.count_sightings(until=NOON - 14 * DAY_SECONDS) == 0  # the really old ones went at start
    assert store.count_sightings(until=NOON) == 1000  # ten days kept through four hourly purges
    assert len(store.daily_keys()) >= 10
    heard = store.sightings(since=NOON)
    assert len(heard) > 1000 and heard["time"].max() <= NOON + 4 * 3600  # stamped at the measured time
    state = store.daemon_state()
    assert state is not None and abs(state["clock"]["off_by"] - YEAR) < 1 and state["clock"]["boot_id"] == boot_id()
    store.close()


def test_a_daemon_in_a_virtual_machine_its_host_paused_believes_the_step_once_it_holds(tmp_path: Path) -> None:
    """The host paused the guest two days (its boot clock stood still too), then NTP stepped the wall clock: the
    daemon stamps at the measured time while the step holds (40 min), then at the wall clock, and purges at it: what
    is really past the 14 days goes.  Before, it stamped two days behind until a reboot (exposures missed)."""
    store = store_of_ten_days(tmp_path / "me.db")
    store.add_sightings(random_sightings(40, NOON - 13 * DAY_SECONDS, 600, seed=98))  # 15 days old once believed
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    clock = CheckedClock(wall, steady=virtual.now, synced=lambda: True)
    daemon, neighbour = me_and_a_neighbour(clock, virtual, store, clock)
    paused = 2 * DAY_SECONDS

    async def both() -> None:
        async def resumed() -> None:
            await asyncio.sleep(1800)
            wall.step = paused
        await asyncio.gather(daemon.run(4 * 3600), neighbour.run(4 * 3600), resumed())

    virtual.run(both())
    held = store.sightings(since=NOON, until=NOON + paused)["time"]
    assert len(held) > 0 and held.max() < NOON + 4 * 3600  # the hold: at the measured time (the emulated air then
    # delivers what was due up to the wall clock's jump, at the times it was due: sightings up to ~NOON + 2 h)
    after = store.sightings(since=NOON + paused)["time"]
    assert len(after) > 1000 and after.min() >= NOON + paused + 1800 + HOLD_SECONDS - 60  # then at the wall clock
    assert store.count_sightings(until=NOON - 12 * DAY_SECONDS) == 0  # really past the 14 days: purged
    assert store.count_sightings(since=NOON - 12 * DAY_SECONDS, until=NOON) == 1000  # the ten days kept
    state = store.daemon_state()
    assert state is not None and "clock" not in state  # believed: commands purge at the wall clock again
    store.close()


def test_a_command_opening_the_store_meanwhile_purges_at_the_measured_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_mark(path, NOON)
    done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON + YEAR)})
    assert done.exit_code == 0, done.output
    info = json.loads(done.stdout)
    assert info["sightings"] == 1000 and info["daily_keys"] >= 10
    assert "the store is purged at the measured time" in caplog.text
    text = CliRunner().invoke(cli, ["status", "--db", str(path)], obj={"clock": VirtualClock(NOON + YEAR)})
    assert "clock      NOT BELIEVED: the wall clock stepped +8760.0 h" in text.stdout
    doctor = CliRunner().invoke(cli, ["doctor", "--scan-seconds", "0", "--db", str(path), "--json"],
                                obj={"clock": VirtualClock(NOON + YEAR)})
    [clock] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "clock"]
    assert clock["status"] == "warn" and "does not believe the wall clock" in clock["detail"]
    with SightingStore.open(path, create=False, purge_now=NOON + YEAR) as store:
        assert store.count_sightings() == 1000  # nothing of it deleted by status, doctor or this open


def test_a_stopped_daemons_old_mark_warns_of_nothing_once_the_clock_agrees(tmp_path: Path) -> None:
    """The daemon stopped while it did not believe a step, and the clock was put right since: `status` said "clock
    NOT BELIEVED" and `doctor` warned for the rest of the boot (cosmetic: the purge already used the wall clock)."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_mark(path, NOON)
    right = {"clock": VirtualClock(NOON + 120), "clock_synced": True}
    text = CliRunner().invoke(cli, ["status", "--db", str(path)], obj=right)
    assert text.exit_code == 0, text.output
    assert "radio      emulated" in text.stdout and "clock" not in text.stdout
    shown = json.loads(CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj=right).stdout)
    assert shown["clock_not_believed_by"] is None and shown["clock_synchronised"] is True
    doctor = CliRunner().invoke(cli, ["doctor", "--scan-seconds", "0", "--db", str(path), "--json"], obj=right)
    [clock] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "clock"]
    assert clock["status"] == "ok" and "synchronised by a time daemon" in clock["detail"]
    ahead = {"clock": VirtualClock(NOON + YEAR), "clock_synced": True}  # while it still disagrees, it still warns
    shown = json.loads(CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj=ahead).stdout)
    assert abs(shown["clock_not_believed_by"] - YEAR) < 600


def test_a_clock_no_time_daemon_keeps_is_said_unguarded_in_status_and_doctor(tmp_path: Path) -> None:
    """Not guarded (a date set wrong by hand, a clock wrong since boot: nothing to check a step by, and the store
    alone cannot tell a wrong date from a device off for weeks), so said plainly where the user looks."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    with SightingStore.open(path, create=False, purge_now=NOON) as store:
        store.save_daemon_state({"backend": "emulated"}, NOON)
    loose = {"clock": VirtualClock(NOON), "clock_synced": False}
    text = CliRunner().invoke(cli, ["status", "--db", str(path)], obj=loose)
    assert "clock      not synchronised" in text.stdout and "is not guarded" in text.stdout
    assert "timedatectl set-ntp true" in text.stdout
    assert json.loads(CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj=loose).stdout)[
        "clock_synchronised"] is False
    doctor = CliRunner().invoke(cli, ["doctor", "--scan-seconds", "0", "--db", str(path), "--json"], obj=loose)
    [clock] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "clock"]
    assert clock["status"] == "warn" and "not guarded" in clock["detail"] and "set-ntp" in clock["fix"]


def test_after_a_reboot_the_clock_is_believed_as_before(tmp_path: Path) -> None:
    """Another boot's measured time measures nothing against this one's: a device off for a year keeps nothing."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_mark(path, NOON, same_boot=False)
    with SightingStore.open(path, create=False, purge_now=NOON + YEAR) as store:
        assert store.count_sightings() == 0 and store.daily_keys() == []


def test_a_venue_check_in_meanwhile_is_stamped_at_the_measured_time(tmp_path: Path) -> None:
    """A QR check-in while the daemon does not believe a step a year ahead: stamped at the wall clock it would be
    kept (and shown open) for a year; at the measured time it ends and goes with the 14 days like the sightings."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    leave_a_mark(path, NOON)
    ahead = {"clock": VirtualClock(NOON + YEAR)}
    made = CliRunner().invoke(cli, ["venue", "create", "--name", "Café", "--address", "1 Main St", "--default-minutes", "45",
                                    "--out", str(tmp_path / "cafe"), "--json"], obj={"clock": VirtualClock(NOON)})
    assert made.exit_code == 0, made.output
    url = json.loads(made.stdout)["url"]
    done = CliRunner().invoke(cli, ["checkin", url, "--db", str(path), "--json"], obj=ahead)
    assert done.exit_code == 0, done.output
    visit = json.loads(done.stdout)["checkin"]
    assert abs(_seconds(visit["start"]) - NOON) < 60 and _seconds(visit["end"]) <= NOON + 46 * 60
    listed = CliRunner().invoke(cli, ["checkins", "--db", str(path), "--json"], obj=ahead)
    assert [row["open"] for row in json.loads(listed.stdout)["checkins"]] == [True]
    out = CliRunner().invoke(cli, ["checkout", "--db", str(path), "--json"], obj=ahead)
    assert out.exit_code == 0, out.output
    assert _seconds(json.loads(out.stdout)["end"]) <= NOON + 60


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.mark.parametrize("mark", [
    "a year", ["measured"], {"measured": "nan", "boot_seconds": 1.0}, {"measured": "inf", "boot_seconds": 1.0},
    {"measured": 1.0, "boot_seconds": "-inf"}, {"measured": "soon", "boot_seconds": 1.0}, {"boot_seconds": 1.0},
])
def test_a_damaged_clock_mark_is_ignored_and_the_store_purged_as_it_reads(tmp_path: Path, mark: object) -> None:
    """A report whose clock mark is damaged (hand-edited, a torn write) measures nothing: no crash, and no purge at a
    time that is no time (``float("nan")`` parses); the wall clock is believed as it reads."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    if isinstance(mark, dict):
        mark = {**mark, "boot_id": boot_id()}
    with SightingStore.open(path, create=False, purge_now=NOON) as store:
        store.save_daemon_state({"backend": "emulated", "clock": mark}, NOON)
        assert store.measured_clock() is None and store.believed_time(NOON + 60) == NOON + 60
    done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(NOON)})
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["sightings"] == 1000


def _clock_field(stdout: str) -> list[str]:
    """``status``'s clock field: its first line and the lines wrapped under it."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("clock "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" " * 11)), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("believed", [False, True], ids=["unsynchronised", "not-believed"])
def test_status_clock_field_fits_80_columns_and_says_all_of_it(tmp_path: Path, believed: bool) -> None:
    """It was one line of 340-430 characters; wrapped, every word is still there, in order, and a command it gives
    is on one line."""
    path = tmp_path / "me.db"
    store_of_ten_days(path).close()
    if believed:
        leave_a_mark(path, NOON)
        obj: dict[str, object] = {"clock": VirtualClock(NOON + YEAR), "clock_synced": True}
        said = ("NOT BELIEVED: the wall clock stepped +8760.0 h", "(check the time source: `timedatectl timesync-status`)",
                "reboot: a new boot believes it")
    else:
        with SightingStore.open(path, create=False, purge_now=NOON) as store:
            store.save_daemon_state({"backend": "emulated"}, NOON)
        obj = {"clock": VirtualClock(NOON), "clock_synced": False}
        said = (f"{UNSYNCHRONISED} ({START_A_TIME_DAEMON})",)
    text = CliRunner().invoke(cli, ["status", "--db", str(path)], obj=obj)
    assert text.exit_code == 0, text.output
    field = _clock_field(text.stdout)
    assert len(field) > 1 and max(len(line) for line in field) <= 80
    words = " ".join(" ".join(field).split()).removeprefix("clock ")
    assert all(part in words for part in said)
    commands = re.findall(r"`[^`]*`", " ".join(said))  # each on one line, to be copied whole
    assert commands and all(any(command in line for line in field) for command in commands)
