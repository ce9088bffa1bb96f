"""Defaults for bluezone's commands: a config file, then ``BLUEZONE_*`` environment variables.

``$XDG_CONFIG_HOME/bluezone/config.toml`` (``BLUEZONE_CONFIG`` names another) has one table per
command, keyed by option names as typed on the command line::

    [check]
    server = "https://keys.example.org"
    server-key = "/etc/bluezone/server-key.pem"

    [run]
    backend = "bluez:hci1"

    [server.run]
    port = 8443

Every option can also come from the environment, named as click's ``auto_envvar_prefix`` would
but after the option as typed rather than its Python name: ``BLUEZONE_<COMMAND>_<OPTION>``, e.g.
``BLUEZONE_CHECK_SERVER``, ``BLUEZONE_SERVER_RUN_PORT``, ``BLUEZONE_STATUS_JSON=1``; the node's
sighting database is ``BLUEZONE_DB`` for every command that takes one (a command's own
``BLUEZONE_<COMMAND>_DB`` wins over it).  Options that send keys
or replace one without asking (``--yes``, ``--include-today``, ``--force``) have no variable.  The command line
wins over the environment, which wins over the file, which wins over the built-in default.
A ``BLUEZONE_*`` variable that names no option is one warning line on stderr (``warn_unknown_envvars``):
click reads only the names it was given, so a typo was ignored without a word.
(The daemon's own settings stay in ``daemon.toml`` beside it: ``bluezone run --config``.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from bluezone.clitypes import LazyCommands
from bluezone.config import read_toml_file, xdg_home
from bluezone.errors import ConfigError
from bluezone.printable import printable_line, warning_line

ENV_PREFIX = "BLUEZONE"
CONFIG_ENV = "BLUEZONE_CONFIG"
FILENAME = "config.toml"


#: Parameter names of the node's sighting database (``--db``): one variable for all of them.
NODE_DB_PARAMS = frozenset({"db_path"})
NODE_DB_ENV = "BLUEZONE_DB"
#: Options that must be typed each time: they send keys, replace a key, or skip the question before sending.
NO_ENV = frozenset({"yes", "force", "include_today"})


def name_envvars(command: click.Command, path: tuple[str, ...] = (ENV_PREFIX,)) -> None:
    """Give every option of ``command`` and its subcommands its environment variable (once)."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.envvar or not param.expose_value or param.name in NO_ENV:
            continue
        flags = [opt for opt in param.opts if opt.startswith("--")]
        if not flags:
            continue
        own = "_".join((*path, flags[0][2:])).upper().replace("-", "_")
        param.envvar = [own, NODE_DB_ENV] if param.name in NODE_DB_PARAMS else own  # the narrower one wins
    if isinstance(command, click.Group):
        # a lazy group's commands not imported yet get theirs when imported (bluezone/cli.py)
        commands = command.commands
        for name, sub in (commands.imported() if isinstance(commands, LazyCommands) else commands).items():
            name_envvars(sub, (*path, name))


#: BLUEZONE_* variables that are no command's option: this file's path, the native helper's switch
#: (crypto/derivation.py), and those of the test suite and the wheel build.  Never warned of.
OTHER_VARIABLES = frozenset(
    {CONFIG_ENV, NODE_DB_ENV, "BLUEZONE_NATIVE", "BLUEZONE_NATIVE_TOOLS", "BLUEZONE_HYPOTHESIS_EXAMPLES",
     "BLUEZONE_NO_POSTGRES"}
)


