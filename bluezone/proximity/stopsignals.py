"""Stop a long-running command cleanly on SIGINT, SIGTERM or SIGHUP (Ctrl-C, ``systemctl stop``, the terminal closed).

The daemon and the venue beacon both own a radio and a store that must be closed, so the first
signal asks them to stop and finish.  A second request (a second Ctrl-C, or a Ctrl-C after a SIGTERM, or a SIGTERM
after a Ctrl-C) means the user will not wait: one line says so and the process exits at once, even when the clean
stop itself hangs.  SQLite loses nothing it had committed; what was not yet written is lost.  A SIGTERM or SIGHUP
while such a command still loads its modules is noted from its first step (``noted_until_the_stop``: ``bluezone run``)
and is the stop's first signal once it is in place, not the process's end by the signal.

One request can arrive twice: coreutils ``timeout`` (and some supervisors) signal the process and then
its process group, which holds it too.  SIGTERM after SIGTERM is always that copy, and ignored: the two kills
are microseconds apart at the sender, but the copy was seen 101 ms after the first at load 10 and, at load 15,
late enough to end a run that was storing everything (a 50 ms window failed CI); SIGTERM is the clean stop
however often it is sent (systemd's, kill's), and one that will not wait is SIGKILL, as for any daemon.  SIGINT
is a person's key: the same signal again within ``SAME_REQUEST_WITHIN`` of the first is a copy, later it is a
second Ctrl-C (hundreds of milliseconds apart); a different signal is always a second request.  The copy may come after
the stop is done, even once the process is exiting (``timeout`` descheduled between its two kills): the block's
handler passes straight to one that ignores it (never SIGTERM's default between them, the swaps made with the
signals held), and at exit the signal is ignored, since CPython puts SIGTERM's default back before it ends
(``_PySignal_Fini``) and a copy then killed a process that had stored everything (-15).

SIGHUP (the terminal closed, an ssh session dropped) is the clean stop as SIGTERM is: by default it killed the daemon,
and what it had not yet written was lost.  It is never a second request: a hangup is no one asking not to wait, and
copies come from the shell (it passes its own hangup to its jobs) and from systemd's ``SendSIGHUP`` right after its
SIGTERM.  ``nohup`` starts the command with it ignored, and it stays so.

Why by time and not by sender (``si_pid``, ``si_code``: ``timeout``'s two kills come from one process, a person's
Ctrl-Cs from the terminal): Python's handlers are not given the sender, and ``signal.sigwaitinfo`` (or signalfd)
sees a signal only when every thread of the process blocks it, else the kernel hands it to a thread that does not
and Python's C handler takes it (with one thread started before the mask, a ``sigwaitinfo`` thread got 0 of 20
SIGTERMs; 20 of 20 without it).  The mask would also pass to every child started in the block; ``kill`` typed
twice in one shell is one sender, so a window is needed anyway; and the copies that ended runs at load 10 came
during the process's exit, where no handler is left to ask.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import NoReturn

from bluezone.exitnow import exit_now as exit_with_line

log = logging.getLogger(__name__)

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None

SAME_REQUEST_WITHIN = 0.05
"""Seconds after a first SIGINT's handling within which SIGINT again is the same request, delivered twice (a
supervisor's ``timeout -s INT``): below the 100 ms or more between a person's two Ctrl-Cs.  (SIGTERM again is
always the same request: ``_same_request``.)"""


#: The signals that stop cleanly: Ctrl-C, a kill or ``systemctl stop``, the terminal closed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _same_request(sig: signal.Signals, first: signal.Signals, seconds_after: float) -> bool:
    """Whether ``sig``, ``seconds_after`` the first signal ``first``, is that request delivered again (a hangup
    after any first request is no new one)."""
    return sig == signal.SIGHUP or sig == first and (sig == signal.SIGTERM or seconds_after < SAME_REQUEST_WITHIN)


@contextlib.contextmanager
def stop_on_signals(
    stop: Callable[[], None], doing: str, *, enabled: bool = True, clock: Callable[[], float] = time.monotonic
) -> Iterator[None]:
    """While the block runs, the first SIGINT, SIGTERM or SIGHUP logs ``doing`` and calls ``stop`` once; a later one
    exits the process at once (``exit_now``), but for a copy of the first (``_same_request``: SIGTERM again, or
    SIGINT again within ``SAME_REQUEST_WITHIN`` seconds of ``clock``), which is ignored, even once the block has ended.  The handlers
    there before come back when the block ends (the first signal's at its next delivery: ``_copy_ignored_after``).
    A signal ignored when the block begins stays ignored, as Python leaves it: a shell starts ``bluezone run &``
    with SIGINT ignored, so that the terminal's Ctrl-C, meant for what runs in the foreground, leaves it running.
    A SIGTERM or SIGHUP noted before the block (``noted_until_the_stop``) is its first signal, taken at once.
    Call from a coroutine (the first signal is handled on the running loop); off the main thread or off Unix,
    nothing is installed."""
    import asyncio  # (here: ``noted_until_the_stop`` is a command's first step, before its heavy imports)

    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, _Handler] = {}
    first: tuple[signal.Signals, float] | None = None

    def again(sig: signal.Signals) -> None:
        """A signal after the first: a copy of it is ignored, anything else ends the process now."""
        if first is not None and _same_request(sig, first[0], clock() - first[1]):
            log.debug("%s again at once: the same request, delivered twice", sig.name)
            return
        exit_now(sig, doing)

    def on_signal(sig: signal.Signals) -> None:
        nonlocal first
        if first is not None:  # both were queued before the loop ran either handler
            again(sig)
            return
        first = (sig, clock())
        log.info("%s: %s", sig.name, doing)
        # the next signal is handled by Python itself: it must act even if the loop never runs again
        with _held(previous):  # (removing the loop's handler puts the default back: SIGTERM's kills)
            for each in previous:
                loop.remove_signal_handler(each)
                signal.signal(each, lambda signum, _frame: again(signal.Signals(signum)))
            stop()  # (held: a second signal sent meanwhile ends the process only after the first is passed on)

    noting: NotedBeforeTheStop | None = None
    if enabled:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                before = signal.getsignal(sig)
                if before == signal.SIG_IGN:  # ignored by whoever started us (a script's `bluezone run &`): it stays so
                    continue
                if isinstance(before, NotedBeforeTheStop):  # (the command's first step: its default is what it held)
                    noting, before = before, signal.SIG_DFL
                loop.add_signal_handler(sig, on_signal, sig)
                previous[sig] = before
    noted = noting.take() if noting is not None else None  # (taken once the loop has the signals: none falls between)
    if noted is not None:
        on_signal(noted)
    try:
        yield
    finally:
        with _held(previous):
            for sig, before in previous.items():
                loop.remove_signal_handler(sig)
                if first is not None and (sig == first[0] or sig == signal.SIGHUP):  # (a hangup's copy may come too)
                    _copy_ignored_after(sig, first[1], before, clock)
                else:
                    signal.signal(sig, signal.SIG_DFL if before is None else before)  # None: not set from Python


class NotedBeforeTheStop:
    """SIGTERM's and SIGHUP's handler while a command that stops cleanly on them loads, before its ``stop_on_signals``:
    their default ended ``bluezone run`` (exit 143, 129) while it imported its modules (the first ~0.8 s at load 8),
    where every later one is the clean stop.  It notes the first; ``stop_on_signals`` takes it as its own first."""

    def __init__(self) -> None:
        self.noted: signal.Signals | None = None
        self.taken = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.noted is None:
            self.noted = signal.Signals(signum)

    def take(self) -> signal.Signals | None:
        """The signal noted (once: then it is the taker's)."""
        self.taken = True
        return self.noted


@contextlib.contextmanager
def noted_until_the_stop() -> Iterator[None]:
    """SIGTERM and SIGHUP, where at their default, noted in the block (``NotedBeforeTheStop``) for the block's
    ``stop_on_signals`` to take as its first signal; their default comes back after it (unless ``stop_on_signals``
    has put its own since), and one noted that none took (a usage error came first) is delivered to it then: the
    process ends as it would have.  Off the main thread, nothing is noted."""
    noting = NotedBeforeTheStop()
    held = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # (not the main thread: only it runs signal handlers)
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, noting)
                held.append(sig)
    try:
        yield
    finally:
        for sig in held:
            if signal.getsignal(sig) is noting:
                signal.signal(sig, signal.SIG_DFL)
        if noting.noted is not None and not noting.taken:
            signal.raise_signal(noting.noted)


@contextlib.contextmanager
def _held(signals: Iterable[signal.Signals]) -> Iterator[None]:
    """Hold ``signals`` while their handlers are swapped, so one that comes meanwhile goes to the new handler."""
    signals = set(signals)
    if not signals:  # (none installed: off Unix there is no pthread_sigmask)
        yield
        return
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)


