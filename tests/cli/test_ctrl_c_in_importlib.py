"""A Ctrl-C landing in importlib's own code (Python 3.11) is raised once out of it (``bluezone.sigint``): it left the
global import lock held, so a thread's next import waited forever (a check hung), or it was lost in the weak reference
callback importlib puts on each module's lock.  Each case is made to happen, not waited for: a thread holds the import
lock until the main thread waits for it in the function named, sends SIGINT to itself, then lets go, so the Ctrl-C
comes right after the main thread's ``_imp.acquire_lock()`` returns, before the ``try`` that releases it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: The console script; its command (in place of click's) imports a module as the Ctrl-C lands, then waits for a
#: thread's import, as a check waits for its store's thread: exit 3 if that never ends.
CTRL_C_IN_IMPORTLIB = """
import _imp, importlib, os, signal, sys, threading, time
where = sys.argv[1]
go, taken = threading.Event(), threading.Event()
def ctrl_c_when_waiting_in(function):
    go.wait()
    _imp.acquire_lock()
    taken.set()
    while sys._current_frames()[threading.main_thread().ident].f_code.co_name != function:
        time.sleep(0.001)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # (delivered here, before the next step)
    _imp.release_lock()
threading.Thread(target=ctrl_c_when_waiting_in, args=(where,), daemon=True).start()
import bluezone.cli
def cli(**_kwargs):
    try:
        if where == "_get_module_lock":
            go.set()
            taken.wait()
        import imported_as_ctrl_c_lands  # ("cb": its body sets go, then waits for taken)
        time.sleep(0)
    finally:
        thread = threading.Thread(target=importlib.import_module, args=("imported_by_a_thread",), daemon=True)
        thread.start()
        thread.join(10)
        if thread.is_alive():
            print("a thread's import waited for the import lock", file=sys.stderr, flush=True)
            os._exit(3)
bluezone.cli.cli = cli
sys.argv = ["bluezone", "status"]
from bluezone.__main__ import main
main()
"""

IMPORTED_AS_CTRL_C_LANDS = """
import sys
script = sys.modules["__main__"]
if script.where == "cb":
    script.go.set()
    script.taken.wait()
"""


@pytest.mark.parametrize("where", [
    "_get_module_lock",  # as the import begins: the import lock left held, a thread's import waited forever (exit 3)
    "cb",  # as the module's lock is freed: the Ctrl-C lost, the lock left held too (exit 3)
])
def test_a_ctrl_c_in_importlib_is_raised_once_out_of_it(tmp_path: Path, where: str) -> None:
    (tmp_path / "imported_as_ctrl_c_lands.py").write_text(IMPORTED_AS_CTRL_C_LANDS)
    (tmp_path / "imported_by_a_thread.py").write_text("")
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_IMPORTLIB, where], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert (done.returncode, done.stderr.split(), done.stdout) == (130, ["Interrupted"], ""), done.stderr


#: The console script started with SIGINT ignored (a background job of a script), its command sending itself one.
IGNORED_BY_THE_LAUNCHER = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
import bluezone.cli
def cli(**_kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    print("ran on")
bluezone.cli.cli = cli
sys.argv = ["bluezone", "status"]
from bluezone.__main__ import main
main()
"""


def test_sigint_ignored_by_the_launcher_stays_ignored(tmp_path: Path) -> None:
    """The handler takes the place of Python's own only: not of SIG_IGN, which Python leaves in place."""
    done = subprocess.run([sys.executable, "-c", IGNORED_BY_THE_LAUNCHER], capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ran on\n", "")


#: The console script, its command collecting an object whose ``__del__`` is running as a Ctrl-C lands.
CTRL_C_IN_A_DEL = """
import signal, sys
import bluezone.cli
class Collected:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # (handled at once, inside the __del__)
def ran_on():
    print("ran on")
def cli(**_kwargs):
    Collected()
    ran_on()
bluezone.cli.cli = cli
sys.argv = ["bluezone", "status"]
from bluezone.__main__ import main
main()
"""


def test_a_ctrl_c_python_swallows_in_a_del_is_delivered_again(tmp_path: Path) -> None:
    """Raised in a ``__del__``, a KeyboardInterrupt is only printed ("Exception ignored in ...") and the command ran
    on to exit 0 (a two-job check whose worker's pipe was collected as the Ctrl-C came)."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_A_DEL], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stderr.split(), done.stdout) == (130, ["Interrupted"], ""), done.stderr


#: The console script, its command importing an optional name as numpy and protobuf do (``try: from m import name``
#: ``except ImportError``) while a Ctrl-C lands in CPython's making of the ImportError: the module's ``__getattr__``
#: waits in C code that raises (no check for signals in this thread) as another thread's SIGINT is noted, and the
#: next check is ``import_from``'s own, in ``PyObject_Repr`` as it writes the error's text.
CTRL_C_IN_A_FAILED_FROM_IMPORT = """
import _queue, signal, sys, threading, time, types
import bluezone.cli
waiting = threading.Event()
def __getattr__(name):
    if name != "optional_name":
        raise AttributeError
    waiting.set()
    try:
        _queue.SimpleQueue().get(timeout=0.3)
    except _queue.Empty:
        raise AttributeError  # (no call: no check for signals on the way out)
optional = types.ModuleType("optional")
optional.__getattr__ = __getattr__
sys.modules["optional"] = optional
def ctrl_c_while_it_waits():
    waiting.wait()
    time.sleep(0.05)
    signal.raise_signal(signal.SIGINT)  # (noted in this thread, handled by the main thread at its next check)
def cli(**_kwargs):
    threading.Thread(target=ctrl_c_while_it_waits).start()
    try:
        from optional import optional_name
    except ImportError:
        pass
    print("ran on")
bluezone.cli.cli = cli
sys.argv = ["bluezone", "status"]
from bluezone.__main__ import main
main()
"""


def test_a_ctrl_c_as_a_failed_from_import_is_reported_is_not_a_type_error(tmp_path: Path) -> None:
    """Raised there, the KeyboardInterrupt left CPython's ImportError without its text: "Error: TypeError: expected a
    message argument" and exit 1 (1 in ~1,500 random Ctrl-Cs of a check), the Ctrl-C lost.  Held, it is raised at the
    next call, past the ``except ImportError``."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_A_FAILED_FROM_IMPORT], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert (done.returncode, done.stderr.split(), done.stdout) == (130, ["Interrupted"], ""), done.stderr
