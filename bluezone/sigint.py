"""The CLI's SIGINT handler: Python's own (a Ctrl-C is a KeyboardInterrupt), except that one landing inside
importlib's own code is raised as soon as code outside importlib runs, not there; and one Python swallows (in a
``__del__``) is delivered again.

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

A Ctrl-C raised in a ``__del__`` or a weak reference's callback outside importlib (a ``multiprocessing`` pipe
of a two-job check collected as it lands: "Exception ignored in: <function _ConnectionBase.__del__ ...>", the
check ran on to exit 0, 1 in 12 runs of tests/cli/test_ctrl_c.py's forked-workers case under -n 2) is lost the
same way, and cannot be told from the interrupted frame (the ``__del__`` may be anywhere below it): Python hands it
to ``sys.unraisablehook``, which raises it again at the main thread's next call (``CtrlCAgainWhenSwallowed``).

``asyncio.run`` puts its own handler (the main task cancelled) only over Python's default, so not over this one:
the daemon and the venue beacon stop on SIGINT by ``proximity.stopsignals``, which replaces either; a calibration
on a real radio takes the KeyboardInterrupt in its loop, as before Python 3.11."""

from __future__ import annotations

import _thread
import sys
from opcode import opmap

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from types import FrameType
    from typing import Any
else:  # signal's C half, the same functions: ``signal``'s enums (``enum``, ~2-3 ms) load once the handler is in place
    import _signal as signal

_IMPORTLIB = frozenset({"<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>"})
_IMPORT_FROM = opmap["IMPORT_FROM"]


class CtrlCOutsideImportlib:
    """A SIGINT handler raising KeyboardInterrupt, held while the interrupted frame is importlib's."""

    def __init__(self) -> None:
        self.held = False
        self._profile_before: Any = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.held or frame is None or not (frame.f_code.co_filename in _IMPORTLIB or _in_import_from(frame)):
            self._raise()
        self.hold()

    def hold(self) -> None:
        """Raise the Ctrl-C at this thread's next call outside importlib (not here)."""
        if not self.held:
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


def _in_import_from(frame: FrameType) -> bool:
    """Whether ``frame`` is making the ImportError of a ``from module import name`` that failed: CPython checks
    for signals as it writes the error's text (``PyObject_Repr``), and a KeyboardInterrupt raised there left it
    without one, a "TypeError: expected a message argument" in place of both (``except ImportError`` around
    numpy's and protobuf's optional imports did not catch it, the Ctrl-C lost)."""
    return 0 <= frame.f_lasti < len(frame.f_code.co_code) and frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM


class CtrlCAgainWhenSwallowed:
    """``sys.unraisablehook``: a Ctrl-C raised where Python can only print it and go on (a ``__del__``, a weak
    reference's callback: "Exception ignored in ...") is raised again at the main thread's next call
    (``CtrlCOutsideImportlib.hold``: not ``_thread.interrupt_main``, whose signal is handled before the hook
    returns, in it, and lost again); anything else goes to the hook there before."""

    def __init__(self, handler: CtrlCOutsideImportlib, before: Callable[[Any], object]) -> None:
        self.handler = handler
        self.before = before
        self.main_thread = _thread.get_ident()  # (made where the handler was set: the main thread)

    def __call__(self, unraisable: Any) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and _thread.get_ident() == self.main_thread:
            self.handler.hold()
            return
        self.before(unraisable)


def install_handler() -> None:
    """Handle SIGINT so, in the main thread, when it is Python's default (not ignored by a launcher or
    handled by an embedder); and deliver again a Ctrl-C that lands in a ``__del__`` or weak reference callback
    (a check's ``multiprocessing`` pipe collected as the Ctrl-C came: lost, the check ran on to exit 0).

    The console script's first step (``bluezone.__main__``): this module imports nothing Python has not loaded as it
    starts but ``opcode``, so the handler is in place ~1 ms into ``main``'s ``try``, where importing ``signal``,
    ``inthread`` (``typing``, ``threading``) and this module first took ~7-10 ms of Python's own handler (a Ctrl-C
    landing in importlib's code lost or leaving its lock held)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    handler = CtrlCOutsideImportlib()
    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: only it runs signal handlers
        return
    sys.unraisablehook = CtrlCAgainWhenSwallowed(handler, sys.unraisablehook)
