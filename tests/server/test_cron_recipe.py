"""README's daily check from cron, run as cron runs it (``sh -c``, a bare environment, bluezone's full path) against
the key server on loopback: it mails (prints) the text when the check brings something new to act on
(``new_to_act_on`` in the JSON it writes beside it) or fails, and nothing when the news was told before."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from server_helpers import make_nodes

from bluezone.cli import cli

README = Path(__file__).parents[2] / "README.md"


def _cron_command() -> str:
    """The command of README's crontab line (after its five time fields)."""
    [line] = re.findall(r"^0 8 \* \* \* (.+)$", README.read_text(), flags=re.MULTILINE)
    return line


def _cron(home: Path) -> str:
    """What cron would mail: everything the job printed (cron's own environment: HOME, a short PATH)."""
    env = {"HOME": str(home), "LOGNAME": "bluezone", "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
    # (and .ci/run's libfaketime clock, which the server and the scene run on)
    env |= {k: v for k, v in os.environ.items() if k.startswith("FAKETIME") or k in ("LD_PRELOAD", "TZ")}
    done = subprocess.run(["/bin/sh", "-c", _cron_command()], env=env, capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


def _bluezone(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), obj={})
    assert result.exit_code == 0, result.output
    return result.stdout


def _home(tmp_path: Path, server_url: str) -> Path:
    """A user's home as the README has it: bluezone in ~/.venvs/bluezone, the server in config.toml, node B's store
    (30 minutes near the F0) at the default path."""
    home = tmp_path / "home"
    (home / ".venvs" / "bluezone").mkdir(parents=True)
    (home / ".venvs" / "bluezone" / "bin").symlink_to(Path(sys.executable).parent)
    (home / ".config" / "bluezone").mkdir(parents=True)
    (home / ".config" / "bluezone" / "config.toml").write_text(f'[check]\nserver = "{server_url}"\n')
    data = home / ".local" / "share" / "bluezone"
    data.mkdir(parents=True, mode=0o700)
    return data


def test_the_cron_recipe_mails_what_is_new_and_only_that(live_server: dict, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path, now=time.time())
    url, db, signing = live_server["url"], str(live_server["db"]), str(live_server["keys"])
    code = json.loads(_bluezone("server", "issue-code", "--server-db", db, "--signing-key-dir", signing, "--json"))["code"]
    _bluezone("upload", "--server", url, "--code", code, "--db", str(nodes["a"]), "--yes")
    _bluezone("server", "export", "--server-db", db, "--signing-key-dir", signing, "--export-dir", str(live_server["exports"]))
    data = _home(tmp_path, url)
    for part in nodes["b"].parent.glob("b.db*"):
        shutil.copy2(part, data / part.name.replace("b.db", "bluezone.db", 1))
    home = data.parents[2]

    mailed = _cron(home)  # the first check: a close contact, new
    assert "Close contact now: yes, F1" in mailed and "new since the last check: yes" in mailed, mailed
    report = home / "bluezone-check.json"
    assert json.loads(report.read_text())["new_to_act_on"] is True and (report.stat().st_mode & 0o777) == 0o600
    assert (home / "bluezone-check.txt").read_text() == mailed

    assert _cron(home) == ""  # the next day's: told before, nothing mailed
    assert json.loads(report.read_text())["new_to_act_on"] is False
    assert "nothing new (told by an earlier check)" in (home / "bluezone-check.txt").read_text()

    config = home / ".config" / "bluezone" / "config.toml"
    config.write_text('[check]\nserver = "keys.example.org"\n')  # a check that fails: its error is mailed
    mailed = _cron(home)
    assert mailed.startswith("Error: ") and mailed.count("\n") == 1, mailed
