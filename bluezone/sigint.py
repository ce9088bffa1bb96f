"""The CLI's SIGINT handler: Python's own (a Ctrl-C is a KeyboardInterrupt), except that one landing inside
importlib's own code is raised as soon as code outside importlib runs, not there.

Python raises a Ctrl-C at the next check between bytecodes, wherever it is, and importlib (3.11's
``_bootstrap``) is not written for one: ``_get_module_lock`` and the weak reference callback it puts on each
module's lock (``cb``) call ``_imp.acquire_lock()`` and only then enter the ``try`` whose ``finally`` releases
it, and the check after that call comes first.  A Ctrl-C there left the global import lock held by the main
thread, so another thread's next import waited forever: a check's ``bluezone-store`` thread importing the
native helper, waited for by the main thread, hung the check until two more Ctrl-Cs (4 in 1,000 random
Ctrl-Cs under ``python -S``).  In the callback it was also lost (8 more): nothing can be raised out of a weak
reference's callback ("Exception ignored in ...", the command ran on to exit 0).

So a Ctrl-C whose interrupted frame is importlib's is held, and ``sys.setprofile`` watches this thread's calls
until one is made outside importlib (the imported module's own code, or the importer's next call once the
import is over), where it is raised: importlib's steps between two such calls are short, and the check's long
work is outside it.  Not on a return (out of the callback it would be lost again); not ``_imp.lock_held()``,
which says whether any thread holds the lock (the store's, importing at the same moment).  A second Ctrl-C
while one is held is raised at once, as before: an import that never ends keeps no Ctrl-C out.

``asyncio.run`` puts its own handler (the main task cancelled) only over Python's default, so not over this one:
the daemon and the venue beacon stop on SIGINT by ``proximity.stopsignals``, which replaces either; a calibration
on a real radio takes the KeyboardInterrupt in its loop, as before Python 3.11."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

_IMPORTLIB = frozenset({"<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>"})


class CtrlCOutsideImportlib:
    """A SIGINT handler raising KeyboardInterrupt, held while the interrupted frame is importlib's."""

    def __init__(self) -> None:
        self.held = False
        self._profile_before: Any = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.held or frame is None or frame.f_code.co_filename not in _IMPORTLIB:
            self._raise()
        self.held = True
        self._profile_before = sys.getprofile()
        sys.setprofile(self._watch)

    def _watch(self, frame: FrameType, event: str, _arg: object) -> None:
        if event != "return" and frame.f_code.co_filename not in _IMPORTLIB:
            self._raise()

    def _raise(self) -> None:
        if self.held:
            self.held = False
            sys.setprofile(self._profile_before)
        raise KeyboardInterrupt


def install_handler() -> None:
    """Handle SIGINT so, in the main thread, when it is Python's default (not ignored by a launcher or
    handled by an embedder)."""
    python_s_own = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if threading.current_thread() is threading.main_thread() and python_s_own:
        signal.signal(signal.SIGINT, CtrlCOutsideImportlib())
