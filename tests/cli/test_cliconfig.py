"""Defaults from $XDG_CONFIG_HOME/bluezone/config.toml and BLUEZONE_* variables; shell completion (issue 14.17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bluezone.cli import LAZY_COMMANDS, cli
from bluezone.cliconfig import load_defaults
from bluezone.proximity.store import SightingStore


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), obj={}, env=env)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "bluezone" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = (tmp_path / "file.db", tmp_path / "env.db", tmp_path / "line.db")
    for p in paths:
        SightingStore.open(p).close()
    return paths


def db_of(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.output)["db_path"]).name


def test_the_config_file_gives_defaults_and_the_line_and_environment_win(config: Path, stores) -> None:  # type: ignore[no-untyped-def]
    file_db, env_db, line_db = stores
    config.write_text(f'[status]\njson = true\ndb = "{file_db}"\n')
    assert db_of(invoke("status")) == "file.db"
    assert db_of(invoke("status", env={"BLUEZONE_DB": str(env_db)})) == "env.db"
    assert db_of(invoke("status", "--db", str(line_db), env={"BLUEZONE_DB": str(env_db)})) == "line.db"


def test_bluezone_db_serves_every_node_command(stores) -> None:  # type: ignore[no-untyped-def]
    _, env_db, _ = stores
    env = {"BLUEZONE_DB": str(env_db), "BLUEZONE_STATUS_JSON": "1"}
    assert db_of(invoke("status", env=env)) == "env.db"
    purged = invoke("purge", "--json", env=env)
    assert purged.exit_code == 0 and "sightings_deleted" in purged.output
    exported = invoke("keys", "export", "--out", "-", env=env)
    assert exported.exit_code == 0, exported.output


def test_a_command_s_own_database_variable_wins_over_bluezone_db(stores) -> None:  # type: ignore[no-untyped-def]
    # the narrower variable is the more deliberate one: BLUEZONE_DB won over BLUEZONE_STATUS_DB
    file_db, env_db, _ = stores
    env = {"BLUEZONE_DB": str(file_db), "BLUEZONE_STATUS_DB": str(env_db), "BLUEZONE_STATUS_JSON": "1"}
    assert db_of(invoke("status", env=env)) == "env.db"


def test_variables_are_named_after_the_options_as_typed() -> None:
    from bluezone.cliconfig import name_envvars

    name_envvars(cli)
    check = {p.name: p.envvar for p in cli.commands["check"].params}
    assert check["server_url"] == "BLUEZONE_CHECK_SERVER" and check["db_path"] == ["BLUEZONE_CHECK_DB", "BLUEZONE_DB"]
    run = {p.name: p.envvar for p in cli.commands["server"].commands["run"].params}  # type: ignore[attr-defined]
    assert run["port"] == "BLUEZONE_SERVER_RUN_PORT"


def test_what_sends_keys_is_never_a_default(config: Path) -> None:
    from bluezone.cliconfig import name_envvars

    name_envvars(cli)
    upload = {p.name: p.envvar for p in cli.commands["upload"].params}
    assert upload["yes"] is None and upload["include_today"] is None
    config.write_text("[upload]\nyes = true\n")
    result = invoke("status")
    assert result.exit_code == 2 and "--yes must be typed each time" in result.output


def test_a_typo_in_the_config_file_is_one_line(config: Path) -> None:
    config.write_text("[status]\njsn = true\n")
    result = invoke("status")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: config file {config}: [status] has no command or option 'jsn' (there: db, json)"
    ]


@pytest.mark.parametrize(
    "text, what",
    [("check = 5\n", "a number"), ("[[check]]\njobs = 1\n", "a list"), ("[server]\nrun = \"x\"\n", "text")],
)
def test_a_command_given_a_value_instead_of_its_table_is_said_so(config: Path, text: str, what: str) -> None:
    """'the top level has no command or option 'check' (there: ..., check, ...)': the command was there, its value was
    no table ('check = 5', or '[[check]]', an array of tables)."""
    config.write_text(text)
    result = invoke("status")
    assert result.exit_code == 2
    name = "server.run" if "server" in text else "check"
    assert result.output.strip().splitlines() == [
        f"Error: config file {config}: {name} is a command: give its options as a table ([{name}]), not {what}"
    ]


@pytest.mark.parametrize(
    "setting", ["db = 5", "db = true", 'db = ["a", "b"]', "db = {a = 1}", "json = 5", 'json = ["x"]', "set = [[1]]"]
)
def test_a_value_of_the_wrong_kind_in_the_config_file_is_one_line(config: Path, setting: str) -> None:
    # a number where a path goes, a list or table where one value goes: TypeError/AttributeError, exit 1
    table = "check" if setting.startswith("set") else "status"
    config.write_text(f"[{table}]\n{setting}\n")
    result = invoke(table, "--keys", "k.json") if table == "check" else invoke(table)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "TypeError" not in lines[-1] and "AttributeError" not in lines[-1]


@pytest.mark.parametrize(
    ("table", "setting"),
    [("status", 'db = "a\\u0000b"'), ("check", 'keys = "k\\u0000.json"'), ("check", 'set = ["threshold_db=5\\u0000"]')],
    ids=["path", "file", "in-a-list"],
)
def test_a_nul_character_in_a_config_value_is_one_line(config: Path, table: str, setting: str) -> None:
    """Only a config file can give a value a NUL (argv and the environment cannot hold one): click's path
    check (os.stat) raised ValueError "embedded null byte", exit 1 and "run with --debug"."""
    config.write_text(f"[{table}]\n{setting}\n")
    result = invoke(table)
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: config file {config}: [{table}]") and "NUL" in line, line
    assert "ValueError" not in line


def test_config_values_are_taken_as_if_typed(config: Path, stores) -> None:  # type: ignore[no-untyped-def]
    # a number, a TOML date or a list for a repeatable option reach click as the command line would
    config.write_text('[status]\njson = "yes"\n[check]\njobs = 2\nset = ["a=1", "b=2"]\n')
    from bluezone.cliconfig import load_defaults

    defaults = load_defaults(cli, config)
    assert defaults == {"status": {"as_json": "yes"}, "check": {"jobs": "2", "scorer_settings": ["a=1", "b=2"]}}


def test_nested_tables_reach_subcommands(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server.run]\nport = 8443\n[check]\nserver-key = 'k.pem'\n")
    assert load_defaults(cli, path) == {"server": {"run": {"port": "8443"}}, "check": {"server_key": "k.pem"}}


def test_bluezone_config_names_another_file(tmp_path: Path, stores) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other.toml"
    other.write_text(f'[status]\njson = true\ndb = "{stores[0]}"\n')
    assert db_of(invoke("status", env={"BLUEZONE_CONFIG": str(other)})) == "file.db"


@pytest.mark.parametrize("where", ["missing.toml", "."])
def test_a_bluezone_config_that_names_no_file_says_the_variable_did(tmp_path: Path, stores, where: str) -> None:  # type: ignore[no-untyped-def]
    """`bluezone status --db X` with BLUEZONE_CONFIG left in a profile said only 'no config file at ...': the
    command line named no file, so the user could not tell where it came from (walk17)."""
    result = invoke("status", "--db", str(stores[0]), env={"BLUEZONE_CONFIG": str(tmp_path / where)})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "BLUEZONE_CONFIG" in result.stderr and str(tmp_path) in result.stderr, result.stderr


def test_an_empty_bluezone_config_is_no_file_named(stores) -> None:  # type: ignore[no-untyped-def]
    # BLUEZONE_CONFIG= (set but empty, as a unit's Environment= line leaves it) was
    # 'no config file at ~/.config/bluezone/config.toml', exit 2, for every command
    env = {"BLUEZONE_CONFIG": "", "BLUEZONE_DB": str(stores[1]), "BLUEZONE_STATUS_JSON": "1"}
    assert db_of(invoke("status", env=env)) == "env.db"


def test_shell_completion() -> None:
    script = subprocess.run(
        [sys.executable, "-m", "bluezone"], env={**os.environ, "_BLUEZONE_COMPLETE": "bash_source"},
        capture_output=True, text=True, timeout=120,
    )
    assert "_bluezone_completion" in script.stdout
    words = subprocess.run(
        [sys.executable, "-m", "bluezone"],
        env={**os.environ, "_BLUEZONE_COMPLETE": "bash_complete", "COMP_WORDS": "bluezone simulate mar", "COMP_CWORD": "2"},
        capture_output=True, text=True, timeout=120,
    )
    assert "plain,market" in words.stdout.splitlines()


def test_a_server_from_the_config_gives_way_to_keys_typed_now(config: Path, stores, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """README's example config sets [check] server; `bluezone check --keys FILE` (also in the README)
    then said 'give either --keys FILE or --server URL, not both' and could not run at all."""
    _, _, line_db = stores
    keys = tmp_path / "keys.json"
    assert invoke("keys", "export", "--db", str(line_db), "--out", str(keys)).exit_code == 0
    config.write_text('[check]\nserver = "http://127.0.0.1:9"\n')
    result = invoke("check", "--keys", str(keys), "--db", str(line_db), "--json")
    assert result.exit_code == 0, result.output
    assert "exposures" in json.loads(result.output)
    env = {"BLUEZONE_CHECK_SERVER": "http://127.0.0.1:9"}  # the environment too
    assert invoke("check", "--keys", str(keys), "--db", str(line_db), env=env).exit_code == 0
    both = invoke("check", "--keys", str(keys), "--server", "http://127.0.0.1:9", "--db", str(line_db))
    assert both.exit_code == 2 and "not both" in both.output  # both typed: still a usage error


def test_a_server_key_from_the_config_gives_way_to_keys_typed_now(config: Path, stores, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """README's example config sets [check] server and server-key; `bluezone check --keys FILE.json`
    then said 'a JSON key file carries no signature, and --server-key verifies signed export .zip
    files only (leave --server-key out ...)', of an option the user never typed."""
    from bluezone.server.signing import keygen

    _, _, line_db = stores
    keys = tmp_path / "keys.json"
    assert invoke("keys", "export", "--db", str(line_db), "--out", str(keys)).exit_code == 0
    keygen(tmp_path / "signing")
    pem = tmp_path / "signing" / "public.pem"
    config.write_text(f'[check]\nserver = "http://127.0.0.1:9"\nserver-key = "{pem}"\n')
    result = invoke("check", "--keys", str(keys), "--db", str(line_db), "--json")
    assert result.exit_code == 0, result.output
    env = {"BLUEZONE_CHECK_SERVER_KEY": str(pem)}  # the environment too
    assert invoke("check", "--keys", str(keys), "--db", str(line_db), env=env).exit_code == 0, env
    typed = invoke("check", "--keys", str(keys), "--db", str(line_db), "--server-key", str(pem))
    assert typed.exit_code == 2 and "carries no signature" in typed.output  # typed now: still refused


