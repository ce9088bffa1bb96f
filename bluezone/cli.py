"""The ``bluezone`` command: thin click wrappers over library calls.

Every command that reports has ``--json``; errors become one line on stderr with exit
code 2 for bad input and 1 for other failures (``--debug`` shows the traceback), and Ctrl-C
one line with exit code 130 (``BluezoneGroup.main``).
"""

from __future__ import annotations

import atexit
import errno
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

import click

from bluezone.clioutput import refusal_line, refused_output, take_over_standard_streams, unwritable_encoding
from bluezone.clitypes import DB_ORIGIN, QUICK_EXIT, LazyCommands, emit_json, json_option
from bluezone.errors import BluezoneError, NotAStoreError
from bluezone.exitnow import exit_now, forget_unhandled_ctrl_c
from bluezone.printable import OneLineFormatter, error_line


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
    "run": "bluezone.proximity.cli:run",
    "status": "bluezone.proximity.cli:status",
    "purge": "bluezone.proximity.cli:purge",
    "doctor": "bluezone.proximity.cli:doctor",
    "keys": "bluezone.matching.cli:keys",
    "check": "bluezone.matching.cli:check",
    "benchmark": "bluezone.matching.cli:benchmark",
    "upload": "bluezone.client.cli:upload",
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
                    click.echo(error_line(f"Error: {exc}"), err=True)
                    sys.exit(exc.exit_code)
                except (OSError, RuntimeError) as exc:  # $BLUEZONE_CONFIG naming no path at all: was a traceback
                    bad_path = unusable_path(exc)
                    if bad_path is None:
                        raise
                    click.echo(error_line(f"Error: {bad_path}"), err=True)
                    sys.exit(2)
            try:
                return super().make_context(info_name, args, parent, **extra)
            except click.UsageError as exc:  # the group's own options (--bogus): no invoke() to report it
                _usage_error(exc)
            except OSError:  # (--help and --version write as the options are read, before any command runs)
                exit_if_output_refused()
                raise
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

    def main(  # type: ignore[override]  # (click's overloads: NoReturn when standalone)
        self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        """click's ``main``, but Ctrl-C wherever it comes (the config read, a command, its clean-up, click's
        own steps) ends in one line and exit 130, 128 + SIGINT as a shell reports it, once every ``with``
        and ``finally`` under it has run: click said "Aborted!" and exit 1, which a script takes for a
        failure of the command itself.  click's own end otherwise (its errors shown, its exit codes)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)  # an exit code, or a command's None
            sys.stdout.flush()  # (what is still buffered: a failure to write it said here, not as Python exits)
        except click.Abort as exc:
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):  # (at a question: its context)
                interrupted()
            click.echo("Aborted!", err=True)  # (a question declined, or no input: click's own words)
            sys.exit(1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # (while click reported the first)
            interrupted()
        except (OSError, UnicodeEncodeError):  # (the flush above; --help, --version written as options are read)
            exit_if_output_refused()
            raise
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BluezoneError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # a database named by $BLUEZONE_DB or config.toml: say so, the user typed no --db
            where = _db_origin(ctx) if isinstance(exc, NotAStoreError) else ""
            click.echo(error_line(f"Error: {exc}{where}"), err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _usage_error(exc)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, KeyboardInterrupt):
            raise  # (Ctrl-C: main says so, once all has unwound)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the CLI
            if isinstance(exc, (OSError, UnicodeEncodeError)):
                exit_if_output_refused()
            if isinstance(exc.__cause__, KeyboardInterrupt):
                # Ctrl-C wrapped on its way up: Python before 3.12 makes one raised while a class is made (a
                # dataclass's fields named as a module loads) a RuntimeError "Error calling __set_name__"
                raise exc.__cause__ from None
            if ctx.obj and ctx.obj.get("debug"):
                raise
            bad_path = unusable_path(exc)
            if bad_path is not None:  # bad input wherever a command met it, not "OSError: ...", exit 1
                click.echo(error_line(f"Error: {bad_path}"), err=True)
                ctx.exit(2)
            click.echo(error_line(f"Error: {type(exc).__name__}: {exc} (run with --debug for details)"), err=True)
            ctx.exit(1)


def interrupted() -> NoReturn:
    """Ctrl-C's one line and exit code 130 (click has already ended the terminal's ``^C`` line)."""
    click.echo("Interrupted", err=True)
    forget_unhandled_ctrl_c()  # (else ``python -m bluezone`` could end by SIGINT after it)
    sys.exit(130)


def exit_if_output_refused() -> None:
    """If stdout has refused a write: one line and exit 1, as coreutils' "write error"; but a reader gone (``bluezone
    status | head``) is its choice, no failure: nothing said, 141 (128 + SIGPIPE, a shell's code for a writer killed
    so).  What is still buffered goes to /dev/null, so Python's last flush as it exits has nothing to fail on
    ("Exception ignored ... BrokenPipeError", exit 120).  Before click's own handling of a reader gone (exit 1)."""
    refused = refused_output()
    if refused is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    if isinstance(refused, BrokenPipeError):
        sys.exit(141)
    click.echo(refusal_line(refused), err=True)
    sys.exit(1)


