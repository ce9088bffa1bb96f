"""``bluezone run``, ``status``, ``purge`` and ``doctor``: the daemon and the sighting store on this
device, thin wrappers over bluezone.proximity (imported when first named, see bluezone/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from bluezone.clitypes import FloatRange, cli_clock, cli_now, db_option, emit_json, json_option
from bluezone.printable import printable_line

if TYPE_CHECKING:
    from bluezone.proximity.daemon import DaemonStats


@click.command("run")
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    help="Radio: auto (BlueZ), bluez[:hciN], bumble:<transport>, or emulated[:N] (N invented neighbours, "
    "default 2; kept in emulated.db unless --db is given).",
)
@click.option("--adapter", default=None, help="BlueZ adapter (hci0, ...) for auto/bluez.")
@db_option
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Daemon TOML (default: $XDG_CONFIG_HOME/bluezone/daemon.toml if it exists; bluezone calibrate writes it).",
)
@click.option("--duration", type=FloatRange(0, min_open=True), default=None, help="Stop after SECONDS.")
@click.option(
    "--also-bluezone-v3",
    is_flag=True,
    help="Also send Bluezone v3 IDs (emulated radio only, so far); makes this device easier to follow: "
    "see docs/bluezone3.md.",
)
def run(
    backend: str,
    adapter: str | None,
    db_path: Path | None,
    config_path: Path | None,
    duration: float | None,
    also_bluezone_v3: bool,
) -> None:
    """Run the proximity daemon in the foreground (status every minute; Ctrl-C stops cleanly).

    It stores GAEN adverts and, beside them, Bluezone v3 adverts (0x4E56) it hears.
    """
    from bluezone.proximity.stopsignals import noted_until_the_stop

    with noted_until_the_stop():  # a SIGTERM or SIGHUP as the daemon's modules load: its clean stop, not exit 143
        _run(backend, adapter, db_path, config_path, duration, also_bluezone_v3)


def _run(
    backend: str, adapter: str | None, db_path: Path | None, config_path: Path | None, duration: float | None,
    also_bluezone_v3: bool,
) -> None:
    import functools

    from bluezone.clock import run_on
    from bluezone.config import load_config
    from bluezone.proximity.runner import run_daemon
    from bluezone.venues.nearby import BeaconCheckIns

    config = load_config(config_path)  # --config, else the default file if there is one (bluezone calibrate writes it)
    real_db = None  # BLUEZONE_DB or config.toml name the user's own database: as the default one, emulated stays out
    if db_path is not None and click.get_current_context().get_parameter_source("db_path") is not ParameterSource.COMMANDLINE:
        real_db, db_path = db_path, None
    ticker = sys.stdout.isatty()  # a live line until the first status line; nothing extra when piped
    shown = False

    def progress(stats: DaemonStats, seconds: float) -> None:
        nonlocal shown
        shown = True
        click.echo(f"\r  {seconds:.0f} s: {stats.adverts_received} adverts heard, "
                   f"{stats.sightings_stored} sightings stored", nl=False)

    def status(line: str) -> None:
        nonlocal shown
        if shown:
            click.echo("\r\033[K", nl=False)
            shown = False
        click.echo(printable_line(line))  # the start line names the database

    clock = cli_clock()
    daemon = run_daemon(
        backend,
        db_path,
        config,
        duration,
        clock=clock,
        adapter=adapter,
        on_status=status,
        on_start=status,
        on_progress=progress if ticker else None,
        also_bluezone_v3=also_bluezone_v3,
        # venue beacons heard for 5 minutes: checked in (docs/venues.md), their dBm rules on this adapter's calibration
        listeners=[functools.partial(BeaconCheckIns, rssi_correction=config.rssi_correction)],
        real_db=real_db,
    )
    status(stopped_line(run_on(clock, daemon)))


def stopped_line(stats: DaemonStats) -> str:
    """``run``'s last line.  Its "dropped" counts every sighting lost for want of room (``DaemonStats.lost``): a run
    on a full disk said "0 dropped" beside the error that 1193 were lost."""
    return (
        f"stopped: {stats.sightings_stored} sightings stored, {stats.malformed} malformed, "
        f"{stats.lost()} dropped, {stats.rpi_rotations} RPI(s) advertised"
        + (f", {stats.bluezone3_sightings_stored} Bluezone v3 sightings" if stats.bluezone3_sightings_stored else "")
    )


def _clock_synced() -> bool:
    """Whether a time daemon keeps the wall clock synchronised (the kernel's word; a test gives ``clock_synced``)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict) and "clock_synced" in obj:
        return bool(obj["clock_synced"])
    from bluezone.clock import kernel_clock_synced

    return kernel_clock_synced()


#: Below this much free space beside the database, ``status`` warns (the daemon's writes will fail).
LOW_DISK_BYTES = 20_000_000

#: ``status``'s long lines are wrapped to this many columns (a terminal's least), under the column of values.
STATUS_COLUMNS = 80


def status_field(label: str, text: str) -> str:
    """``label`` and ``text`` as ``status`` shows a field, ``text`` wrapped at spaces to ``STATUS_COLUMNS`` under
    its first line's value (a 400-character line was one unreadable run on an 80-column terminal); a command in
    backticks is kept on one line, to be copied whole (textwrap breaks at ASCII whitespace only, not at U+00A0)."""
    import re
    import textwrap

    whole = re.sub(r"`[^`]*`", lambda command: command[0].replace(" ", "\xa0"), text)
    return textwrap.fill(
        whole, STATUS_COLUMNS, initial_indent=f"{label:<10} ", subsequent_indent=" " * 11,
        break_long_words=False, break_on_hyphens=False,
    ).replace("\xa0", " ")


@click.command("status")
@db_option
@json_option
def status(db_path: Path | None, as_json: bool) -> None:
    """Show what the sighting store holds (counts, time span, days, size) and whether a daemon records into it."""
    from datetime import UTC, datetime

    from bluezone.proximity.store import CLOCK_FLOOR, EMULATED_DB_FILENAME, SightingStore

    now = cli_now()
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        info = store.stats()
        # ahead of the time the daemon measured while it does not believe a step of this clock: stepped back a
        # year, every sighting was "dated ahead" (and `purge --dated-ahead` was advised)
        info["dated_ahead"] = store.dated_ahead(store.believed_time(now, quiet=True))
        info["purged_on_open"] = store.purged_on_open
        info["clock_not_believed_by"] = store.clock_step(now)  # None: believed (or a stopped daemon's old mark)
    info["clock_synchronised"] = _clock_synced()
    if as_json:
        emit_json(info)
        return

    def when(t: float | None) -> str:
        if t is None:
            return "-"
        try:
            return f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S} UTC"
        except (OverflowError, OSError, ValueError):  # a hand-edited or damaged row far past year 9999
            return f"{t!r} (no date: a damaged or hand-edited row)"

    click.echo(f"database   {printable_line(str(info['db_path']))} ({info['db_bytes'] / 1e6:.1f} MB, schema {info['schema_version']})")
    click.echo(f"daily keys {info['daily_keys']}")
    click.echo(f"sightings  {info['sightings']} over {info['days_covered']} day(s)")
    if info.get("bluezone3_sightings"):
        click.echo(status_field("bluezone3", f"{info['bluezone3_sightings']} sightings of Bluezone v3 phones"))
    if info["checkins"]:
        click.echo(f"check-ins  {info['checkins']} (`bluezone checkins` lists them)")
    click.echo(f"first      {when(info['first_sighting'])}")
    click.echo(f"last       {when(info['last_sighting'])}")
    purged = purged_line(info["purged_on_open"])
    if purged:
        click.echo(status_field("purged", purged))
    if info["dated_ahead"] and now < CLOCK_FLOOR:
        click.echo(status_field(
            "ahead",
            f"{info['dated_ahead']} sightings or check-ins dated after now: this clock reads {when(now)}, before"
            " GAEN existed, so the clock is wrong, not them: set it (e.g. wait for NTP)",
        ))
    elif info["dated_ahead"]:
        click.echo(status_field(
            "ahead",
            f"{info['dated_ahead']} sightings or check-ins dated more than an hour after now: a clock that ran"
            " ahead wrote them, and they stay until 14 days past their date; if this clock is right,"
            " `bluezone purge --dated-ahead` deletes them",
        ))
    if info["vacuum_owed"]:
        click.echo(status_field("vacuum", "OWED: a migration deleted secrets (an old key server's password) whose bytes stay"
                                " in free pages until an open that can write this file vacuums it (run any command as the"
                                " store's owner)"))
    if not info["secure_delete"]:
        click.echo(status_field("deletes", "not zeroed: this SQLite build has no secure_delete, so purged sightings stay in"
                                " free pages until SQLite reuses them or the day's rewrite of the file (at the first purge"
                                " of a UTC day)"))
    daemon = info.get("daemon")
    emulated = Path(info["db_path"]).with_name(EMULATED_DB_FILENAME)
    if not (info["sightings"] or info["daily_keys"] or info["checkins"] or daemon) and emulated.name != Path(info["db_path"]).name and emulated.is_file():
        # `bluezone run` without Bluetooth leaves this empty store behind, and the user then tries --backend emulated
        click.echo(printable_line(
            f"empty      `bluezone run --backend emulated` keeps its sightings in {emulated}: give --db {emulated}"
        ))
    if info["daemon_running"]:
        click.echo("daemon     running: recording into this store")
    else:  # the last report below reads the same days after it stopped
        click.echo(status_field(
            "daemon", "NOT RUNNING: nothing is recorded into this store until `bluezone run` (or its service) runs on it"
        ))
    if daemon:
        radio_health = daemon.get("radio")
        mode = radio_health.get("scan_mode") if isinstance(radio_health, dict) else None
        backend = str(daemon.get("backend", "?"))
        scan = {"active": ", scanning actively", "passive": ", scanning passively"}.get(str(mode), "")
        if mode == "passive" and backend == "bluez":  # through bluetoothd (bumble's own scan hears every advert)
            scan += " (too few sightings through BlueZ: docs/bluetooth.md)"
        click.echo(status_field("radio", f"{backend}{scan} (daemon report of {when(daemon.get('updated_at'))})"))
        if not daemon.get("rotates_address", True):
            click.echo(status_field(
                "address", "NOT CHECKED: this radio, not bluezone, picks the advert's Bluetooth address (BlueZ: likely"
                " a new random one at each RPI change); if it stayed fixed, anyone listening could link your rotating"
                " IDs (`sudo btmon` shows it: docs/bluetooth.md)"
            ))
        step = info["clock_not_believed_by"]
        if step is not None:
            click.echo(status_field(
                "clock",
                f"NOT BELIEVED: the wall clock stepped {step / 3600:+.1f} h from the time the daemon"
                " measured since it last agreed (synchronised then, in this boot); sightings are stamped and purged at the measured"
                " time until it agrees again (check the time source: `timedatectl timesync-status`); a step forward"
                " of up to 3 days is believed once it has held 40 minutes (a virtual machine its host paused); if this"
                " clock is right and the step larger, reboot: a new boot believes it",
            ))
        elif not info["clock_synchronised"]:
            from bluezone.clock import START_A_TIME_DAEMON, UNSYNCHRONISED

            click.echo(status_field("clock", f"{UNSYNCHRONISED} ({START_A_TIME_DAEMON})"))
        calibration = calibration_line(daemon)
        if calibration:
            click.echo(f"calibration {calibration}")
        from bluezone.venues.nearby import correction_warning

        venues = correction_warning(daemon.get("rssi_correction"))
        if venues:
            click.echo(f"venues     {venues}")
        radio = daemon.get("radio") or {}
        troubles = {k: v for k, v in radio.items() if isinstance(v, int) and not isinstance(v, bool) and v}
        if troubles:
            click.echo(status_field("counters", ", ".join(f"{k} {v}" for k, v in sorted(troubles.items()))))
        flooded = (daemon.get("counters") or {}).get("dropped_over_budget")
        if isinstance(flooded, int) and flooded > 0:
            click.echo(status_field(
                "flood", f"{flooded} adverts not stored: past max_rpis_per_minute distinct RPIs in a minute"
            ))
        backlog = daemon.get("backlog") or {}
        if backlog.get("error"):
            click.echo(status_field(
                "writes",
                f"FAILING since {when(backlog.get('failing_since'))}: {backlog['error']}; the daemon keeps "
                f"{backlog.get('waiting', 0)} sightings in memory (at most {backlog.get('limit', '?')}) and retries"
                + (f"; {backlog['dropped']} dropped" if backlog.get("dropped") else ""),
            ))
    for given in info.get("server_keys_unconfirmed", []):
        click.echo(printable_line(
            f"server key {given['server']}: given with --server-key {when(given['given_at'])} (key id"
            f" {given['key_id'] or '-'}), not yet confirmed by a signed file; the next check uses it"
        ))
    free = info.get("disk_free_bytes")
    if free is not None and free < LOW_DISK_BYTES:
        click.echo(status_field(
            "disk", f"ALMOST FULL: {free / 1e6:.1f} MB free beside the database; the daemon keeps new sightings in memory"
            " until there is room (free some space)"
        ))


