"""End the process at once with one line: the way out when a clean stop is abandoned (a second Ctrl-C or
signal while the daemon stops, or while a check waits for work still using its store); and the note of an
unhandled Ctrl-C that CPython can leave behind a handled one, cleared before the exit code 130 that says it.

``os._exit``, not ``sys.exit``: nothing unwinds, so no store is closed under a statement another thread
still runs (SQLite crashed the process so).  SQLite loses nothing it had committed; its journal is
recovered at the next open."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def exit_now(line: str, code: int) -> NoReturn:
    """Flush what was printed, write ``line`` to stderr (one line, its newline added), exit with ``code``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a flush interrupted mid-write cannot be finished here
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"{line}\n".encode())
    os._exit(code)


def forget_unhandled_ctrl_c() -> None:
    """Clear CPython's note that a Ctrl-C went unhandled, once one has been handled.  A KeyboardInterrupt that
    leaves code run from a string (``exec``, ``eval``: namedtuple, dataclasses and enum make methods so as modules
    load) is noted as unhandled even when caught further up, and under ``python -m`` the process then ended by
    SIGINT (-2) after its "Interrupted", not with 130.  A string run to its end clears the note (CPython's
    ``run_eval_code_obj``, Python/pythonrun.c; measured on 3.11)."""
    exec("")