def unusable_path(exc: BaseException) -> str | None:
    """The one line for a path the user gave that cannot even be looked up: a name longer than the file
    system takes, or a loop of symbolic links.  Every command's path options (--db, --config, --out,
    --server-db, $BLUEZONE_CONFIG, ...) meet such a path in ``Path.exists`` or ``Path.resolve``, which raise
    rather than answer; caught here once, not at each of them.  None for any other failure."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
        if exc.filename is None:  # (an error of no named path: said as it is)
            return f"cannot use a path: {exc.strerror}"
        return f"cannot use the path {os.fsdecode(exc.filename)}: {exc.strerror}"
    loop = "Symlink loop from "  # Python 3.11's Path.resolve (3.13 resolves, or raises ELOOP as an OSError)
    if isinstance(exc, RuntimeError) and str(exc).startswith(loop):
        return f"cannot use the path {str(exc).removeprefix(loop).strip(chr(39))}: Too many levels of symbolic links"
    return None


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
    click.echo(error_line(f"Error: {exc.format_message()}{_set_where(exc)}{where}"), err=True)
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
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(handlers=[handler])  # (does nothing if logging is set up already)
    logging.getLogger().setLevel(obj.get("log_level", logging.WARNING))


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
    """What the ``bluezone`` console script runs (``bluezone.__main__``, once this module has loaded)."""
    # OpenBLAS starts a thread per core as numpy is imported (0.04 s here, serial, before any
    # command begins); no command does linear algebra worth a thread.  A user's own setting stands.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    take_over_standard_streams()  # (a write stdout refused said in one line; a closed one not silently lost)
    if (unwritable := unwritable_encoding()) is not None:  # (said in UTF-8 on fd 2: its own encoding cannot say it)
        exit_now(unwritable, 2)
    obj: dict[str, Any] = {}
    try:
        cli(obj=obj, prog_name="bluezone")
    except SystemExit as exc:
        if obj.get(QUICK_EXIT):  # a command that closed all it opened (clitypes.end_quickly): `check`
            _end_now(exc.code)  # (returns only when it cannot)
        raise
    finally:
        # The process exits next: the collector's last full pass at exit would walk every object
        # the command made (numpy's, protobuf's, click's: ~0.03-0.05 s of a 1 s check) only to free
        # memory the system takes back anyway.  Frozen, they are left alone; what is not in a
        # reference cycle is still freed as the interpreter ends, atexit handlers still run, and
        # every command has closed its files, stores and worker pools itself (``with``) by now.
        gc.freeze()


def _end_now(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, but without the interpreter's teardown, which frees
    every module's objects one by one (a check's: 0.01-0.03 s) for memory the system takes back anyway.
    What an ordinary end does that matters still happens first: stdout and stderr flushed, the atexit
    handlers run (logging's flush, multiprocessing reaping its workers), deaf to Ctrl-C: the command is done
    and said so, and a Ctrl-C in a handler printed a traceback ("Exception ignored in atexit callback", in
    multiprocessing's reaping: 1 in ~50 random Ctrl-Cs of ``check --jobs 2``).  Returns, for the ordinary end,
    when another thread still runs (it would be waited for) or the output cannot be flushed (it says so)."""
    if threading.active_count() > 1 or not (code is None or isinstance(code, int)):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit._run_exitfuncs()
    try:  # what the handlers wrote
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    main()
