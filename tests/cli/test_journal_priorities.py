"""Under systemd every line a unit writes is stored at the stream's priority (INFO) unless it starts with
sd-daemon(3)'s ``<N>``: ``journalctl -u bluezone -p warning`` (docs/bluetooth.md, "only recoveries and
problems") showed none of the daemon's warnings or its last ``Error:`` line (user30's walk).  Into the journal's
stream (``$JOURNAL_STREAM`` naming stderr) each log record and error line now carries its priority; anywhere
else, nothing changes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bluezone.printable import OneLineFormatter, journal_priority
from bluezone.proximity.store import SightingStore


def _bluezone(
    args: list[str], stderr_file: Path, journal_stream: str | None, home: Path, variables: dict[str, str] | None = None
) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEZONE_", "JOURNAL_STREAM"))}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home), **(variables or {})}
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    with stderr_file.open("wb") as err:
        rc = subprocess.run(
            [sys.executable, "-m", "bluezone", *args], stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=120,
        ).returncode
    return rc, stderr_file.read_text()


def _stream_of(path: Path) -> str:
    path.touch()
    status = path.stat()
    return f"{status.st_dev}:{status.st_ino}"


def test_into_the_journal_each_line_says_its_priority(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    rc, text = _bluezone(["status", "--db", str(tmp_path / "none.db")], err, _stream_of(err), tmp_path)
    assert rc == 2 and text.startswith("<3>Error: no sighting database at ") and text.count("\n") == 1
    db = tmp_path / "x.db"
    SightingStore.open(db).close()
    db.chmod(0o644)  # a store others may read: a logged warning, every open
    rc, text = _bluezone(["status", "--db", str(db)], err, _stream_of(err), tmp_path)
    assert rc == 0 and text.startswith("<4>") and " WARNING bluezone.proximity.store: sighting database " in text, text


def test_the_clis_own_warning_line_is_a_warning_in_the_journal(tmp_path: Path) -> None:
    """Not a log record: the CLI writes it (a unit's ``Environment=BLUEZONE_RUN_BAKEND=...`` mistyped), and it was
    stored as INFO, below ``journalctl -p warning``."""
    err = tmp_path / "stderr"
    mistyped = {"BLUEZONE_STATUS_DBB": "x.db"}
    rc, text = _bluezone(["status", "--db", str(tmp_path / "none.db")], err, _stream_of(err), tmp_path, mistyped)
    warning, error = text.splitlines()
    assert rc == 2 and warning.startswith("<4>Warning: ignored, no bluezone option has this variable: BLUEZONE_STATUS_DBB")
    assert error.startswith("<3>Error: no sighting database at ")
    rc, text = _bluezone(["status", "--db", str(tmp_path / "none.db")], err, None, tmp_path, mistyped)
    assert text.startswith("Warning: ignored, no bluezone option has this variable: BLUEZONE_STATUS_DBB")


@pytest.mark.parametrize("stream", [None, "", "1:2", "not:numbers"], ids=["unset", "empty", "another-file", "junk"])
def test_anywhere_else_nothing_changes(tmp_path: Path, stream: str | None) -> None:
    rc, text = _bluezone(["status", "--db", str(tmp_path / "none.db")], tmp_path / "stderr", stream, tmp_path)
    assert rc == 2 and text.startswith("Error: no sighting database at ")


def test_each_level_has_syslogs_priority() -> None:
    record = logging.LogRecord("bluezone", logging.WARNING, __file__, 1, "adapter gone\nforged", None, None)
    assert OneLineFormatter("%(levelname)s %(message)s", journal=True).format(record) == "<4>WARNING adapter gone\\nforged"
    assert OneLineFormatter("%(levelname)s %(message)s", journal=False).format(record) == "WARNING adapter gone\\nforged"
    levels = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
    assert [journal_priority(level) for level in levels] == [3, 3, 4, 6, 7]
