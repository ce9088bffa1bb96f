"""The ``bluezone`` command: thin click wrappers over library calls.

Every command that reports has ``--json``; errors become one line on stderr with exit
code 2 for bad input and 1 for other failures (``--debug`` shows the traceback).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from bluezone.clitypes import (
    DB_ORIGIN,
    FloatRange,
    LazyCommands,
    ask_before_sending,
    cli_clock,
    cli_now,
    db_option,
    emit_json,
    jobs_option,
    json_option,
    nothing_sent,
    parse_date,
)
from bluezone.errors import BluezoneError, NotAStoreError


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--debug``, ``-v`` and ``-q`` before or after the subcommand: the last one given wins."""
    if not value or param.name is None:
        return
    obj = ctx.find_root().ensure_object(dict)
    obj["debug"] = obj.get("debug", False) or param.name == "debug"
    obj["log_level"] = {"debug": logging.DEBUG, "verbose": logging.INFO, "quiet": logging.ERROR}[param.name]
    logging.getLogger().setLevel(obj["log_level"])


VERBOSITY_OPTIONS = [
    click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_verbosity,
                 help="Show tracebacks and debug logging."),
    click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_set_verbosity,
                 help="Log at INFO level."),
    click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_verbosity,
                 help="Log errors only."),
]


def _with_verbosity(command: click.Command) -> None:
    """Give ``command`` and everything under it the verbosity options (once), so
    ``bluezone check -v`` works as well as ``bluezone -v check``."""
    names = {p.name for p in command.params}
    command.params.extend(o for o in VERBOSITY_OPTIONS if o.name not in names)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_verbosity(sub)


#: Commands that live in their own packages' CLI modules, imported only when named (or when
#: ``bluezone --help`` lists them): a check must not pay for the simulator, the key server, venues.
LAZY_COMMANDS = {
    "calibrate": "bluezone.calibration.cli:calibrate",
    "simulate": "bluezone.sim.cli:simulate",
    "evaluate": "bluezone.sim.cli:evaluate",
    "server": "bluezone.server.cli:server",
    "venue": "bluezone.venues.cli:venue",
    "checkin": "bluezone.venues.cli:checkin",
    "checkout": "bluezone.venues.cli:checkout",
    "checkins": "bluezone.venues.cli:checkins",
}


def _name_envvars_of_imported(name: str, command: click.Command) -> None:
    """A command imported late gets its BLUEZONE_* variables as the others got theirs at start."""
    from bluezone.cliconfig import ENV_PREFIX, name_envvars

    name_envvars(command, (ENV_PREFIX, name))


class BluezoneGroup(click.Group):
    """Turns BluezoneError (and other failures) into one-line errors instead of tracebacks;
    ``lazy_commands`` (name -> ``"module:attribute"``) are imported when first named."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands, lazy_commands or {}, on_import=_name_envvars_of_imported)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        # defaults from BLUEZONE_* variables and config.toml (bluezone/cliconfig.py), for the whole tree
        if parent is None:
            from bluezone.cliconfig import load_defaults, name_envvars

            name_envvars(self)
            if "default_map" not in extra:
                try:
                    extra["default_map"] = load_defaults(self)
                except BluezoneError as exc:  # no context yet for invoke() to report it
                    click.echo(f"Error: {exc}", err=True)
                    sys.exit(exc.exit_code)
            try:
                return super().make_context(info_name, args, parent, **extra)
            except click.UsageError as exc:  # the group's own options (--bogus): no invoke() to report it
                _usage_error(exc)
        return super().make_context(info_name, args, parent, **extra)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        found = super().resolve_command(ctx, args)
        if ctx.parent is None and not ctx.resilient_parsing:  # the command named is imported now: its variables known
            from bluezone.cliconfig import warn_unknown_envvars

            warn_unknown_envvars(self)
        return found

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _with_verbosity(command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BluezoneError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # a database named by $BLUEZONE_DB or config.toml: say so, the user typed no --db
            where = _db_origin(ctx) if isinstance(exc, NotAStoreError) else ""
            click.echo(f"Error: {exc}{where}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _usage_error(exc)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # `bluezone status | head`: the reader has gone, as with any Unix tool; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)  # 128 + SIGPIPE, what a shell reports for a killed writer
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the CLI
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
            ctx.exit(1)


def _db_origin(ctx: click.Context) -> str:
    """"; the database was set in $BLUEZONE_DB, not with --db" when the sighting database came from a
    variable or config.toml: an error saying "give --db PATH" otherwise puzzles who typed no --db."""
    noted = ctx.meta.get(DB_ORIGIN)
    if not noted:
        return ""
    from bluezone.cliconfig import value_origin

    origin = value_origin(*noted)
    return f"; the database was set in {origin}, not with --db" if origin else ""


def _usage_error(exc: click.UsageError) -> NoReturn:
    """A mistyped command line as one line and exit 2, like every input error (click's own form
    adds the usage line, a hint line and a blank line).  A group named alone still shows its help."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        exc.show()
        sys.exit(exc.exit_code)
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    click.echo(f"Error: {exc.format_message()}{_set_where(exc)}{where}", err=True)
    sys.exit(exc.exit_code)


def _set_where(exc: click.UsageError) -> str:
    """Where a bad value came from when it was not typed: the config file or a variable (click's
    "Invalid value for '--jobs'" otherwise blames an option the user never gave)."""
    param = getattr(exc, "param", None)
    if exc.ctx is None or param is None:
        return ""
    from bluezone.cliconfig import value_origin

    origin = value_origin(exc.ctx, param)
    return f" (set in {origin})" if origin else ""