def purged_line(purged: dict[str, Any] | None) -> str:
    """What opening the store just deleted past the retention ("" if nothing): else a store whose daemon
    stopped weeks ago reads 0 sightings with no word why, and a `bluezone purge` after it says 0."""
    if not purged:
        return ""
    counts = [
        (purged["sightings_deleted"], "sightings"), (purged["bluezone3_sightings_deleted"], "Bluezone v3 sightings"),
        (purged["daily_keys_deleted"], "daily keys"), (purged["checkins_deleted"], "check-ins"),
    ]
    shown = [f"{n} {what}" for n, what in counts if n]
    if not shown:
        return ""
    return f"{', '.join(shown)} older than {purged['retention_days']} days, just now (every command that opens the store does)"


def calibration_line(daemon: dict[str, Any]) -> str:
    """What ``status`` says about the daemon's calibration ("" for the emulated radio, or a daemon too old to say)."""
    if "calibration" not in daemon or str(daemon.get("backend", "")).startswith("emulated"):
        return ""
    from bluezone.config import edited_since_calibration, on_another_adapter, uncalibrated_numbers

    if daemon["calibration"]:
        edited = edited_since_calibration(str(daemon["calibration"]), daemon.get("tx_power"), daemon.get("rssi_correction"))
        other = on_another_adapter(daemon.get("calibration_adapter"), daemon.get("adapter_address"))
        return (str(daemon["calibration"]) + ("" if edited is None else f" (EDITED since: {edited})")
                + ("" if other is None else f" (ANOTHER ADAPTER: {other})"))

    return (
        f"NONE: {uncalibrated_numbers(daemon.get('tx_power'), daemon.get('rssi_correction'))}, so this adapter's"
        " attenuations can be 10 dB off; run bluezone calibrate"
    )


