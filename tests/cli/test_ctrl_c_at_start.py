"""A Ctrl-C in Python's own start (``site``, runpy, the console script's imports) is beyond any Python code: the
handler CPython sets before ``site`` raises KeyboardInterrupt there, a traceback (~6 in 230 random Ctrl-Cs of
``check --jobs 2``).  A launcher can hold it by starting Python with SIGINT blocked (``env --block-signal=INT``):
``bluezone.__main__`` unblocks it inside its ``try``, so the held Ctrl-C is its one line and exit 130, not lost
(SIGINT blocked for the whole command: Ctrl-C did nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def _launched_with_ctrl_c_held() -> None:
    """As ``env --block-signal=INT`` leaves it, with a Ctrl-C already pressed: SIGINT blocked and pending."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_held_through_python_s_start_is_one_line_and_130(tmp_path: Path) -> None:
    ended = subprocess.run(
        [sys.executable, "-m", "bluezone", "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        preexec_fn=_launched_with_ctrl_c_held,
    )
    assert (ended.returncode, ended.stderr.split(), ended.stdout) == (130, ["Interrupted"], "")


def test_the_console_script_reaches_its_try_having_imported_nothing_else() -> None:
    """What ``bluezone.__main__`` and the package it is in import comes before ``main``'s ``try``, where a Ctrl-C is a
    traceback and exit -2: ``importlib`` and ``collections.abc`` (lazyexports) were ~3-10 ms of it in a clean venv,
    65 of 400 random Ctrl-Cs 0.03-0.13 s into `--version` were tracebacks there, 15 without them.  Without ``site`` (``-S``): in a venv whose ``.pth`` files imported them
    (an editable install), they were there before and the test would not see them."""
    root = Path(__file__).resolve().parents[2]
    imported = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; before = set(sys.modules); import bluezone.__main__; "
         "print(*sorted(set(sys.modules) - before))"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, check=True,
    ).stdout.split()
    assert imported == ["__future__", "bluezone", "bluezone.__main__", "bluezone.lazyexports"]


def test_main_s_first_step_puts_the_ctrl_c_handler_in_place_having_imported_nothing_else() -> None:
    """``sigint``'s handler is ``main``'s first step and imports nothing Python has not loaded as it starts but
    ``opcode``: ``signal`` (enum), ``inthread`` (typing, threading) and ``sigint``'s own typing imports came first,
    ~7-10 ms of Python's own handler inside ``main``'s ``try`` (a Ctrl-C landing in importlib's code there lost, or
    the import lock left held)."""
    root = Path(__file__).resolve().parents[2]
    imported = subprocess.run(
        [sys.executable, "-S", "-c", "import sys, bluezone.__main__; before = set(sys.modules); import bluezone.sigint; "
         "print(*sorted(set(sys.modules) - before))"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, check=True,
    ).stdout.split()
    assert imported == ["_opcode", "bluezone.sigint", "opcode"]
