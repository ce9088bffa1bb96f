"""Two bluezone daemons on two BlueZoo adapters, through the real store: the whole BlueZ path.

RPIs change with the 10-minute interval number, so the nodes run on a fast clock (one real
second = ten clock minutes) and rotate every 1.5-2 real seconds: each rotation is a new RPI.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.crypto.keys import rpi_key
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.crypto.derivation import rpi
from bluezone.proximity.backends import open_radio
from bluezone.proximity.backends.bluez import BluezRadio
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

from .conftest import BlueZoo

pytestmark = pytest.mark.timeout(90)
T = TypeVar("T")

SPEED = 600.0  # clock seconds per real second
START = 1_700_006_400.0 // DAY_SECONDS * DAY_SECONDS + 3600.0  # 01:00 UTC, far from midnight
# the daemon times rotations and flushes with the event loop (real seconds here) and stamps
# them with the clock: each 1.5-2 s rotation lands in a new 10-minute interval
CONFIG = DaemonConfig(rpi_rotation_min=1.5, rpi_rotation_max=2.0, flush_interval=0.2)


class FastClock:
    """Wall-clock time running SPEED times faster; sleeps shrink to match."""

    def __init__(self, start: float, speed: float) -> None:
        self.start, self.speed, self.t0 = start, speed, time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self.t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """How a command runs a daemon on this clock (``cli(obj={"clock": ...})``): real time."""
        return asyncio.run(coro)


class Node:
    def __init__(self, adapter: str, tmp: Path, clock: FastClock) -> None:
        self.radio = open_radio(f"bluez:{adapter}", clock=clock)
        assert isinstance(self.radio, BluezRadio)
        self.radio.backoff = (0.2, 1.0)
        self.store = SightingStore.open(tmp / f"{adapter}.db")
        self.daemon = Daemon(self.radio, self.store, clock, CONFIG, on_status=lambda _: None)
        self.task: asyncio.Task[object] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.daemon.run())

    async def stop(self) -> None:
        self.daemon.stop()
        assert self.task is not None
        await self.task
        self.store.close()

    def advertised(self) -> set[bytes]:
        """Every RPI this node has broadcast so far."""
        key = self.daemon.key
        assert key is not None
        rpik = rpi_key(key.key)
        return {rpi(rpik, interval) for _, interval in self.daemon.rotations}

    def logged(self) -> set[bytes]:
        self.daemon._flush()  # what the writer would write at its next flush
        return {bytes(r) for r in self.store.sightings()["rpi"]}


async def wait_for(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.1)
    assert check(), what


@pytest.mark.slow
async def test_two_daemons_log_each_others_rotating_rpis_and_survive_adapter_loss(
    bluezoo: BlueZoo, tmp_path: Path
) -> None:
    clock = FastClock(START, SPEED)
    a, b = Node("hci0", tmp_path, clock), Node("hci1", tmp_path, clock)
    a.start()
    b.start()
    try:
        await wait_for(lambda: len(a.logged()) >= 3 and len(b.logged()) >= 3, "three RPIs each way")
        assert a.logged() <= b.advertised() and b.logged() <= a.advertised()
        assert not a.logged() & a.advertised(), "a node never logs itself"
        rows = a.store.sightings()
        assert np.all(rows["time"] >= START) and np.all(rows["rssi"] == 0)  # BlueZoo's RSSI

        # unplug a's adapter and plug it back: both daemons keep running and keep logging
        stored_before = a.store.count_sightings()
        await bluezoo.remove_adapter(0)
        await wait_for(lambda: a.radio.health()["adapter_removed"] == 1, "removal noticed")
        await bluezoo.add_adapter(0, bluezoo.adapters[0])
        await wait_for(lambda: a.radio.health()["state"] == "up", "a recovered")
        seen_b, seen_a = a.logged(), b.logged()
        await wait_for(lambda: len(b.logged() - seen_a) >= 2, "b hears a's new RPIs after the re-add")
        await wait_for(lambda: len(a.logged() - seen_b) >= 2, "a hears b's new RPIs after the re-add")
        assert a.store.count_sightings() >= stored_before  # nothing already received was lost
        assert b.logged() <= a.advertised()
        assert a.radio.health()["recoveries"] == 1 and a.task is not None and not a.task.done()
    finally:
        await a.stop()
        await b.stop()
    assert a.daemon.stats.malformed == 0 and b.daemon.stats.malformed == 0


async def test_garbage_from_a_nearby_device_is_dropped_and_counted(bluezoo: BlueZoo, tmp_path: Path) -> None:
    """A wrong-length 0xFD6F payload reaches the daemon and is counted malformed, never stored."""
    clock = FastClock(START, SPEED)
    junk = BluezRadio("hci0")
    b = Node("hci1", tmp_path, clock)
    async with junk:
        await junk.advertise(b"\x00" * 19, -10)
        b.start()
        try:
            await wait_for(lambda: b.daemon.stats.malformed >= 1, "malformed counted")
            await junk.advertise(b"\xff" * 25, -10)
            await wait_for(lambda: b.daemon.stats.malformed >= 2, "second malformed counted")
        finally:
            await b.stop()
    with SightingStore.open(tmp_path / "hci1.db") as store:
        assert store.count_sightings() == 0


def test_run_command_on_bluez(bluezoo: BlueZoo, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    # a clock in real time from 01:05 UTC: two seconds of the wall clock may cross midnight (a second
    # daily key, and its RPI)
    result = CliRunner().invoke(cli, ["run", "--backend", "bluez", "--adapter", "hci1", "--db", str(db),
                                      "--duration", "2"], obj={"clock": FastClock(START + 300, 1.0)})
    assert result.exit_code == 0, result.output
    assert "stopped:" in result.output and "1 RPI(s)" in result.output
    with SightingStore.open(db) as store:
        assert len(store.daily_keys()) == 1


def test_run_auto_without_bluetooth_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/none")
    result = CliRunner().invoke(cli, ["run", "--backend", "auto", "--db", str(tmp_path / "x.db"), "--duration", "1"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: no usable Bluetooth"), result.output
    assert "emulated" in lines[0] and "bumble:usb:0" in lines[0]


def test_bad_backend_spec_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--backend", "bluez:wlan0", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "hci0" in result.output


def test_service_uuid_constant_is_what_bluez_reports() -> None:
    assert SERVICE_UUID == "0000fd6f-0000-1000-8000-00805f9b34fb"


def test_run_status_and_doctor_say_when_the_adapter_is_not_the_one_calibrated(bluezoo: BlueZoo, tmp_path: Path) -> None:
    """A config calibrated on hci0 (by its address) used with hci1 (a dongle swapped, the config copied to another
    node): its numbers are another adapter's, and run, status and doctor said nothing.  By address, not by name."""
    config, db = tmp_path / "daemon.toml", tmp_path / "run.db"
    config.write_text(
        'tx_power = -19\nrssi_correction = 4\ncalibration_adapter = "00:00:00:0a:00:0a"\ncalibration = "bluezone'
        ' calibrate 2026-12-07 10:00 UTC on adapter 00:00:00:0A:00:0A: 1 m from Pixel 4, 800 adverts, RSSI correction'
        ' +4 dB, TX power -19 dBm"\n'
    )
    said = "calibrated on adapter 00:00:00:0a:00:0a, but this is adapter 00:00:00:0B:00:0B"
    run = CliRunner().invoke(cli, ["run", "--backend", "bluez", "--adapter", "hci1", "--db", str(db), "--duration",
                                   "2", "--config", str(config)])
    assert run.exit_code == 0, run.output
    assert said in run.output and "bluezone calibrate` on this one" in run.output
    status = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert f"(ANOTHER ADAPTER: {said}" in status.output, status.output
    doctor = CliRunner().invoke(cli, ["doctor", "--adapter", "hci1", "--scan-seconds", "0", "--config", str(config)])
    assert f"[warn] calibration-adapter: {said}" in doctor.output, doctor.output
    same = CliRunner().invoke(cli, ["doctor", "--adapter", "hci0", "--scan-seconds", "0", "--config", str(config)])
    assert "calibrated on this adapter (00:00:00:0A:00:0A)" in same.output and said not in same.output
    hci0 = CliRunner().invoke(cli, ["run", "--backend", "bluez", "--adapter", "hci0", "--db", str(db), "--duration",
                                    "2", "--config", str(config)])
    assert hci0.exit_code == 0 and "calibrated on adapter" not in hci0.output, hci0.output


def test_run_on_bluez_says_when_the_adapter_is_uncalibrated(bluezoo: BlueZoo, tmp_path: Path) -> None:
    from bluezone.config import default_config_path

    db = tmp_path / "run.db"
    args = ["run", "--backend", "bluez", "--adapter", "hci1", "--db", str(db), "--duration", "2"]
    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 0, plain.output
    assert "uncalibrated: TX power -24 dBm" in plain.output and "bluezone calibrate" in plain.output
    path = default_config_path()  # where bluezone calibrate writes; run reads it without --config
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text('tx_power = -19\nrssi_correction = 4\ncalibration = "bluezone calibrate: 1 m from Pixel 4"\n')
        calibrated = CliRunner().invoke(cli, args)
        status = CliRunner().invoke(cli, ["status", "--db", str(db)])
    finally:
        path.unlink()
    assert calibrated.exit_code == 0 and "uncalibrated" not in calibrated.output
    assert "calibration bluezone calibrate: 1 m from Pixel 4" in status.output