@click.command("purge")
@click.option(
    "--dated-ahead", is_flag=True,
    help="Also delete sightings and check-ins dated more than an hour after now (written while the clock ran"
    " ahead): only when this clock is right.",
)
@db_option
@json_option
def purge(dated_ahead: bool, db_path: Path | None, as_json: bool) -> None:
    """Delete sightings, daily keys and venue check-ins older than the 14-day retention now."""
    from bluezone.proximity.store import SightingStore

    now = cli_clock().now()
    with SightingStore.open(db_path, create=False, purge_now=now) as store:  # (opening purges at now)
        now = store.believed_time(now, quiet=True)  # the daemon's measured time while it does not believe this clock
        result = store.purged_on_open
        if result is None or result.get("left_to_daemon"):  # asked for now: deleted here, a daemon running or not
            if result is not None:  # (a daemon runs: its rewrite may hold the lock past the busy timeout)
                store.wait_out_a_rewrite()
            result = store.purge(now, rewrite="apart")  # (the rewrite is rewrite_purged's, below)
        if dated_ahead:
            result["dated_ahead_deleted"] = store.purge_dated_ahead(now)
        # now, not at the first purge of the next UTC day: the copies SQLite left of what any purge deleted; asked of a
        # daemon running on the store, which rewrites in its thread (here the VACUUM held its writes on its loop)
        rewrite = store.rewrite_purged()
        result["rewrite_owed"] = rewrite != "done"
        result["rewrite_asked_of_daemon"] = rewrite == "asked"
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"purged {result['sightings_deleted']} sightings, {result['bluezone3_sightings_deleted']} Bluezone v3 sightings,"
        f" {result['daily_keys_deleted']} daily keys and {result['checkins_deleted']} check-ins older than"
        f" {result['retention_days']} days"
        + (f", and {result['dated_ahead_deleted']} dated more than an hour ahead" if dated_ahead else "")
        + ("; the daemon running on this store rewrites the file (no copy of them left in its pages) at its next flush,"
           " within seconds" if result["rewrite_asked_of_daemon"] else "")
    )


