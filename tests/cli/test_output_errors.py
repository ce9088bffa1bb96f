"""Output that cannot be written is said in one line and a non-zero exit, as coreutils' "write error": a stdout closed
before the command started (``bluezone status >&-``: exit 0, nothing said, the report lost) and a full disk
(/dev/full: "Error: OSError: [Errno 28] ...", or a traceback for ``--help``, and for a check's quick end when stdout
was closed); a reader gone (``| head``) quietly, 141, never a traceback.  Through the console script, its stdout
buffered and unbuffered (``PYTHONUNBUFFERED``: a refused write keeps nothing in a buffer to fail again)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bluezone.keyformat.keyfile import write_keys_json
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.store import SightingStore

DAY = 86_400


@contextmanager
def _stdout(how: str) -> Iterator[dict[str, object]]:
    """``subprocess.run``'s arguments for the child's stdout: closed, /dev/full, or a pipe whose reader has gone."""
    if how == "closed":
        yield {"preexec_fn": lambda: os.close(1)}
        return
    if how == "full":
        fd = os.open("/dev/full", os.O_WRONLY)
    else:
        read_end, fd = os.pipe()
        os.close(read_end)  # gone before the first write: no race with the child's output
    try:
        yield {"stdout": fd}
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def keys_and_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("output")
    tomorrow = (int(time.time()) // DAY + 1) * DAY  # the check purges on the wall clock
    keys, sightings, _ = synthetic_data(40, 200, seed=3, planted=1, end_time=tomorrow, days=2)
    write_keys_json(keys, tmp / "keys.json")
    with SightingStore.open(tmp / "s.db") as store:
        store.add_sightings(sightings)
    return tmp / "keys.json", tmp / "s.db"


COMMANDS = {
    "version": ["--version"],  # (written as the options are read, before any command runs)
    "status": ["status", "--db", "{db}", "--json"],
    "check": ["check", "--keys", "{keys}", "--db", "{db}"],  # (ends at once: clitypes.end_quickly)
}
SAID = {"closed": "Error: cannot write the output: Bad file descriptor",
        "full": "Error: cannot write the output: No space left on device"}


CASES = [
    *((command, how, "buffered") for command in COMMANDS for how in ("closed", "full")),
    ("version", "reader gone", "buffered"), ("status", "reader gone", "buffered"),
    ("status", "full", "unbuffered"), ("status", "reader gone", "unbuffered"),
]


@pytest.mark.parametrize(("command", "how", "buffering"), CASES)
def test_output_that_cannot_be_written_is_said_in_one_line(
    keys_and_store: tuple[Path, Path], command: str, how: str, buffering: str
) -> None:
    keys, db = keys_and_store
    args = [a.format(keys=keys, db=db) for a in COMMANDS[command]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED" and not k.startswith("BLUEZONE_")}
    if buffering == "unbuffered":
        env["PYTHONUNBUFFERED"] = "1"
    with _stdout(how) as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "bluezone", *args], stderr=subprocess.PIPE, text=True, env=env, timeout=120,
            cwd=db.parent, **stdout,  # type: ignore[call-overload]
        )
    if how == "reader gone":  # the reader's choice, not a failure: nothing said, as a writer killed by SIGPIPE
        assert (done.returncode, done.stderr) == (141, "")
    else:
        assert (done.returncode, done.stderr.splitlines()) == (1, [SAID[how]])