def test_a_bad_value_from_the_config_or_the_environment_says_where_it_was_set(config: Path, stores) -> None:  # type: ignore[no-untyped-def]
    """It was click's "Invalid value for '--jobs' / '-j': 'x' ...": an option the user never typed."""
    _, _, line_db = stores
    config.write_text('[status]\njson = "maybe"\n')
    result = invoke("status", "--db", str(line_db))
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: Invalid value for '--json'") and f"(set in {config})" in line
    config.unlink()
    result = invoke("status", "--db", str(line_db), env={"BLUEZONE_STATUS_JSON": "maybe"})
    assert result.exit_code == 2 and "(set in $BLUEZONE_STATUS_JSON)" in result.output
    typed = invoke("check", "--jobs", "x", "--db", str(line_db))
    assert typed.exit_code == 2 and "set in" not in typed.output  # typed now: nothing to add


def test_a_missing_database_from_the_config_or_the_environment_says_where_it_was_set(
    config: Path, tmp_path: Path
) -> None:
    """"no sighting database at ... (give --db PATH ...)" to someone who never typed --db: now it names
    the variable or the file that set the path, so the user knows what to fix."""
    missing = tmp_path / "nowhere" / "node.db"
    result = invoke("status", env={"BLUEZONE_DB": str(missing)})
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert f"no sighting database at {missing}" in line and line.endswith("set in $BLUEZONE_DB, not with --db"), line
    result = invoke("status", env={"BLUEZONE_STATUS_DB": str(missing)})
    assert result.exit_code == 2 and "set in $BLUEZONE_STATUS_DB" in result.output
    config.write_text(f'[status]\ndb = "{missing}"\n')
    result = invoke("status")
    assert result.exit_code == 2 and f"set in {config}, not with --db" in result.output, result.output
    typed = invoke("status", "--db", str(missing))
    assert typed.exit_code == 2 and "set in" not in typed.output  # typed now: nothing to add