@click.command("doctor")
@click.option("--adapter", default=None, help="BlueZ adapter to check (default: the first powered one).")
@click.option(
    "--scan-seconds", default=10.0, show_default=True, type=FloatRange(0),
    help="Seconds to scan for any Bluetooth device nearby, proof that receiving works (0 skips the scan).",
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Daemon TOML whose calibration to check (default: $XDG_CONFIG_HOME/bluezone/daemon.toml if it exists).",
)
@db_option
@json_option
def doctor(adapter: str | None, scan_seconds: float, config_path: Path | None, db_path: Path | None, as_json: bool) -> None:
    """Check BlueZ, the adapter, permissions, advertising, scanning, calibration and the sighting
    database (every page read for damage); say what to fix."""
    from bluezone.clock import SystemClock, run_on
    from bluezone.config import load_config
    from bluezone.errors import ConfigError
    from bluezone.proximity.doctor import diagnose, render

    try:
        config, problem = load_config(config_path), None
    except ConfigError as exc:  # what doctor is for: said among its findings, the other checks still run
        if config_path is not None and not config_path.exists():
            raise  # a typo in --config: a usage error
        config, problem = None, str(exc)
    from bluezone.proximity.store import default_db_path

    from bluezone.venues.nearby import correction_warning

    report = run_on(  # (real time whatever the CLI's clock: BlueZ's answers and the scan are waited for really)
        SystemClock(),
        diagnose(adapter, scan_seconds, config, problem, store=db_path or default_db_path(), now=cli_clock().now(),
                 clock_synced=_clock_synced()),
    )
    venues = correction_warning(config.rssi_correction) if config is not None else None
    if venues:
        report.add("venue-rssi-correction", "warn", venues, "`bluezone calibrate` again, the reference 1 m away in the open")
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(render(report))
    if not report.ok:
        sys.exit(1)
