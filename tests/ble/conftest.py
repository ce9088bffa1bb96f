"""A private system bus with BlueZoo (Samsung's BlueZ D-Bus mock) on it, for the BlueZ path.

Each test gets its own ``dbus-daemon`` (system-bus type, permissive policy, socket in a temp
dir), ``DBUS_SYSTEM_BUS_ADDRESS`` pointing at it and ``bluezoo`` serving two adapters.  The
processes run in their own process groups and are killed even when the test fails.  Without
``dbus-daemon`` or bluezoo the tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

ADAPTERS = {0: "00:00:00:0A:00:0A", 1: "00:00:00:0B:00:0B"}
#: BlueZoo reports other adapters' adverts every this many seconds
SCAN_INTERVAL = 1

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>{extra}
  </policy>
</busconfig>
"""


def _missing() -> str | None:
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon not installed (Debian: apt-get install -y dbus)"
    if importlib.util.find_spec("bluezoo") is None:
        return "bluezoo not installed (pip install bluezoo)"
    return None


def require_bluezoo() -> None:
    """Skip when the tools are missing, but fail under CI=true: CI must run these tests."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"BlueZ integration tests cannot run: {reason}")
    pytest.skip(reason)


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    """End ``proc``'s process group (if still running) and close our ends of its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@dataclass
class BlueZoo:
    """Handles on the private bus and the mock; tests drive adapters through it."""

    tmp: Path
    bus_address: str
    adapters: dict[int, str]
    dbus_proc: subprocess.Popen[bytes]
    locked: bool = False
    zoo_proc: subprocess.Popen[bytes] | None = None
    log_files: list[Path] = field(default_factory=list)

    def start_zoo(self) -> None:
        """Start bluezoo (bluetoothd's stand-in) and wait until it owns org.bluez."""
        log = self.tmp / f"bluezoo{len(self.log_files)}.log"
        self.log_files.append(log)
        args = [sys.executable, "-c", "from bluezoo.bluezoo import main; main()", "--auto-enable",
                "--scan-interval", str(SCAN_INTERVAL)]
        for address in self.adapters.values():
            args += ["--adapter", address]
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        with log.open("wb") as out:  # bluezoo writes to its own copy of the descriptor
            self.zoo_proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not asyncio.run(self._zoo_ready()):
            if self.zoo_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bluezoo did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        if not self.locked:
            for index in self.adapters:
                asyncio.run(self.make_discoverable(index))

    async def make_discoverable(self, index: int) -> None:
        """BlueZoo reports an advert to other adapters only when it, or its adapter, is
        discoverable; bluezone's broadcast advert has no Discoverable property (real BlueZ
        rejects it for broadcast), so the mock adapter is made discoverable for good."""
        from dbus_fast import Variant

        path = f"/org/bluez/hci{index}"
        props = "org.freedesktop.DBus.Properties"
        await self.call(path, props, "Set", "ssv", ["org.bluez.Adapter1", "DiscoverableTimeout", Variant("u", 0)])
        await self.call(path, props, "Set", "ssv", ["org.bluez.Adapter1", "Discoverable", Variant("b", True)])

    def stop_zoo(self) -> None:
        """Kill bluezoo, as when bluetoothd dies."""
        _kill(self.zoo_proc)
        self.zoo_proc = None

    async def _zoo_ready(self) -> bool:
        if self.locked:  # clients may not call org.bluez at all: only wait for its name
            bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
            try:
                reply = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                               interface="org.freedesktop.DBus", member="NameHasOwner",
                                               signature="s", body=["org.bluez"]))
            finally:
                bus.disconnect()
            return bool(reply and reply.body and reply.body[0])
        try:
            objects = await self.call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        except RuntimeError:
            return False
        paths = set(objects[0])
        return all(f"/org/bluez/hci{i}" in paths for i in self.adapters)

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: list[object] | None = None) -> list[object]:
        """One call to org.bluez on the private bus, on a short-lived connection."""
        bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
        try:
            reply = await bus.call(Message(destination="org.bluez", path=path, interface=interface,
                                           member=member, signature=signature, body=body or []))
        finally:
            bus.disconnect()
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{reply.error_name}: {reply.body}")
        return list(reply.body)

    async def remove_adapter(self, index: int) -> None:
        await self.call("/org/bluezoo", "org.bluezoo.Manager1", "RemoveAdapter", "y", [index])

    async def add_adapter(self, index: int, address: str) -> None:
        await self.call("/org/bluezoo", "org.bluezoo.Manager1", "AddAdapter", "ys", [index, address])
        await self.make_discoverable(index)

    async def set_powered(self, index: int, on: bool) -> None:
        from dbus_fast import Variant

        await self.call(f"/org/bluez/hci{index}", "org.freedesktop.DBus.Properties", "Set", "ssv",
                        ["org.bluez.Adapter1", "Powered", Variant("b", on)])

    async def powered(self, index: int) -> bool:
        from dbus_fast import Variant

        (value,) = await self.call(f"/org/bluez/hci{index}", "org.freedesktop.DBus.Properties", "Get",
                                   "ss", ["org.bluez.Adapter1", "Powered"])
        assert isinstance(value, Variant)
        return bool(value.value)

    async def power_off(self, index: int) -> None:
        """Power an adapter off and wait until BlueZoo reports it off."""
        await self.set_powered(index, False)
        async with asyncio.timeout(10):
            while await self.powered(index):
                await asyncio.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_files if p.exists())


@contextlib.contextmanager
def running_bluezoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_policy: str = "") -> Iterator[BlueZoo]:
    """A private system bus and bluezoo on it; both process groups killed on the way out."""
    require_bluezoo()
    socket = tmp_path / "system_bus_socket"
    config = tmp_path / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket, extra=extra_policy))
    dbus_proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    zoo: BlueZoo | None = None
    try:
        assert dbus_proc.stdout is not None
        address = dbus_proc.stdout.readline().decode().strip()
        if not address:
            raise RuntimeError("dbus-daemon printed no address")
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        zoo = BlueZoo(tmp_path, address, dict(ADAPTERS), dbus_proc, locked=bool(extra_policy))
        zoo.start_zoo()
        yield zoo
    finally:
        if zoo is not None:
            zoo.stop_zoo()
        _kill(dbus_proc)


@pytest.fixture
def bluezoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlueZoo]:
    with running_bluezoo(tmp_path, monkeypatch) as zoo:
        yield zoo


@pytest.fixture
def locked_bluezoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlueZoo]:
    """BlueZoo on a bus whose policy forbids clients to call org.bluez (like a user outside
    the `bluetooth` group on Debian)."""
    with running_bluezoo(tmp_path, monkeypatch, '\n    <deny send_destination="org.bluez"/>') as zoo:
        yield zoo
