"""``bluezone check`` imports what a check needs, not the simulator, the key server or the venues."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bluezone.cli import LAZY_COMMANDS, cli
from bluezone.clitypes import LazyCommands
from bluezone.crypto.intervals import rolling_start
from bluezone.proximity.store import SightingStore

NOON = 1_763_640_000.0

#: Never needed by a check of a key file against a store at the current schema.
NOT_FOR_A_CHECK = (
    "bluezone.sim", "bluezone.server", "bluezone.venues", "bluezone.calibration", "bluezone.client", "fastapi",
    "uvicorn", "matplotlib", "sqlite_utils", "asyncio",
)

LOADED_BY_A_CHECK = """
import json, sys
from click.testing import CliRunner
from bluezone.cli import cli
result = CliRunner().invoke(cli, sys.argv[1:])
assert result.exit_code == 0, result.output
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_by(args: list[str], tmp_path: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", LOADED_BY_A_CHECK, *args], capture_output=True, text=True, check=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_a_check_imports_no_other_command_and_no_sqlite_utils(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=NOON):
        pass  # a store at the current schema: opening it migrates nothing
    keys = tmp_path / "keys.json"
    entry = {"key": base64.b64encode(b"d" * 16).decode(), "rollingStartNumber": rolling_start(NOON), "rollingPeriod": 144}
    keys.write_text(json.dumps({"temporaryExposureKeys": [entry]}))
    loaded = _loaded_by(["check", "--keys", str(keys), "--db", str(db), "--json", "--jobs", "1"], tmp_path)
    assert "bluezone.matching.check" in loaded and "bluezone.proximity.store" in loaded
    wrong = sorted(m for m in loaded if m.split(".")[0] in NOT_FOR_A_CHECK or m.startswith(NOT_FOR_A_CHECK))
    assert not wrong, f"a check imported {wrong[:8]}"


def test_the_lazy_commands_are_the_ones_their_modules_define() -> None:
    for name, target in LAZY_COMMANDS.items():
        command = cli.commands[name]
        assert isinstance(command, click.Command) and command.name == name, target


def test_lazy_commands_import_only_when_looked_up() -> None:
    imported: list[str] = []
    plain = click.Command("plain", callback=lambda: None)
    commands = LazyCommands(
        {"plain": plain}, {"later": "bluezone.server.cli:server", "plain": "no.such:module"},
        on_import=lambda name, command: imported.append(name),
    )
    assert "later" in commands and "plain" in commands and "nothing" not in commands
    assert list(commands) == ["plain", "later"] and len(commands) == 2 and imported == []
    assert commands["plain"] is plain and commands.imported() == {"plain": plain}  # a defined one wins
    assert commands["later"].name == "server" and imported == ["later"]
    assert commands["later"] is commands.get("later") and imported == ["later"]  # once
    del commands["later"]
    assert list(commands) == ["plain"]


def test_a_lazy_command_that_cannot_be_imported_says_so_each_time() -> None:
    commands = LazyCommands({}, {"broken": "bluezone.no_such_module:command"})
    for _ in range(2):  # the same error again, not a KeyError that hides it
        with pytest.raises(ModuleNotFoundError):
            commands["broken"]
    assert "broken" in commands


def test_root_help_lists_every_command_and_a_lazy_one_runs() -> None:
    listed = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"\n  {name} " in listed for name in LAZY_COMMANDS)
    result = CliRunner().invoke(cli, ["simulate", "--list"])
    assert result.exit_code == 0 and result.output.strip()
    typo = CliRunner().invoke(cli, ["simulat"])
    assert typo.exit_code == 2 and "simulate" in typo.output


def test_the_console_script_leaves_the_last_collection_undone(tmp_path: Path) -> None:
    """``main`` freezes the collector as the command ends (its last full pass at exit cost a check
    ~0.03-0.05 s), and the command's output and exit code are as before."""
    code = (
        "import gc, sys\nfrom bluezone.cli import main\nsys.argv = ['bluezone', '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n"
        "    print('exit', exc.code, 'frozen', gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "Usage: bluezone" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "exit 0 frozen True"


def test_the_matcher_and_the_check_load_no_key_file_reader() -> None:
    """``bluezone.matching.check`` (and ``KEY_DTYPE``) import neither protobuf nor the export reader:
    a check imports them (~0.03 s) only once its store's thread, with more than one job, is reading."""
    code = "import sys, bluezone.matching.check, bluezone.keyformat.keys; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "bluezone.matching.check" in loaded and "bluezone.keyformat.keys" in loaded
    readers = sorted(m for m in loaded if m.startswith(("google.protobuf", "bluezone.keyformat.export", "bluezone.keyformat.keyfile", "zipfile")))
    assert not readers, f"imported before the check starts: {readers}"


def test_telling_meetings_across_midnight_loads_no_key_server_client() -> None:
    """``bluezone check`` with two exposures or more reads ``bluezone.client.exposures`` (a meeting
    across UTC midnight): that must not import the HTTP client, asyncio and the upload code, which
    ``bluezone.client``'s names did when imported at once (~0.1-0.3 s after every key was derived)."""
    code = "import sys, bluezone.matching.check, bluezone.client.exposures; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "bluezone.client.exposures" in loaded
    wrong = sorted(m for m in loaded if m.split(".")[0] in ("httpx", "httpcore", "asyncio") or m in (
        "bluezone.client.check", "bluezone.client.keyserver", "bluezone.client.uploading", "bluezone.client.state"))
    assert not wrong, f"imported for a check's output: {wrong[:8]}"



THREADS_AFTER_A_CHECK = """
import atexit, json, os
# counted as the process ends (after a check the console script ends it at once, once the atexit handlers ran)
atexit.register(lambda: print(json.dumps([os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task"))]), flush=True))
from bluezone.cli import main
main()  # the console script
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.parametrize("users", [None, "2"])
def test_the_console_script_starts_no_openblas_thread_unless_the_user_asks(tmp_path: Path, users: str | None) -> None:
    """numpy's OpenBLAS started a thread per core as it was imported: 0.04 s of a check's serial part."""
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=NOON):
        pass
    keys = tmp_path / "keys.json"
    entry = {"key": base64.b64encode(b"d" * 16).decode(), "rollingStartNumber": rolling_start(NOON), "rollingPeriod": 144}
    keys.write_text(json.dumps({"temporaryExposureKeys": [entry]}))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    if users is not None:
        env["OPENBLAS_NUM_THREADS"] = users
    out = subprocess.run(
        [sys.executable, "-c", THREADS_AFTER_A_CHECK, "check", "--keys", str(keys), "--db", str(db), "--json", "--jobs", "1"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=env,
    )
    setting, threads = json.loads(out.stdout.splitlines()[-1])
    assert setting == (users or "1")  # the user's own setting stands
    if users is None:
        assert threads == 1  # numpy imported by the check, and no thread beside this one