@click.group(cls=BluezoneGroup, params=list(VERBOSITY_OPTIONS), lazy_commands=LAZY_COMMANDS)
@click.version_option(package_name="bluezone")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """bluezone: Bluetooth proximity contact detection, compatible with GAEN v1.2."""
    obj = ctx.ensure_object(dict)
    obj.setdefault("debug", False)
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(obj.get("log_level", logging.WARNING))


# --- proximity: run, status, purge -----------------------------------------------------


@cli.command("run")
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
    import asyncio

    from bluezone.clock import SystemClock
    from bluezone.config import load_config
    from bluezone.proximity.daemon import DaemonStats
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
        click.echo(line)

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
        listeners=[BeaconCheckIns],  # venue beacons heard for 5 minutes: checked in (docs/venues.md)
        real_db=real_db,
    )
    if isinstance(clock, SystemClock):
        stats = asyncio.run(daemon)
    else:  # tests: a clock of their own runs its own loop
        stats = clock.run(daemon)  # type: ignore[attr-defined]
    status(
        f"stopped: {stats.sightings_stored} sightings stored, {stats.malformed} malformed, "
        f"{stats.dropped_queue_full} dropped, {stats.rpi_rotations} RPI(s) advertised"
        + (f", {stats.bluezone3_sightings_stored} Bluezone v3 sightings" if stats.bluezone3_sightings_stored else "")
    )


#: Below this much free space beside the database, ``status`` warns (the daemon's writes will fail).
LOW_DISK_BYTES = 20_000_000


@cli.command("status")
@db_option
@json_option
def status(db_path: Path | None, as_json: bool) -> None:
    """Show what the sighting store holds (counts, time span, days, size)."""
    from datetime import UTC, datetime

    from bluezone.proximity.store import CLOCK_FLOOR, EMULATED_DB_FILENAME, SightingStore

    now = cli_now()
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        info = store.stats()
        info["dated_ahead"] = store.dated_ahead(now)
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

    click.echo(f"database   {info['db_path']} ({info['db_bytes'] / 1e6:.1f} MB, schema {info['schema_version']})")
    click.echo(f"daily keys {info['daily_keys']}")
    click.echo(f"sightings  {info['sightings']} over {info['days_covered']} day(s)")
    if info.get("bluezone3_sightings"):
        click.echo(f"Bluezone v3 sightings  {info['bluezone3_sightings']}")
    click.echo(f"first      {when(info['first_sighting'])}")
    click.echo(f"last       {when(info['last_sighting'])}")
    if info["dated_ahead"] and now < CLOCK_FLOOR:
        click.echo(
            f"ahead      {info['dated_ahead']} sightings or check-ins dated after now: this clock reads {when(now)}, before"
            " GAEN existed, so the clock is wrong, not them: set it (e.g. wait for NTP)"
        )
    elif info["dated_ahead"]:
        click.echo(
            f"ahead      {info['dated_ahead']} sightings or check-ins dated more than an hour after now: a clock that ran"
            " ahead wrote them, and they stay until 14 days past their date; if this clock is right,"
            " `bluezone purge --dated-ahead` deletes them"
        )
    daemon = info.get("daemon")
    emulated = Path(info["db_path"]).with_name(EMULATED_DB_FILENAME)
    if not (info["sightings"] or info["daily_keys"] or daemon) and emulated.name != Path(info["db_path"]).name and emulated.is_file():
        # `bluezone run` without Bluetooth leaves this empty store behind, and the user then tries --backend emulated
        click.echo(f"empty      `bluezone run --backend emulated` keeps its sightings in {emulated}: give --db {emulated}")
    if daemon:
        click.echo(f"radio      {daemon.get('backend', '?')} (daemon report of {when(daemon.get('updated_at'))})")
        if not daemon.get("rotates_address", True):
            click.echo(
                "address    FIXED: this radio cannot change its Bluetooth address with each RPI, so anyone "
                "listening can link your rotating IDs (see docs/bluetooth.md)"
            )
        calibration = calibration_line(daemon)
        if calibration:
            click.echo(f"calibration {calibration}")
        radio = daemon.get("radio") or {}
        troubles = {k: v for k, v in radio.items() if isinstance(v, int) and not isinstance(v, bool) and v}
        if troubles:
            click.echo("counters   " + ", ".join(f"{k} {v}" for k, v in sorted(troubles.items())))
        flooded = (daemon.get("counters") or {}).get("dropped_over_budget")
        if isinstance(flooded, int) and flooded > 0:
            click.echo(f"flood      {flooded} adverts not stored: past max_rpis_per_minute distinct RPIs in a minute")
        backlog = daemon.get("backlog") or {}
        if backlog.get("error"):
            click.echo(
                f"writes     FAILING since {when(backlog.get('failing_since'))}: {backlog['error']}; the daemon keeps "
                f"{backlog.get('waiting', 0)} sightings in memory (at most {backlog.get('limit', '?')}) and retries"
                + (f"; {backlog['dropped']} dropped" if backlog.get("dropped") else "")
            )
    free = info.get("disk_free_bytes")
    if free is not None and free < LOW_DISK_BYTES:
        click.echo(
            f"disk       ALMOST FULL: {free / 1e6:.1f} MB free beside the database; the daemon keeps new sightings "
            "in memory until there is room (free some space)"
        )


def calibration_line(daemon: dict[str, Any]) -> str:
    """What ``status`` says about the daemon's calibration ("" for the emulated radio, or a daemon too old to say)."""
    if "calibration" not in daemon or str(daemon.get("backend", "")).startswith("emulated"):
        return ""
    if daemon["calibration"]:
        return str(daemon["calibration"])
    from bluezone.config import uncalibrated_numbers

    return (
        f"NONE: {uncalibrated_numbers(daemon.get('tx_power'), daemon.get('rssi_correction'))}, so this adapter's"
        " attenuations can be 10 dB off; run bluezone calibrate"
    )


