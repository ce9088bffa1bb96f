"""A check's forked workers end with their parent.  The OOM killer picks the largest process (a
check's parent, holding the store) and ``kill -9`` gives no ``finally``: the workers, waiting for
work or in a chunk, lived on for ever, each holding its copy of the parent and the parent's stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

#: A match with two jobs whose worker notes its pid and never ends its chunk; the parent waits in it.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import bluezone.matching.matcher as matcher_module
    from bluezone.matching.benchmark import synthetic_data

    def stuck_worker():
        open(sys.argv[1], "w").write(str(os.getpid()))
        signal.pause()

    matcher_module.MIN_KEYS_PER_JOB = 100
    matcher_module._worker = stuck_worker
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    matcher_module.match(keys, sightings, jobs=2)
    """
)


def running(pid: int) -> bool:
    """``pid`` exists and is no zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(condition: object, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, str(pid_file)], stdout=subprocess.DEVNULL)
    worker = 0
    try:
        assert wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 60), "the worker never started"
        worker = int(pid_file.read_text())
        assert running(worker)
        parent.kill()
        parent.wait(30)
        assert wait_for(lambda: not running(worker), 10), "the worker outlived its killed parent"
    finally:
        parent.kill()
        if worker and running(worker):
            os.kill(worker, signal.SIGKILL)
