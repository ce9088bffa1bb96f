"""A Ctrl-C once a command is done, while the console script's quick end runs the atexit handlers (multiprocessing
reaping a two-job check's workers): Python printed "Exception ignored in atexit callback" and a traceback after the
report (1 in ~50 random Ctrl-Cs of ``check --jobs 2`` on the largest real day).  The command is done and said so:
its end is deaf to Ctrl-C, its exit code its own."""

from __future__ import annotations

import subprocess
import sys

END_UNDER_CTRL_C = """
import atexit, signal
signal.signal(signal.SIGINT, signal.default_int_handler)  # (whatever the test runner's parent left)
from bluezone.cli import _end_now

@atexit.register
def reaping() -> None:
    signal.raise_signal(signal.SIGINT)  # Ctrl-C, as multiprocessing waits for a worker
    sum(range(1000))  # (Python's handler runs between these steps)
    print("reaped", flush=True)

_end_now(0)
"""


def test_a_ctrl_c_while_the_atexit_handlers_run_at_the_quick_end_is_not_a_traceback() -> None:
    ended = subprocess.run([sys.executable, "-c", END_UNDER_CTRL_C], capture_output=True, text=True, timeout=60)
    assert (ended.returncode, ended.stdout, ended.stderr) == (0, "reaped\n", "")