@cli.command("purge")
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
        result = store.purged_on_open or store.purge(now)
        if dated_ahead:
            result["dated_ahead_deleted"] = store.purge_dated_ahead(now)
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"purged {result['sightings_deleted']} sightings, {result['bluezone3_sightings_deleted']} Bluezone v3 sightings,"
        f" {result['daily_keys_deleted']} daily keys and {result['checkins_deleted']} check-ins older than"
        f" {result['retention_days']} days"
        + (f", and {result['dated_ahead_deleted']} dated more than an hour ahead" if dated_ahead else "")
    )


# --- matching: keys derive / keys export, check, benchmark ----------------------------


def _hex_bytes(length: int) -> Any:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
        if value is None:
            return None
        try:
            raw = bytes.fromhex(value.strip())
        except ValueError:
            digits = "".join(value.split())
            if len(digits) % 2 and all(c in "0123456789abcdefABCDEF" for c in digits):
                # fromhex's odd-length error: the digits are fine, one is missing or extra
                raise click.BadParameter(f"must be {2 * length} hex digits, got {len(digits)}: {value!r}") from None
            raise click.BadParameter(f"not hexadecimal: {value!r}") from None
        if len(raw) != length:
            raise click.BadParameter(f"must be {length} bytes ({2 * length} hex digits), got {len(raw)}")
        return raw

    return convert


@cli.group()
def keys() -> None:
    """Daily keys: derive RPIs/AEMs for interop checks, export this device's keys."""


@keys.command("derive")
@click.option(
    "--protocol",
    type=click.Choice(["gaen", "bluezone3"]),
    default="gaen",
    show_default=True,
    help="GAEN v1.2 (--tek) or Bluezone v3 (--daily-key).",
)
@click.option("--tek", callback=_hex_bytes(16), help="GAEN: Temporary Exposure Key, 32 hex digits.")
@click.option("--interval", type=click.IntRange(0, 2**32 - 1), help="GAEN: first ENIntervalNumber.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 144), help="GAEN: how many RPIs.")
@click.option(
    "--metadata", default="40000000", show_default=True, callback=_hex_bytes(4), help="GAEN: 4 metadata bytes, hex."
)
@click.option("--daily-key", callback=_hex_bytes(32), help="Bluezone v3: daily key, 64 hex digits.")
@click.option("--slots", default="0-95", show_default=True, help="Bluezone v3: slots, e.g. 0,1,95 or 0-3.")
@click.option(
    "--slots-per-day", default=96, show_default=True, type=int, help="Bluezone v3: IDs per day (the app's max)."
)
@click.option(
    "--days-after", default=0, show_default=True, type=int, help="Bluezone v3: use the key this many days later."
)
@json_option
def keys_derive(
    protocol: str,
    tek: bytes | None,
    interval: int | None,
    count: int,
    metadata: bytes,
    daily_key: bytes | None,
    slots: str,
    slots_per_day: int,
    days_after: int,
    as_json: bool,
) -> None:
    """Print what a daily key broadcasts, for interop checks.

    GAEN: RPIK, the RPIs, AEMK and the AEMs.  Bluezone v3: the 12-byte ID of each 15-minute slot.
    """
    from bluezone.errors import InputError
    from bluezone.matching.derive import derive, derive_bluezone3

    if protocol == "bluezone3":
        if daily_key is None or tek is not None:
            raise InputError("--protocol bluezone3 takes --daily-key (64 hex digits), not --tek")
        bz = derive_bluezone3(daily_key, slots, slots_per_day, days_after)
        if as_json:
            emit_json(bz)
            return
        click.echo(f"daily key {bz['daily_key']}")
        for row in bz["slots"]:
            click.echo(f"slot {row['slot']:>3}  {row['from_utc']} UTC  ID {row['id']}")
        return
    if tek is None or interval is None or daily_key is not None:
        raise InputError("--protocol gaen takes --tek and --interval (--daily-key is for bluezone3)")
    result = derive(tek, interval, count, metadata)
    if as_json:
        emit_json(result)
        return
    click.echo(f"RPIK  {result['rpik']}")
    click.echo(f"AEMK  {result['aemk']}")
    click.echo(f"metadata {result['metadata']}")
    for row in result["intervals"]:
        click.echo(f"interval {row['interval']}  RPI {row['rpi']}  AEM {row['aem']}")


@keys.command("export")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 14), help="Days of keys to export.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, allow_dash=True), help="File, or -.")
@click.option(
    "--protocol", type=click.Choice(["gaen", "bluezone3"]), default="gaen", show_default=True,
    help="GAEN publish-API JSON, or a Bluezone v3 F0 list of the v3 IDs this device sent (--also-bluezone-v3).",
)
@db_option
def keys_export(days: int, out: str, protocol: str, db_path: Path | None) -> None:
    """Write this device's daily keys as GAEN publish-API JSON (what a positive case uploads).

    With --protocol bluezone3: its Bluezone v3 key chain as an F0 list, for `check --bluezone3-list`;
    a new chain starts at once (the key written would give away every later v3 ID of the old one).
    """
    from bluezone.errors import InputError
    from bluezone.keyformat.keyfile import dump_keys_json, write_private
    from bluezone.keyformat.keys import keys_from_daily
    from bluezone.matching.export_own import own_keys_to_export, released_today
    from bluezone.proximity.store import SightingStore

    now = cli_clock().now()
    released = []
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        if protocol == "bluezone3":
            from bluezone.matching.bluezone3 import own_f0_list

            own = own_f0_list(store, now, days)["data"]
            data = (json.dumps({"data": own}, indent=2) + "\n").encode()
        else:
            chosen = own_keys_to_export(store.daily_keys(), days, now)
            own, released = keys_from_daily(chosen), released_today(chosen, now)
            data = dump_keys_json(own)
    if out == "-":
        click.echo(data.decode(), nl=False)
    else:
        try:
            write_private(out, data)
        except OSError as exc:
            raise InputError(f"cannot write the keys to {out}: {exc.strerror or exc}") from None
        click.echo(f"wrote {len(own)} {'F0 list entry' if protocol == 'bluezone3' else 'keys'} to {out}", err=True)
    if released:  # today's key, now in the file, goes off air when the current 10 minutes end
        with SightingStore.open(db_path, create=False, purge_now=now) as store:
            for key in released:
                store.save_daily_key(key)
        click.echo("today's key is cut to end with the current 10 minutes; the daemon starts a new key then", err=True)
    if protocol == "bluezone3":  # the key written reveals every later day of its chain: start a new one
        from bluezone.matching.bluezone3 import restart_chain

        with SightingStore.open(db_path, create=False, purge_now=now) as store:
            restart_chain(store, cli_clock().now())


