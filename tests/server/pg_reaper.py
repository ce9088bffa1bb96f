"""Stops a test session's private PostgreSQL cluster and deletes its directory once the session's process is gone.

`pg_ctl start` leaves the postmaster a child of init: a pytest killed outright (kill -9, a CI job's timeout, the OOM
killer) never ran the fixture's teardown, and its cluster served on, its ~2 GB of test databases in /dev/shm (memory)
until the machine rebooted.  This process, started in a session of its own by ``postgres_cluster``, waits for the
session's end however it comes and does the teardown's work; after a clean teardown it is killed, with nothing left.

    python pg_reaper.py PID ROOT STOP_COMMAND...
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time


def wait_for_end(pid: int) -> None:
    """Return once process ``pid`` has ended (a pidfd: no confusion with a later process given the same pid)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (Linux before 5.3): look every second
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                pass
            time.sleep(1)
    try:
        select.select([fd], [], [])  # readable once the process has ended
    finally:
        os.close(fd)


def main(argv: list[str]) -> None:
    pid, root, stop = int(argv[0]), argv[1], argv[2:]
    wait_for_end(pid)
    subprocess.run(stop, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