def test_a_typo_in_a_bluezone_variable_is_one_warning_and_the_known_ones_none(stores) -> None:  # type: ignore[no-untyped-def]
    """BLUEZONE_STATUS_JSN was silently ignored (click reads only the names it gave): one line on stderr
    names every such variable, with the name meant when one is close; the command still runs."""
    _, env_db, _ = stores
    env = {"BLUEZONE_STATUS_JSN": "1", "BLUEZONE_CHEK_SERVER": "https://x", "BLUEZONE_DB": str(env_db),
           "BLUEZONE_NATIVE": "0", "BLUEZONE_STATUS_DB": str(env_db)}
    result = invoke("status", env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and result.stderr == (
        "Warning: ignored, no bluezone option has this variable: BLUEZONE_CHEK_SERVER (did you mean"
        " BLUEZONE_CHECK_SERVER?), BLUEZONE_STATUS_JSN (did you mean BLUEZONE_STATUS_JSON?)\n"
    )
    result = invoke("status", env={"BLUEZONE_STATUS_JSON": "1", "BLUEZONE_DB": str(env_db), "BLUEZONE_CONFIG": ""})
    assert result.exit_code == 0 and result.stderr == "" and json.loads(result.stdout)
    # a command imported when it runs (server, venue, simulate, ...) is checked then, its subcommands too
    result = invoke("server", "run", "--help", env={"BLUEZONE_SERVER_RUN_PORTT": "8443"})
    assert result.exit_code == 0 and "BLUEZONE_SERVER_RUN_PORTT (did you mean BLUEZONE_SERVER_RUN_PORT?)" in result.stderr


def test_a_hostile_environment_is_one_short_warning_without_control_characters(stores) -> None:  # type: ignore[no-untyped-def]
    """20,000 unknown BLUEZONE_* variables held every command 17 s (a close name looked up for each) and
    printed a 1 MB line; a variable's name may hold ESC sequences (any byte but '=' and NUL), which reached
    the terminal.  Ten are named, escaped, the rest counted, and only the named get a close name."""
    from bluezone.cliconfig import MAX_NAMED_VARIABLES, unknown_envvars

    _, env_db, _ = stores
    env = {f"BLUEZONE_STATUS_JSN{i:05d}": "1" for i in range(2000)}
    env["BLUEZONE_\x1b]0;owned\x07" + "X" * 200] = "1"
    unknown = unknown_envvars(cli, env)
    assert len(unknown) == 2001 and sum(close is not None for _, close in unknown) <= MAX_NAMED_VARIABLES
    result = invoke("status", env={**env, "BLUEZONE_DB": str(env_db)})
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and len(result.stderr) < 2000, result.stderr[:300]
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "BLUEZONE_\\x1b]0;owned\\x07XXX" in result.stderr and result.stderr.endswith(" and 1991 more\n")


def test_every_option_s_own_variable_is_known() -> None:
    """Each variable the tree gives an option (every lazy command imported) is no typo."""
    from bluezone.cliconfig import OTHER_VARIABLES, unknown_envvars

    for name in list(cli.commands):
        cli.get_command(click.Context(cli), name)  # imported, its variables named
    names: list[str] = []
    stack = [cli]
    while stack:
        command = stack.pop()
        for param in command.params:
            names += param.envvar if isinstance(param.envvar, list) else [param.envvar] if param.envvar else []
        stack += list(command.commands.values()) if isinstance(command, click.Group) else []
    assert len(names) > 100 and {"BLUEZONE_SERVER_RUN_PORT", "BLUEZONE_VENUE_CREATE_NAME"} <= set(names)
    assert unknown_envvars(cli, dict.fromkeys([*names, *OTHER_VARIABLES], "1")) == []
    assert unknown_envvars(cli, {"BLUEZONE_VENUE_CREATE_NAEM": "x"}) == [("BLUEZONE_VENUE_CREATE_NAEM", "BLUEZONE_VENUE_CREATE_NAME")]


# One variable of each command group, as typed by someone who slipped: each run under another command, in a
# process of its own (in this one the tests before have imported every command already).
_GROUPS = sorted(LAZY_COMMANDS)


def _variables_of(group: str) -> list[str]:
    """The variables the command tree gives ``group``'s options (every command imported here to know)."""
    from bluezone.cliconfig import _known_variables

    prefix = f"BLUEZONE_{group.upper().replace('-', '_')}_"
    return sorted(n for n in _known_variables(cli, import_all=True)[0] if n.startswith(prefix))


def _fresh(args: list[str], env: dict[str, str], probe: str = "", before: str = "") -> subprocess.CompletedProcess[str]:
    """``bluezone ARGS`` in a new interpreter (``before``: a statement run first); ``probe``: a module whose
    import it then reports on stdout."""
    script = (
        f"import sys\n{before}\nfrom bluezone.cli import cli\n"
        f"try:\n    cli.main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED' if {probe!r} in sys.modules else 'NOT IMPORTED')\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}
    return subprocess.run([sys.executable, "-c", script], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("group", _GROUPS)
def test_a_typo_under_a_command_not_imported_yet_is_warned_of(group: str) -> None:
    """BLUEZONE_SERVER_RUN_PROT while `status` ran (server not imported) was no warning, but the same typo
    while `server run` ran was: whether a typo was told depended on which command's module was loaded."""
    real = _variables_of(group)[0]
    typo = real[:-1] + ("X" if real[-1] != "X" else "Y")  # one letter off: a close name
    other = "checkins" if group in {"run", "status", "purge", "doctor"} else "status"
    done = _fresh([other, "--help"], {typo: "1"})
    assert done.returncode == 0, done.stderr
    assert f"no bluezone option has this variable: {typo} (did you mean " in done.stderr, (group, done.stderr)


def test_a_right_variable_of_a_command_not_imported_is_no_warning_and_imports_nothing() -> None:
    """Known from COMMAND_VARIABLES: no warning, and the key server's commands (FastAPI, uvicorn) stay unloaded."""
    done = _fresh(["status", "--help"], {"BLUEZONE_SERVER_RUN_PORT": "8443", "BLUEZONE_CHECK_SERVER": "https://x"},
                  probe="bluezone.server.cli")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.endswith("NOT IMPORTED\n")


def test_every_written_down_variable_is_still_an_option_s() -> None:
    """A name left in COMMAND_VARIABLES after its option went would hide the typo of whoever still sets it.
    (A name missing from it costs only time: every command is imported to look.)"""
    from bluezone.cliconfig import COMMAND_VARIABLES, _known_variables

    known = _known_variables(cli, import_all=True)[0]
    assert not COMMAND_VARIABLES - known, sorted(COMMAND_VARIABLES - known)


def test_a_variable_missing_from_the_written_list_is_still_known() -> None:
    """The list is a shortcut: a name it lacks (an option added since) has every command imported to look."""
    done = _fresh(["status", "--help"], {"BLUEZONE_SERVER_RUN_PORT": "8443"},
                  before="import bluezone.cliconfig as c; c.COMMAND_VARIABLES = frozenset()")
    assert done.returncode == 0 and done.stderr == ""


def test_a_config_file_past_a_mebibyte_is_refused_before_it_is_parsed(config: Path, stores) -> None:  # type: ignore[no-untyped-def]
    """Any TOML file up to 16 MiB was parsed, 2.4 s a MiB at worst here, and config.toml is read at every command's
    start: a 16 MiB one held each for 40 s or more.  One with every option of every command set is 15 KB."""
    from bluezone.config import MAX_SETTINGS_BYTES

    setting = f'[status]\njson = true\ndb = "{stores[0]}"\n'
    padding = ("#" + "x" * 1023 + "\n") * (MAX_SETTINGS_BYTES // 1024)  # comments: valid, and quick to parse
    config.write_text(setting + padding[: MAX_SETTINGS_BYTES - len(setting)])
    assert db_of(invoke("status")) == "file.db"  # the limit itself is read
    config.write_text(setting + padding[: MAX_SETTINGS_BYTES - len(setting) + 1])
    result = invoke("status")
    assert result.exit_code == 2 and result.output == f"Error: {config}: config file too large (over 1,048,576 bytes)\n"