#: Every command's variables, ``BLUEZONE_`` left out, written down so that a variable of a command not imported
#: yet is known without importing it (importing every command adds ~0.4 s to `status --help` at load 28).  A
#: name missing here costs only that time: a variable it does not know has every command imported to look.  A name no option has any more
#: would hide that variable's typo: tests/cli/test_cliconfig.py checks each is still an option's.
COMMAND_VARIABLES = frozenset(f"{ENV_PREFIX}_{name}" for name in """
    BENCHMARK_JOBS BENCHMARK_JSON BENCHMARK_KEYS BENCHMARK_NAIVE_SAMPLE BENCHMARK_REPEATS BENCHMARK_SEED
    BENCHMARK_SIGHTINGS BENCHMARK_WITH_STORE
    CALIBRATE_ADAPTER CALIBRATE_CONFIG CALIBRATE_DISTANCE CALIBRATE_DRY_RUN CALIBRATE_DURATION
    CALIBRATE_EMULATED_OFFSETS CALIBRATE_FIND CALIBRATE_JSON CALIBRATE_PHONE_RSSI CALIBRATE_RADIO
    CALIBRATE_REFERENCE CALIBRATE_REFERENCE_MANUFACTURER CALIBRATE_REFERENCE_RADIO
    CALIBRATE_REFERENCE_RSSI_CORRECTION CALIBRATE_REFERENCE_TX_POWER CALIBRATE_SEED
    CHECKINS_DB CHECKINS_JSON
    CHECKIN_DB CHECKIN_END CHECKIN_IMAGE CHECKIN_JSON CHECKIN_START
    CHECKOUT_DB CHECKOUT_JSON
    CHECK_BLUEZONE3_LIST CHECK_DB CHECK_JOBS CHECK_JSON CHECK_KEYS CHECK_REPIN CHECK_RSSI_CORRECTION CHECK_SCORER
    CHECK_SCORER_CONFIG CHECK_SERVER CHECK_SERVER_KEY CHECK_SET
    DOCTOR_ADAPTER DOCTOR_CONFIG DOCTOR_DB DOCTOR_JSON DOCTOR_SCAN_SECONDS
    EVALUATE_BOOTSTRAP EVALUATE_BYSTANDERS EVALUATE_CALIBRATION EVALUATE_CALIBRATION_TABLE EVALUATE_CHAINS
    EVALUATE_JSON EVALUATE_RSSI_SHIFT EVALUATE_SEED EVALUATE_TX_POWER
    KEYS_DERIVE_COUNT KEYS_DERIVE_DAILY_KEY KEYS_DERIVE_DAYS_AFTER KEYS_DERIVE_INTERVAL KEYS_DERIVE_JSON
    KEYS_DERIVE_METADATA KEYS_DERIVE_PROTOCOL KEYS_DERIVE_SLOTS KEYS_DERIVE_SLOTS_PER_DAY KEYS_DERIVE_TEK
    KEYS_EXPORT_DAYS KEYS_EXPORT_DB KEYS_EXPORT_OUT KEYS_EXPORT_PROTOCOL
    PURGE_DATED_AHEAD PURGE_DB PURGE_JSON
    RUN_ADAPTER RUN_ALSO_BLUEZONE_V3 RUN_BACKEND RUN_CONFIG RUN_DB RUN_DURATION
    SERVER_BENCHMARK_EXPORT_KEYS SERVER_BENCHMARK_JSON SERVER_BENCHMARK_REPEAT SERVER_BENCHMARK_SERVER_DB
    SERVER_BENCHMARK_UPLOADS SERVER_EXPORT_CREATE_DB SERVER_EXPORT_EXPORT_DIR SERVER_EXPORT_JSON
    SERVER_EXPORT_MAX_KEYS_PER_FILE SERVER_EXPORT_MIN_KEYS_PER_FILE SERVER_EXPORT_NO_ROLLUPS SERVER_EXPORT_REGION
    SERVER_EXPORT_ROLLUP_AFTER_DAYS SERVER_EXPORT_SERVER_DB SERVER_EXPORT_SIGNING_KEY_DIR
    SERVER_ISSUE_CODE_CREATE_DB SERVER_ISSUE_CODE_EXPOSURE_DATE SERVER_ISSUE_CODE_JSON SERVER_ISSUE_CODE_LIFETIME
    SERVER_ISSUE_CODE_MAX_RECURSIVE_PER_DAY SERVER_ISSUE_CODE_SERVER_DB SERVER_ISSUE_CODE_SHORT
    SERVER_ISSUE_CODE_SIGNING_KEY_DIR SERVER_ISSUE_CODE_SYMPTOM_ONSET SERVER_ISSUE_CODE_TEST_DATE
    SERVER_ISSUE_CODE_TYPE SERVER_KEYGEN_JSON SERVER_KEYGEN_KEY_ID SERVER_KEYGEN_KEY_VERSION SERVER_KEYGEN_OUT
    SERVER_REVOKE_CODE_CODE SERVER_REVOKE_CODE_JSON SERVER_REVOKE_CODE_SERVER_DB SERVER_REVOKE_CODE_SIGNING_KEY_DIR
    SERVER_RUN_ACCESS_LOG SERVER_RUN_EXPORT_DIR SERVER_RUN_EXPORT_EVERY SERVER_RUN_FORWARDED_ALLOW_IPS
    SERVER_RUN_GUESSING_ALARM SERVER_RUN_HOST SERVER_RUN_MAX_CONNECTIONS SERVER_RUN_MAX_CONNECTIONS_PER_CLIENT
    SERVER_RUN_MAX_KEYS_PER_DAY SERVER_RUN_MAX_KEYS_PER_FILE SERVER_RUN_MIN_KEYS_PER_FILE SERVER_RUN_NO_ROLLUPS
    SERVER_RUN_PORT SERVER_RUN_REGION SERVER_RUN_REQUEST_TIMEOUT SERVER_RUN_ROLLUP_AFTER_DAYS SERVER_RUN_SERVER_DB
    SERVER_RUN_SIGNING_KEY_DIR SERVER_RUN_WORKERS SERVER_STATUS_GUESSING_ALARM SERVER_STATUS_JSON
    SERVER_STATUS_LATE_AFTER SERVER_STATUS_SERVER_DB
    SIMULATE_CHECKIN_RATE SIMULATE_GENERATE SIMULATE_JSON SIMULATE_LEVELS SIMULATE_MINUTES SIMULATE_OUT
    SIMULATE_SAVE_SCENE SIMULATE_SEED SIMULATE_STORE SIMULATE_VENUES
    STATUS_DB STATUS_JSON
    UPLOAD_CHECKINS UPLOAD_CODE UPLOAD_DB UPLOAD_DRY_RUN UPLOAD_EXPOSURE_DATE UPLOAD_JSON UPLOAD_SERVER
    UPLOAD_SYMPTOM_ONSET
    VENUE_BEACON_BACKEND VENUE_BEACON_DURATION VENUE_BEACON_JSON VENUE_CREATE_ADDRESS VENUE_CREATE_DEFAULT_MINUTES
    VENUE_CREATE_END VENUE_CREATE_JSON VENUE_CREATE_NAME VENUE_CREATE_OUT VENUE_CREATE_START VENUE_CREATE_TYPE
    VENUE_POSTER_JSON VENUE_POSTER_OUT VENUE_SHOW_JSON VENUE_WARN_CODE VENUE_WARN_END VENUE_WARN_JSON
    VENUE_WARN_SERVER VENUE_WARN_START
""".split())