@cli.command("check")
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False, path_type=Path), help="Diagnosis key file.")
@click.option("--scorer", "scorer_name", default=None, help="Risk scorer: bluezone (default) or gaen.")
@click.option("--scorer-config", type=click.Path(dir_okay=False, path_type=Path), help="TOML with scorer settings.")
@click.option(
    "--set", "scorer_settings", multiple=True, metavar="NAME=VALUE", help="Scorer setting, e.g. --set threshold_db=57 (bluezone), or near_weight=1.0 with --scorer gaen."
)
@click.option(
    "--rssi-correction", default=None, type=click.IntRange(-128, 127),
    help="This device's RSSI correction, dB (default: rssi_correction of the daemon config that bluezone calibrate "
    "writes, else 0).",
)
@click.option("--server", "server_url", default=None, help="Key server URL: download, verify and match new batches.")
@click.option(
    "--server-key", type=click.Path(dir_okay=False, path_type=Path),
    help="The server's signing key (file): pinned with --server, and with --keys the export .zip must verify with it.",
)
@click.option(
    "--repin", is_flag=True,
    help="With --server and --server-key: replace the key pinned for that server (the health authority changed it).",
)
@click.option(
    "--bluezone3-list",
    "bluezone3_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Bluezone v3 F0 list (JSON {"data": [...]}) to match against stored Bluezone v3 sightings.',
)
@jobs_option
@db_option
@json_option
def check(
    keys_path: Path | None,
    scorer_name: str | None,
    scorer_config: Path | None,
    scorer_settings: tuple[str, ...],
    rssi_correction: int | None,
    server_url: str | None,
    server_key: Path | None,
    repin: bool,
    bluezone3_path: Path | None,
    jobs: int | None,
    db_path: Path | None,
    as_json: bool,
) -> None:
    """Match diagnosis keys against stored sightings and print each exposure.

    GAEN keys come from --keys or --server; a Bluezone v3 F0 list from --bluezone3-list (alone or beside either).
    """
    from bluezone.config import load_config
    from bluezone.errors import InputError
    from bluezone.matching.check import CheckResult, check_keys
    from bluezone.matching.matcher import available_cores
    from bluezone.matching.scoring import DEFAULT_SCORER, get_scorer, parse_setting

    # more processes than cores match no faster (results do not depend on jobs): --jobs 300 forked 299
    # workers, ~900 MB and 6.5 s where 2 took 1.4 s
    cores = available_cores()
    jobs = min(jobs or cores, cores)

    if rssi_correction is None:
        rssi_correction = load_config().rssi_correction
    overrides = dict(parse_setting(text) for text in scorer_settings)
    f0_entries = None
    if bluezone3_path is not None:
        from bluezone.matching.bluezone3 import check_store, load_f0_list

        f0_entries = load_f0_list(bluezone3_path)  # before touching the database, as the key file
    if server_url is not None and keys_path is not None:
        # a default from config.toml or the environment gives way to the other one typed now
        # ([check] server = ... is the README's example, and `check --keys FILE` must still work)
        ctx = click.get_current_context()
        typed = {name for name in ("keys_path", "server_url")
                 if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
        if typed == {"keys_path"}:
            server_url = None
        elif typed == {"server_url"}:
            keys_path = None
        else:
            raise InputError("give either --keys FILE or --server URL, not both")
    if keys_path is not None and server_key is not None:
        # a --server-key from config.toml or the environment pins the configured server (the README's
        # example sets both); a key file is held to a key typed with it, else a JSON file is refused
        if click.get_current_context().get_parameter_source("server_key") is not ParameterSource.COMMANDLINE:
            server_key = None
    if repin and server_url is None:
        raise InputError("--repin goes with --server URL and --server-key FILE")
    result: Any
    if server_url is not None:
        from bluezone.client.check import check_with_server
        from bluezone.progress import terminal_progress

        scorer = get_scorer(scorer_name or DEFAULT_SCORER, scorer_config, overrides)
        with terminal_progress() as bar:  # on a terminal only: piped, stderr stays for errors
            result = check_with_server(
                server_url, db_path, server_key_path=server_key, scorer=scorer, rssi_correction=rssi_correction,
                now=cli_clock().now(), jobs=jobs, repin=repin,
                progress=None if bar is None else (lambda i, n, name: bar("downloading new batches", i / max(n, 1))),
            )
    elif keys_path is not None:
        public_key, key_id = None, None
        if server_key is not None:  # a key given: the file's signature must verify with it, or no match
            from bluezone.client.pinning import read_server_key

            pinned = read_server_key(server_key)
            public_key, key_id = pinned.key, pinned.key_id
        scorer = get_scorer(scorer_name or DEFAULT_SCORER, scorer_config, overrides)
        # the file is read before the database is opened (a bad one leaves it alone), or, when it
        # holds over a million keys, matched as it streams (check_key_file)
        result = check_keys(
            keys_path, db_path, scorer=scorer, rssi_correction=rssi_correction, jobs=jobs, public_key=public_key, key_id=key_id,
            now=cli_now(),
        )
    elif f0_entries is not None:
        scorer = get_scorer(scorer_name or DEFAULT_SCORER, scorer_config, overrides)
        result = CheckResult(scorer=scorer.name)
    else:
        raise InputError("give the diagnosis keys with --keys FILE (or --server URL, or a --bluezone3-list FILE)")
    if f0_entries is not None:
        from bluezone.proximity.store import SightingStore

        with SightingStore.open(db_path, create=False, purge_now=cli_now()) as store:
            found, seen = check_store(f0_entries, store, scorer, rssi_correction=rssi_correction)
        result.add_bluezone3(found, len(f0_entries), seen)
    if as_json:
        emit_json(_with_meetings_across_midnight(result))
    else:
        _print_check(result, gaen=keys_path is not None or server_url is not None)
    if server_url is not None:
        result.raise_for_rejected()


def _midnight_pairs(result: Any) -> dict[int, int]:
    """The exposures of ``result`` that continue one of the day before across UTC midnight (later: earlier)."""
    if len(result.exposures) < 2:
        return {}
    from bluezone.client.exposures import across_midnight

    return across_midnight(result.exposures)


def _with_meetings_across_midnight(result: Any) -> dict[str, Any]:
    """``result.as_dict()``, each exposure that continues one of the day before across UTC midnight
    saying so (``continues_across_midnight``: the earlier one's index and the minutes of both)."""
    out = result.as_dict()
    for j, i in _midnight_pairs(result).items():
        out["exposures"][j]["continues_across_midnight"] = {
            "from_index": i,
            "together_minutes": round(result.exposures[i].score.minutes + result.exposures[j].score.minutes, 3),
        }
    return out


def _print_check(result: Any, gaen: bool) -> None:
    """``bluezone check`` as text: one line per exposure, a summary, then revised earlier ones."""
    pairs = _midnight_pairs(result)
    for j, e in enumerate(result.exposures):
        s = e.score
        click.echo(
            f"{e.date}  {s.minutes:5.1f} min  closest {s.closest_attenuation} dB  typical "
            f"{s.typical_attenuation:.0f} dB  ~{s.distance_band}  {e.level or 'not ' + ('F2' if e.contact_of == 'F1' else 'F1')}"
            + ("  (a close contact of a close contact)" if e.level == "F2" else "")
            + ("  (TX power estimated)" if e.tx_power_estimated else "")
            + ("  [Bluezone v3]" if e.protocol == "bluezone3" else "")
        )
        if j in pairs:  # one meeting, two daily keys: said, not summed into the decision (GAEN judges per day too)
            earlier = result.exposures[pairs[j]]
            click.echo(
                f"            (continues the {earlier.date} exposure across UTC midnight: one meeting,"
                f" {earlier.score.minutes + s.minutes:.1f} min in all; each UTC day is judged on its own)"
            )
    sources = f"{result.key_count} diagnosis keys" if gaen else ""
    if result.bluezone3_entries is not None:
        sources += (" and " if sources else "") + f"{result.bluezone3_entries} Bluezone v3 F0 list entries"
    close = result.close_contacts
    f2 = sum(e.level == "F2" for e in result.exposures)
    levels = "F1" if not f2 else f"F1 {close - f2}, F2 {f2}"
    if getattr(result, "new_batches", None) == 0 and result.bluezone3_entries is None:
        if getattr(result, "nothing_before", False) and not getattr(result, "rejected_earlier", 0):
            # nothing listed, and no name this node remembers (a first check, or back after 16 days): "since
            # the last check" misleads, and so would "no batches yet" to a node that matched some weeks ago
            click.echo("the server lists no batches: it published none in the last 14 days")
        else:
            click.echo("no new batches since the last check")  # "0 exposure(s)" would read as all-clear
    else:
        click.echo(f"{len(result.exposures)} exposure(s), {close} close contact(s) ({levels}) from {sources}")
    left = getattr(result, "left_for_next_check", 0)
    if left:
        from bluezone.client.check import MAX_NEW_FILES_PER_CHECK

        click.echo(
            f"{left} more new file(s) listed than one check fetches ({MAX_NEW_FILES_PER_CHECK:,}): the next check fetches them"
        )
    gone = getattr(result, "gone", [])
    if gone:
        click.echo(f"{len(gone)} listed file(s) gone when fetched (replaced since the index was read): the next check reads what replaced them")
    earlier = getattr(result, "earlier", [])
    if earlier:
        for d in earlier:
            click.echo(
                f"{d['date']}  {d['duration_minutes']:5.1f} min  closest {d['closest_attenuation_db']} dB  typical "
                f"{d['typical_attenuation_db']:.0f} dB  ~{d['distance_band']}  {d.get('level') or 'not F1'}"
                "  (reported by an earlier check)"
            )
        kept = sum(bool(d.get("close_contact")) for d in earlier)
        click.echo(f"{len(earlier)} exposure(s) reported before still in force (14 days), {kept} close contact(s)")
    for e in getattr(result, "withdrawn", []):
        if e.earlier_level == "F2":
            click.echo(
                f"{e.date}  withdrawn: the F2 warning of this day is over: the close contact you met"
                " (an F1) has tested negative"
            )
        else:
            click.echo(
                f"{e.date}  withdrawn: the {e.score.minutes:.1f}-min exposure reported before was to someone whose"
                " report has since been revoked (a negative test)"
            )
    for e in getattr(result, "updated", []):
        if e.earlier_level == "F2" and e.level == "F1":
            click.echo(
                f"{e.date}  upgraded: the F2 warning of this day is now F1: the close contact you met"
                f" ({e.score.minutes:.1f} min) has tested positive"
            )
        else:
            click.echo(
                f"{e.date}  updated: the {e.score.minutes:.1f}-min exposure reported before"
                f" ({e.level or 'not F1'}) is now to a confirmed positive test"
            )
    for v in getattr(result, "venue_exposures", []):
        d = v.as_dict()
        click.echo(
            f"{d['date']}  {d['overlap_minutes']:5.1f} min  at {d['venue']} ({d['address']}): you were there "
            f"{_local_span(d['your_visit'], d['date'])}, {_cases(d)} {_local_span(d['case_visit'], d['date'])}"
            + ("  (15 min or more in the same room)" if d["fifteen_minutes_or_more"] else "")
        )
    for d in getattr(result, "earlier_venue", []):
        click.echo(
            f"{d['date']}  {d['overlap_minutes']:5.1f} min  at {d['venue']} ({d['address']})"
            + (f" with {_cases(d)}" if d.get("cases", 1) > 1 else "")
            + ("  (15 min or more in the same room)" if d["fifteen_minutes_or_more"] else "")
            + "  (reported by an earlier check)"
        )
    for o in getattr(result, "own_checkins", []):  # an F0's own upload, published: not an exposure
        d = o.as_dict()
        click.echo(
            f"{d['date']}  at {d['venue']} ({d['address']}): your own check-in ({_local_span(d['your_visit'], d['date'])}),"
            f" uploaded {dt.datetime.fromisoformat(d['uploaded_at']).astimezone():%Y-%m-%d}: published to warn others"
            " who were there, not an exposure"
            + ("" if d["recorded"] else " (known by its times: the bluezone that sent it kept no record of its reports)")
        )
    if getattr(result, "venue_files", []) or getattr(result, "earlier_venue", []):
        click.echo(f"{len(result.venue_exposures)} venue exposure(s) from {len(result.venue_files)} venue-warning file(s)"
                   + (f", {len(result.earlier_venue)} reported before (14 days)" if result.earlier_venue else ""))
    advice = _what_now(result)
    if advice:
        click.echo(advice)


def _cases(exposure: dict[str, Any]) -> str:
    """Who else was there: "a case", or "2 cases" when that many reports share the very same minutes."""
    cases = int(exposure.get("cases", 1))  # (an exposure remembered by an older version has no count)
    return "a case" if cases == 1 else f"{cases} cases"


def _local_span(visit: dict[str, str], day: str) -> str:
    """A visit's times in this machine's zone, as `bluezone checkins` and `upload` show them (someone in
    Hanoi remembers 19:15, not 12:15 UTC); its local date too when it is not the exposure's UTC day."""
    start, end = (dt.datetime.fromisoformat(visit[k]).astimezone() for k in ("start", "end"))
    date = "" if start.date().isoformat() == day else f"{start:%Y-%m-%d} "
    return f"{date}{start:%H:%M}-{end:%H:%M} {start:%Z}"


def _what_now(result: Any) -> str | None:
    """One line after the report saying what the verdicts mean for the person reading them: the lines
    above give levels, minutes and decibels, and someone just told "F1" needs to know what to do next.
    The strongest level in force (this check's, those it revised, and earlier ones' still within 14 days)
    decides."""
    # an exposure told before and revised now (an F2 upgraded to F1) is in none of the others
    dated = [(e.level, str(e.date)) for e in [*result.exposures, *getattr(result, "updated", [])]] + [
        (d.get("level"), str(d["date"])) for d in getattr(result, "earlier", [])
    ]
    levels = [level for level, _ in dated]
    venues = [v.as_dict() for v in getattr(result, "venue_exposures", [])] + list(getattr(result, "earlier_venue", []))
    close_days = [day for level, day in dated if level == "F1"] + [str(v["date"]) for v in venues if v["fifteen_minutes_or_more"]]
    if close_days:
        where = "near" if "F1" in levels else "in the same room as"
        return (
            f"What now: you were {where} someone who tested positive for 15 minutes or more"
            f"{' (a close contact, F1)' if 'F1' in levels else ''}:"
            " follow your health authority's advice for close contacts; if it gives you a recursive code, send your"
            f" keys with `bluezone upload --server URL --code CODE --exposure-date {min(close_days)}`"
        )
    if "F2" in levels:
        return (
            "What now: you met a close contact of a case (F2): watch for symptoms; a later `bluezone check` says"
            " when that contact's test is back (upgraded to F1 if positive, withdrawn if negative)"
        )
    if result.exposures or venues:
        return (
            "No close contact: each exposure above was too brief or too far away to count (within about 2 m,"
            " or in the same room, for 15 minutes or more); nothing to do"
        )
    return None


@cli.command("benchmark")
@click.option("--keys", "n_keys", default=100_000, show_default=True, type=click.IntRange(1), help="Diagnosis keys.")
@click.option("--sightings", "n_sightings", default=1_000_000, show_default=True, type=click.IntRange(1), help="Stored sightings to match against.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the synthetic keys and sightings.")
@click.option("--naive-sample", default=200, show_default=True, type=click.IntRange(1), help="Keys for the baseline.")
@click.option("--with-store", is_flag=True, help="Also time loading the sightings from a temporary SQLite store.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1), help="Timings to take the median of.")
@jobs_option
@json_option
def benchmark(
    n_keys: int, n_sightings: int, seed: int, naive_sample: int, with_store: bool, repeats: int, jobs: int | None, as_json: bool
) -> None:
    """Time the matcher on synthetic keys and sightings, beside two naive loops."""
    from bluezone.matching.benchmark import run_benchmark
    from bluezone.matching.matcher import available_cores

    jobs = jobs or available_cores()
    # Progress goes to stderr and only on a terminal: piped output stays the result alone.
    tty = sys.stderr.isatty()
    result = run_benchmark(
        n_keys, n_sightings, seed, naive_sample, with_store, repeats, jobs=jobs,
        progress=(lambda line: click.echo(f"benchmark: {line} ...", err=True)) if tty else None,
    )
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(
        f"matcher: {result.keys:,} keys against {result.sightings:,} sightings in {result.seconds:.3f} s "
        f"(index {result.index_seconds:.3f} s; median of {result.repeats}; {result.jobs} job(s) on {result.cores} "
        f"core(s)): {result.keys_per_second:,.0f} keys/s, {result.matches} matches"
    )
    click.echo(f"RPI derivation: {result.derivation}")
    if result.speedup_vs_one_job is not None:
        click.echo(f"one process: {result.keys_per_second_one_job:,.0f} keys/s; {result.jobs} jobs are {result.speedup_vs_one_job:.2f}x that")
    click.echo(
        f"baselines on {result.naive_sample_keys} keys: naive (a Cipher per RPI) {result.naive_keys_per_second:,.0f} "
        f"keys/s, speedup {result.speedup_vs_naive:.1f}x; reasonable (an encryptor per key) "
        f"{result.reasonable_naive_keys_per_second:,.0f} keys/s, speedup {result.speedup_vs_reasonable_naive:.1f}x "
        "(store loading not included)"
    )
    if result.store_load_seconds is not None:
        click.echo(
            f"loading the sightings from SQLite: {result.store_load_seconds:.3f} s; with it "
            f"{result.keys_per_second_with_store:,.0f} keys/s"
        )


# --- real Bluetooth: doctor ------------------------------------------------------------


@cli.command("doctor")
@click.option("--adapter", default=None, help="BlueZ adapter to check (default: the first powered one).")
@click.option("--scan-seconds", default=10.0, show_default=True, type=FloatRange(0), help="0 skips the scan.")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Daemon TOML whose calibration to check (default: $XDG_CONFIG_HOME/bluezone/daemon.toml if it exists).",
)
@db_option
@json_option
def doctor(adapter: str | None, scan_seconds: float, config_path: Path | None, db_path: Path | None, as_json: bool) -> None:
    """Check BlueZ, the adapter, permissions, advertising, scanning, calibration and the sighting
    database (every page read for damage); say what to fix."""
    import asyncio

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

    report = asyncio.run(
        diagnose(adapter, scan_seconds, config, problem, store=db_path or default_db_path(), now=cli_clock().now())
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(render(report))
    if not report.ok:
        sys.exit(1)


# --- this device and a key server: upload (check --server is above) -------------------------------


@cli.command("upload")
@click.option("--server", "server_url", required=True, help="Key server base URL, e.g. https://keys.example.org.")
@click.option("--code", required=True, help="The verification code from the health authority.")
@db_option
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
@click.option("--include-today", is_flag=True, help="Also send today's key (only if today is over for you).")
@click.option("--dry-run", is_flag=True, help="Print the request instead of sending it.")
@click.option("--symptom-onset", callback=parse_date, help="Date symptoms began (YYYY-MM-DD), if any.")
@click.option(
    "--exposure-date", callback=parse_date,
    help="A close contact (F1) with a recursive code: the day you were exposed; only keys from then on are sent.",
)
@click.option(
    "--checkins/--no-checkins", "send_checkins", default=None,
    help="Also send your venue check-ins since the first day whose key goes (today's too), encrypted (default: shown and asked; with --yes, sent).",
)
@json_option(help="Print what was sent and stored as JSON.")
def upload(
    server_url: str, code: str, db_path: Path | None, yes: bool, include_today: bool, dry_run: bool,
    symptom_onset: Any, exposure_date: Any, send_checkins: bool | None, as_json: bool,
) -> None:
    """Send this device's daily keys of the last 14 days to the key server (after a positive test).

    Its venue check-ins go too, encrypted (asked first); a device that only checked in sends those alone.

    A close contact (F1) given a recursive code sends its keys from its exposure date on (--exposure-date),
    so that its own close contacts (F2) are told.
    """
    from bluezone.client.keyserver import KeyServerClient
    from bluezone.client.uploading import (
        check_code,
        check_exposure_date,
        check_symptom_onset,
        dry_run_request,
        onset_interval,
        plan_upload,
        today_key_in_use,
        upload_own_keys,
    )
    from bluezone.proximity.store import SightingStore

    now = cli_clock().now()
    check_exposure_date(exposure_date, now)
    check_symptom_onset(symptom_onset, now)
    if send_checkins and exposure_date is not None:
        raise click.UsageError(
            "--checkins does not go with --exposure-date: a venue warning tells everyone who was there that a case was"
        )
    code = check_code(code)
    onset = onset_interval(symptom_onset)
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        if not include_today and not yes and not dry_run and today_key_in_use(store.daily_keys(), now):
            include_today = ask_before_sending(
                "upload", "Today's key is still in use. Is your day over (no more contacts today), so it can be sent too?"
            )
        plan = plan_upload(
            store, now, include_today, exposure_date=exposure_date, checkins=send_checkins is not False, server=server_url
        )
        if dry_run:
            click.echo(json.dumps(dry_run_request(store, server_url, plan, code, onset), indent=2))
            return
        if len(plan.keys):
            click.echo(f"About to send {len(plan.keys)} daily key(s) to {server_url}:", err=True)
            for row in plan.as_dict()["keys"]:
                click.echo(f"  {row['date']}  valid {row['rolling_period'] * 10} min", err=True)
            if plan.today_in_use and not include_today:
                click.echo("  (today's key is not sent; use --include-today once your day is over)", err=True)
            elif plan.today_in_use:
                click.echo("  (today's key is sent up to now; a new key starts for the rest of the day)", err=True)
            if not yes and not ask_before_sending("upload", "Send them?"):
                nothing_sent()
        else:  # it never ran `bluezone run`: only the visits it checked in to can warn anyone
            click.echo(f"This device has no daily keys (it never ran `bluezone run`): only its check-ins go to {server_url}.",
                       err=True)
        outgoing = plan.checkins
        if outgoing:
            click.echo(
                f"You {'also ' if len(plan.keys) else ''}checked in {len({r.visit.id for r in outgoing})} time(s)"
                f" {'since then' if len(plan.keys) else 'in the last 14 days'} (names stay on this"
                " device; the server gets them encrypted, readable only by phones that checked in there too; a visit"
                " over UTC midnight is two lines):", err=True,
            )
            for shown in plan.as_dict()["checkins"]:  # local time, as `bluezone checkins` shows them
                start = dt.datetime.fromisoformat(shown["start"]).astimezone().strftime("%Y-%m-%d %H:%M %Z")
                click.echo(f"  {start}  {shown['minutes']:4d} min  {shown['venue']}", err=True)
            if plan.checkins_left_out:
                click.echo(_left_out_line(plan.checkins_left_out), err=True)
            if plan.checkins_too_short:
                click.echo(_too_short_line(plan.checkins_too_short), err=True)
            if send_checkins is None and not yes and not ask_before_sending(
                "upload", f"Send these check-ins{' too' if len(plan.keys) else ''}, so others who were there are warned?",
                default=True,
            ):
                if not len(plan.keys):
                    nothing_sent()
                outgoing = ()
        elif plan.checkins_too_short:  # listed nowhere else: the F0 would wonder why a visit is missing
            click.echo(_too_short_line(plan.checkins_too_short), err=True)
        if plan.checkins_sent_before:
            click.echo(f"  ({plan.checkins_sent_before} check-in(s) went to this server with an earlier upload and are"
                       " not sent again: a second copy would read to the others who were there as a second case)", err=True)
        with KeyServerClient(server_url) as client:
            # the clock again: the questions may have taken a while, and today's key is cut at the interval of sending
            result = upload_own_keys(
                store, client, code, cli_clock().now(), include_today=include_today, symptom_onset_interval=onset,
                exposure_date=exposure_date, checkins=outgoing,
                checkins_left_out=plan.checkins_left_out if outgoing else 0,
            )
    if as_json:
        emit_json(result.as_dict())
        return
    revised = f", revised {result.receipt.revised}" if result.receipt.revised else ""
    sent = stored = ""
    if result.checkins:  # the server keeps none under a negative or recursive code: say so, not "uploaded 0"
        sent = f" and {len(result.checkins)} check-in(s)"
        stored = f" and {result.receipt.checkins} check-in(s)"
        if not result.receipt.checkins:
            stored += " (it publishes none under a negative test's or a close contact's code)"
    click.echo(f"uploaded {len(result.keys)} key(s){sent}; the server stored {result.receipt.inserted} new{revised}{stored}")



def _too_short_line(too_short: int) -> str:
    return (
        f"  ({too_short} visit(s) under 5 minutes stay on this device: too short to place on the 10-minute grid"
        " check-ins are sent on)"
    )


def _left_out_line(left_out: int) -> str:
    from bluezone.keyformat.venue_reports import MAX_CHECKINS_PER_DAY

    return (
        f"  ({left_out} more check-in(s) stay on this device: one upload carries at most {MAX_CHECKINS_PER_DAY}"
        " a day, the longest of each day go)"
    )


# --- the embedded default: demo ------------------------------------------------------------------


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep each device's database, the F0's key file and the key server's files here.",
)
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True, help="Seed of the emulated radio.")
@json_option
def demo(out_dir: Path | None, seed: int, as_json: bool) -> None:
    """Eight emulated devices, one hour in a café, one F0: who is warned F1 (and, down one chain, F2), beside the truth.

    No Bluetooth needed: real daemons on an emulated radio and a virtual clock ending now,
    an embedded key server on 127.0.0.1, signed exports, and the real matcher.
    """
    from bluezone.demo import format_report, run_demo

    progress = (lambda _: None) if as_json else (lambda line: click.echo(line, err=True))
    result = run_demo(out_dir, seed=seed, progress=progress)
    if as_json:
        emit_json(result.as_dict())
    else:
        click.echo(format_report(result))


def main() -> None:
    """The ``bluezone`` console script."""
    # OpenBLAS starts a thread per core as numpy is imported (0.04 s here, serial, before any
    # command begins); no command does linear algebra worth a thread.  A user's own setting stands.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        cli(obj={}, prog_name="bluezone")
    finally:
        # The process exits next: the collector's last full pass at exit would walk every object
        # the command made (numpy's, protobuf's, click's: ~0.03-0.05 s of a 1 s check) only to free
        # memory the system takes back anyway.  Frozen, they are left alone; what is not in a
        # reference cycle is still freed as the interpreter ends, atexit handlers still run, and
        # every command has closed its files, stores and worker pools itself (``with``) by now.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