def _copy_ignored_after(sig: signal.Signals, at: float, before: _Handler, clock: Callable[[], float]) -> None:
    """After the block, the first signal's copy may still come: a clean stop quicker than the sender's two kills
    (``timeout`` descheduled between them on a busy machine) ended the block first, and the handler there before
    (SIGTERM's default: the process killed, its store left open) took the copy.  The copy (``_same_request``) is
    ignored; the handler there before comes back at the next ``sig`` and takes any later one.
    If none has come when the process exits, ``sig`` is ignored from then on: the stop is done, and Python's own end
    puts the default back for one that comes after."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        signal.signal(sig, signal.SIG_DFL if before is None else before)
        atexit.unregister(ignored_at_exit)
        if _same_request(sig, sig, clock() - at):
            log.debug("%s again at once, after the stop: the same request, delivered twice", sig.name)
            return
        signal.raise_signal(sig)  # (to the handler there before)

    def ignored_at_exit() -> None:
        if signal.getsignal(sig) is handler:
            signal.signal(sig, signal.SIG_IGN)

    signal.signal(sig, handler)
    atexit.register(ignored_at_exit)


def exit_now(sig: signal.Signals, doing: str) -> NoReturn:
    """Say in one line that the clean stop is abandoned, then end the process (exit 128 + the signal's
    number, as a shell reports a process a signal ended)."""
    exit_with_line(f"bluezone: {sig.name} while {doing}: exiting now without finishing (what was not yet stored is lost)", 128 + sig)