def unknown_envvars(group: click.Group, environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """The ``BLUEZONE_*`` variables set in ``environ`` that name no option (a typo, or an option since
    renamed: click would ignore them silently), each with the closest known name if one is close.
    Whichever commands are imported: a variable of one not imported yet (``LazyCommands``) is looked up in
    ``COMMAND_VARIABLES``, and one found in neither has every command imported to be sure (and to find its
    close name: ``BLUEZONE_CHEK_SERVER`` while ``status`` runs is "did you mean BLUEZONE_CHECK_SERVER?")."""
    environ = os.environ if environ is None else environ
    known, skipped = _known_variables(group)
    written = {name for name in COMMAND_VARIABLES if name.startswith(skipped)} if skipped else set()
    unknown = [n for n in sorted(environ) if n.startswith(ENV_PREFIX + "_") and n not in known and n not in written]
    if unknown and skipped:
        known = _known_variables(group, import_all=True)[0]
        unknown = [n for n in unknown if n not in known]
    # a close name costs ~1 ms a variable: 20,000 of them held every command for 17 s, so only those named
    suggested = unknown[:MAX_NAMED_VARIABLES]
    return [(name, _close_name(name, known) if name in suggested else None) for name in unknown]


def _known_variables(group: click.Group, import_all: bool = False) -> tuple[set[str], tuple[str, ...]]:
    """The variables the options of ``group``'s tree have, and the prefixes (``BLUEZONE_SERVER_``) of
    the commands not imported yet; ``import_all`` imports those first (one that cannot be, stays out)."""
    known, unchecked = set(OTHER_VARIABLES), []
    stack: list[tuple[click.Command, tuple[str, ...]]] = [(group, (ENV_PREFIX,))]
    while stack:
        command, path = stack.pop()
        for param in command.params:
            names = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            known.update(str(n) for n in names if n)
        if isinstance(command, click.Group):
            commands = command.commands
            imported = commands.imported() if isinstance(commands, LazyCommands) else commands
            for name in list(commands):
                prefix = (*path, name)
                if import_all and name not in imported:
                    try:
                        imported[name] = commands[name]
                    except ImportError:
                        pass
                if name in imported:
                    stack.append((imported[name], prefix))
                else:
                    unchecked.append("_".join(prefix).upper().replace("-", "_") + "_")
    return known, tuple(unchecked)


def _close_name(name: str, known: set[str]) -> str | None:
    """The known variable ``name`` most likely meant, if one is close."""
    import difflib  # here: only a mistyped variable needs it, every command would pay its import

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
    return close[0] if close else None


#: Unknown variables a warning names; more are counted (a hostile environment can hold tens of thousands).
MAX_NAMED_VARIABLES = 10
#: Characters of one variable's name shown.
MAX_SHOWN_NAME = 80


def _shown_name(name: str) -> str:
    """A variable's name as the warning prints it: escapes, not the terminal control characters it may hold."""
    shown = printable_line(name[:MAX_SHOWN_NAME])
    return shown + "..." if len(name) > MAX_SHOWN_NAME else shown


def warn_unknown_envvars(group: click.Group) -> None:
    """One line on stderr naming the ``BLUEZONE_*`` variables that set nothing (``unknown_envvars``)."""
    unknown = unknown_envvars(group)
    if unknown:
        named = ", ".join(
            f"{_shown_name(name)} (did you mean {close}?)" if close else _shown_name(name)
            for name, close in unknown[:MAX_NAMED_VARIABLES]
        )
        more = f" and {len(unknown) - MAX_NAMED_VARIABLES} more" if len(unknown) > MAX_NAMED_VARIABLES else ""
        click.echo(warning_line(f"Warning: ignored, no bluezone option has this variable: {named}{more}"), err=True)


def config_path() -> Path:
    """``$BLUEZONE_CONFIG``, else ``$XDG_CONFIG_HOME/bluezone/config.toml`` (``~/.config`` by default)."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named)
    return xdg_home("XDG_CONFIG_HOME", ".config") / "bluezone" / FILENAME


def load_defaults(group: click.Group, path: Path | None = None) -> dict[str, Any] | None:
    """The file's settings as click's ``default_map`` for ``group`` (None: no file).  A table or
    key that names no command or option is a ConfigError: a typo must not be ignored."""
    p = path if path is not None else config_path()
    named = path is None and bool(os.environ.get(CONFIG_ENV))
    if path is None and not named and not p.exists():
        return None
    # a variable set long ago (a shell profile, a unit file) is named: the command line shows no file at all
    what = f"config file named by {CONFIG_ENV}" if named else "config file"
    return _defaults_for(group, read_toml_file(p, what), str(p), [])


def _defaults_for(command: click.Command, table: dict[str, Any], where: str, trail: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    options = {
        opt.lstrip("-"): param
        for param in command.params
        if isinstance(param, click.Option) and param.name and param.expose_value
        for opt in param.opts
        if opt.startswith("--")
    }
    for key, value in table.items():
        subcommands = command.commands if isinstance(command, click.Group) else {}
        if isinstance(value, dict) and key in subcommands:
            out[key] = _defaults_for(subcommands[key], value, where, [*trail, key])
        elif key in subcommands:  # `check = 5`, or `[[check]]` (an array of tables): the command is there
            name = ".".join([*trail, key])
            raise ConfigError(
                f"config file {where}: {name} is a command: give its options as a table ([{name}]), not {_kind(value)}"
            )
        elif key in options or key.replace("_", "-") in options:
            param = options.get(key) or options[key.replace("_", "-")]
            if param.name in NO_ENV:
                raise ConfigError(f"config file {where}: --{key} must be typed each time, not set in a file")
            at = f"config file {where}: [{'.'.join(trail) or 'top level'}] {key}"
            out[str(param.name)] = _as_typed(param, value, at)
        else:
            at = f"[{'.'.join(trail)}]" if trail else "the top level"
            known = sorted(options) + sorted(subcommands)
            raise ConfigError(
                f"config file {where}: {at} has no command or option {key!r} (there: {', '.join(known) or 'nothing'})"
            )
    return out


def _kind(value: Any) -> str:
    """What a TOML value is, in words."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true or false"
    return "a number" if isinstance(value, (int, float)) else "a date or time"


def _as_typed(param: click.Option, value: Any, where: str) -> Any:
    """A TOML value as the command line would give it (a number or date as its text, a list for a
    repeatable option), for click to convert and check as it does typed values; a table, or a list
    where one value goes, is a ConfigError (click's converters raised TypeError on them), and so is text
    with a NUL: only a file can give one (argv and the environment cannot), and a path check raised ValueError."""
    def one(v: Any) -> Any:
        if isinstance(v, (dict, list)):
            raise ConfigError(f"{where}: expected one value, got a {'table' if isinstance(v, dict) else 'list'}")
        if isinstance(v, str) and "\0" in v:
            raise ConfigError(f"{where}: the text holds a NUL character (\\u0000), which no typed value can")
        return v if isinstance(v, str) or (isinstance(v, bool) and param.is_flag) else str(v)

    if param.multiple:
        return [one(v) for v in value] if isinstance(value, list) else [one(value)]
    return one(value)


def value_origin(ctx: click.Context, param: click.Parameter) -> str | None:
    """Where ``param``'s value came from when it was not typed: the config file's path or
    "$BLUEZONE_..."; None when typed or the built-in default.  An error about the value
    otherwise blames an option the user never gave."""
    if param.name is None:
        return None
    source = ctx.get_parameter_source(param.name)
    if source is ParameterSource.DEFAULT_MAP:
        return str(config_path())
    if source is ParameterSource.ENVIRONMENT:
        names = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
        found = next((name for name in names if name and name in os.environ), None)
        return f"${found}" if found else "the environment"
    return None
