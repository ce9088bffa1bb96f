"""``bluezone doctor``: check, step by step, that this machine can run a real Bluetooth node.

Each check says what it found and, when it fails, what to do; the first hard failure stops
the checks that depend on it.  The CLI prints the list or ``--json``.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bluezone.config import DaemonConfig
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.errors import BluezCallError, RadioUnavailableError, RadioUnavailableReason, StoreError, StoreWriteError
from bluezone.printable import printable_line
from bluezone.proximity.backends.bluez_dbus import (
    AdapterInfo,
    bluez_version,
    connect_system_bus,
    list_adapters,
)
from bluezone.proximity.backends.real import ALTERNATIVES
from bluezone.proximity.store import SightingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``status`` is ``ok``, ``warn`` or ``fail``; ``fix`` says what to do."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Report:
    """Everything ``bluezone doctor`` found: its checks in order, the adapter and facts."""

    checks: list[Check] = field(default_factory=list)
    adapter: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "adapter": self.adapter, "facts": self.facts,
                "checks": [asdict(c) for c in self.checks]}


async def diagnose(
    adapter: str | None = None, scan_seconds: float = 10.0, config: DaemonConfig | None = None,
    config_problem: str | None = None, store: Path | None = None, now: float | None = None,
    clock_synced: bool | None = None,
) -> Report:
    """Run every check against the system bus (``DBUS_SYSTEM_BUS_ADDRESS`` honoured).

    ``config`` is the daemon's (for its calibration); None checks the defaults, uncalibrated.
    ``config_problem``: why the daemon's config could not be read (`bluezone run` would refuse it).
    ``store``: the sighting database to read through for damage (None: not checked), purged at ``now``
    as every command that opens it purges it (the CLI's clock; None: at its newest record).
    ``clock_synced``: whether a time daemon keeps the wall clock synchronised (None: not checked).
    """
    report = Report()
    version = await bluez_version()
    report.facts["bluez_version"] = version
    _check_version(report, version)
    check_kernel(report, os.uname().release)
    _check_groups(report)
    if config_problem is not None:
        report.add("daemon-config", "fail", config_problem,
                   "correct or remove that setting (`bluezone calibrate` writes the calibration ones)")
    else:
        check_calibration(report, config or DaemonConfig())
    if store is not None:
        check_sighting_database(report, store, now)
    if clock_synced is not None and not any(c.name == "clock" for c in report.checks):
        check_clock_synced(report, clock_synced)
    try:
        bus = await connect_system_bus()
    except RadioUnavailableError as exc:
        report.add("system-bus", "fail", exc.what, exc.fix)
        return report
    report.add("system-bus", "ok", "connected to the system D-Bus")
    try:
        try:
            adapters = await list_adapters(bus)
        except RadioUnavailableError as exc:
            report.add("bluetoothd", "fail", exc.what, exc.fix)
            return report
        except BluezCallError as exc:
            fix = RadioUnavailableReason.BLUETOOTHD_NOT_RUNNING.fix
            report.add("bluetoothd", "fail", f"BlueZ did not answer: {exc}", fix)
            return report
        report.add("bluetoothd", "ok", "bluetoothd answers on D-Bus")
        info = _pick_adapter(report, adapters, adapter)
        if info is None:
            return report
        if config_problem is None:
            check_calibration_adapter(report, config or DaemonConfig(), info.address)
        _check_advertising(report, info)
        _check_passive(report, info)
        if scan_seconds > 0:
            await _check_scan(report, info, scan_seconds)
    finally:
        bus.disconnect()
    return report


def check_calibration_adapter(report: Report, config: DaemonConfig, address: str) -> None:
    """Whether the calibration was made on this adapter (by its address; names such as hci0 follow the plugging
    order): another adapter's numbers are used all the same, off by as much as adapters differ."""
    other = config.on_another_adapter(address)
    if other is not None:
        report.add("calibration-adapter", "warn", other,
                   "run `bluezone calibrate` on this adapter, or give --adapter the one calibrated")
    elif config.calibration_adapter:
        report.add("calibration-adapter", "ok", f"calibrated on this adapter ({address})")


def check_clock_synced(report: Report, synced: bool) -> None:
    """A clock no time daemon keeps is believed as it reads (``CheckedClock`` has nothing to check a step by): say so,
    since a date set wrong there deletes or misplaces sightings unguarded."""
    from bluezone.clock import START_A_TIME_DAEMON, UNSYNCHRONISED

    if synced:
        report.add("clock", "ok", "synchronised by a time daemon: the daemon checks a step of it against the time"
                   " measured since boot")
    else:
        report.add("clock", "warn", UNSYNCHRONISED, START_A_TIME_DAEMON)


def _check_version(report: Report, version: str | None) -> None:
    """BlueZ before 5.47 knows no ``DuplicateData`` discovery filter and refuses a filter holding an unknown key
    (src/adapter.c ``parse_discovery_filter_entry`` of 5.46): the active scan asks for it (ACTIVE_SCAN_FILTERS)."""
    if not version:
        report.add("bluez-version", "warn", "bluetoothd binary not found here", "install BlueZ (apt install bluez)")
        return
    try:
        numbers = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        numbers = ()
    if numbers and numbers < (5, 47):
        report.add("bluez-version", "warn",
                   f"bluetoothd {version}: too old for bluezone's scan (BlueZ before 5.47 refuses its DuplicateData"
                   " filter)", "BlueZ 5.47 or newer (Debian 10 and Raspberry Pi OS buster have 5.50)")
    else:
        report.add("bluez-version", "ok", f"bluetoothd {version}")


def check_kernel(report: Report, release: str) -> None:
    """The scan bluezone picks on BlueZ is the active one, and kernels before 5.7 stop LE advertising while an
    active discovery runs: the node would hear others but go unheard."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", release)[:2])
    if len(numbers) == 2 and numbers < (5, 7):
        report.add("kernel", "warn",
                   f"Linux {printable_line(release)} stops LE advertising while an active scan runs: phones near"
                   " this node may not hear it",
                   "a kernel 5.7 or newer (Raspberry Pi OS bookworm's is 6.x), or the bumble backend on a controller"
                   " of its own (docs/bluetooth.md)")
    else:
        report.add("kernel", "ok", f"Linux {printable_line(release)}")


def check_calibration(report: Report, config: DaemonConfig) -> None:
    """An uncalibrated adapter works, but its attenuations (and those others compute from its AEM) can be 10 dB off."""
    report.facts["tx_power"] = config.tx_power
    report.facts["rssi_correction"] = config.rssi_correction
    if config.calibrated:
        report.add("calibration", "ok", config.calibration)
        return
    edited = config.edited_since_calibration()
    if edited is not None:
        report.add("calibration", "warn", f"edited since bluezone calibrate: {edited}; the edited number is the one used",
                   "set the calibrated number back, or run `bluezone calibrate` again")
        return
    report.add(
        "calibration",
        "warn",
        f"uncalibrated: {config.uncalibrated_numbers()}; "
        "a Linux adapter's RSSI can be 10 dB off a phone's, which moves who counts as a close contact",
        "run `bluezone calibrate --reference MODEL` with an Android phone from Google's table 1 m away "
        "(or --reference-radio with a calibrated adapter); see README",
    )


#: What to do with a damaged store (the same advice as the store's own one-line error).
_DAMAGED_FIX = "move it away (`bluezone run` starts a new one) or restore a copy; check the disk (dmesg, smartctl)"


def check_sighting_database(report: Report, path: Path, now: float | None = None) -> None:
    """Read every page of the sighting database (SQLite's ``quick_check``): opening reads only what
    it needs, so damage elsewhere would show only when some later check or upload reached it.
    Opening purges it at ``now``, as every other command's opening does."""
    if not path.exists():
        report.add("sighting-store", "warn", f"no sighting database at {path} yet", "`bluezone run` makes it")
        return
    started = time.monotonic()
    try:
        with SightingStore.open(path, create=False, purge_now=now) as store:
            damage = store.damage()
            # how far this clock reads from the daemon's measured time while it does not believe a step of it
            step = store.clock_step(time.time() if now is None else now)
    except StoreWriteError as exc:  # locked or busy now: no finding about the file itself
        report.add("sighting-store", "warn", f"could not read it now: {exc}", "run `bluezone doctor` again")
        return
    except StoreError as exc:  # damaged, another program's file, or a newer bluezone's (the line says which)
        report.add("sighting-store", "fail", str(exc), _DAMAGED_FIX if "not a usable sighting database" in str(exc) else "")
        return
    seconds = time.monotonic() - started
    report.facts["store_check_seconds"] = round(seconds, 2)
    if step is not None:
        report.add(
            "clock", "warn", f"the daemon does not believe the wall clock: it stepped {step / 3600:+.1f} h since it was"
            " synchronised in this boot (a bad NTP answer, a date set by hand), so sightings are stamped and purged at the time it"
            " measured since",
            "check the time source (timedatectl timesync-status): once the clock agrees the daemon believes it again,"
            " and a step forward of up to 3 days once it has held 40 minutes (a virtual machine its host paused: its"
            " boot clock stood still); if this clock is right and the step larger, reboot",
        )
    if damage:
        report.add("sighting-store", "fail", f"{path} is damaged: {'; '.join(damage)}", _DAMAGED_FIX)
    else:
        # with its write-ahead log: a running daemon's store is mostly there (0.3 MB read as "0.0 MiB")
        wal = Path(f"{path}-wal")
        size = (path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)) / 2**20
        report.add("sighting-store", "ok", f"{path}: every page read, no damage ({size:,.1f} MiB in {seconds:.1f} s)")


def _check_groups(report: Report) -> None:
    if os.geteuid() == 0:
        report.add("permissions", "ok", "running as root")
        return
    try:
        bluetooth_gid = grp.getgrnam("bluetooth").gr_gid
    except KeyError:
        report.add("permissions", "warn", "no `bluetooth` group on this system",
                   "D-Bus policy decides who may use BlueZ; see /etc/dbus-1/system.d/bluetooth.conf")
        return
    if bluetooth_gid in os.getgroups():
        report.add("permissions", "ok", "member of the `bluetooth` group")
    else:
        report.add("permissions", "warn", "not in the `bluetooth` group (advertising may be refused)",
                   "sudo usermod -aG bluetooth $USER, then log in again")


def _pick_adapter(report: Report, adapters: dict[str, AdapterInfo], wanted: str | None) -> AdapterInfo | None:
    report.facts["adapters"] = {
        name: {"address": a.address, "powered": a.powered} for name, a in sorted(adapters.items())
    }
    if not adapters:
        report.add("adapter", "fail", "BlueZ has no Bluetooth adapter", RadioUnavailableReason.NO_ADAPTER.fix)
        return None
    name = wanted or next((n for n in sorted(adapters) if adapters[n].powered), sorted(adapters)[0])
    info = adapters.get(name)
    if info is None:
        report.add("adapter", "fail", f"no adapter {name!r} (have {', '.join(sorted(adapters))})",
                   RadioUnavailableReason.NO_ADAPTER.fix)
        return None
    report.adapter = name
    if not info.powered:
        report.add("adapter", "fail", f"{name} ({info.address}) is powered off", RadioUnavailableReason.POWERED_OFF.fix)
        return None
    report.add("adapter", "ok", f"{name} ({info.address}) is powered on")
    return info


def _check_advertising(report: Report, info: AdapterInfo) -> None:
    if not info.can_advertise:
        report.add("advertising", "fail", f"{info.name} offers no LE advertising manager",
                   "use a Bluetooth 4.0+ LE adapter; check `btmgmt info` for 'le' and 'advertising'")
        return
    supported = info.advertising.get("SupportedInstances")
    active = info.advertising.get("ActiveInstances")
    report.facts["advertising"] = {"supported_instances": supported, "active_instances": active}
    if supported == 0:
        report.add("advertising", "fail",
                   f"no free advertising instance ({active} in use)",
                   "another program holds every advertising slot; stop it or reset the adapter")
    else:
        report.add("advertising", "ok", f"{supported} free advertising instance(s), {active} in use")


def _check_passive(report: Report, info: AdapterInfo) -> None:
    """Which scan ``bluezone run`` picks here: always the active one, the one that asks BlueZ for every advert;
    bluetoothd's advertisement monitor (``--experimental``), where offered, is left unused (docs/bluetooth.md)."""
    types = info.monitor.get("SupportedMonitorTypes", []) if info.can_monitor else []
    unused = (" (bluetoothd's advertisement monitor, --experimental, is left unused: through BlueZ it reports a steady"
              " phone about once per RPI and per 8 dB change)") if "or_patterns" in types else ""
    report.add("scan-mode", "ok", f"bluezone scans actively, hearing every advert{unused}")


async def _check_scan(report: Report, info: AdapterInfo, seconds: float) -> None:
    """Scan with no filter: any device heard proves the receive path works."""
    from bleak import BleakScanner

    devices: set[str] = set()
    gaen = 0

    def seen(device: Any, data: Any) -> None:
        nonlocal gaen
        devices.add(device.address)
        if SERVICE_UUID in data.service_data:
            gaen += 1

    scanner = BleakScanner(seen, bluez={"adapter": info.name})
    try:
        await scanner.start()
    except Exception as exc:  # bleak raises BleakError / BleakDBusError subclasses
        report.add("scan", "fail", f"could not start scanning: {exc}",
                   "check `rfkill list`, and that no other program holds discovery in a broken state")
        return
    try:
        await asyncio.sleep(seconds)
    finally:
        try:
            await scanner.stop()
        except Exception as exc:  # noqa: BLE001 - stopping is best effort here
            log.debug("stopping the doctor's scan: %s", exc)
    report.facts["scan"] = {"seconds": seconds, "devices": len(devices), "gaen_adverts": gaen}
    if devices:
        report.add("scan", "ok", f"heard {len(devices)} device(s) in {seconds:g} s, {gaen} GAEN advert(s)")
    else:
        report.add("scan", "warn", f"heard nothing in {seconds:g} s",
                   "normal if no Bluetooth device is near; else check `rfkill list` and the antenna")


def render(report: Report) -> str:
    """The human-readable report: one line per check, the fix indented below failures."""
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    lines = []
    for check in report.checks:
        lines.append(printable_line(f"[{marks[check.status]}] {check.name}: {check.detail}"))  # may name the database
        if check.fix and check.status != "ok":
            lines.append(printable_line(f"       fix: {check.fix}"))
    lines.append(verdict(report))
    return "\n".join(lines)


#: The checks of BlueZ and its adapter: failing only these, another radio still runs a node, as `run`'s error says.
BLUETOOTH_CHECKS = frozenset({"system-bus", "bluetoothd", "adapter", "advertising", "scan"})


def verdict(report: Report) -> str:
    """The report's last line: ready, or what the user can do (the fixes above; when only BlueZ failed,
    the radios that need none of it, as `bluezone run`'s "no usable Bluetooth" error names them)."""
    if report.ok:
        return "ready for `bluezone run --backend bluez`"
    failed = {c.name for c in report.checks if c.status == "fail"}
    if failed <= BLUETOOTH_CHECKS:
        return f"not ready for `bluezone run --backend bluez`: fix the FAIL lines above, {ALTERNATIVES}"
    return "not ready: fix the FAIL lines above"
