"""Stop a long-running command cleanly on SIGINT or SIGTERM (Ctrl-C, ``systemctl stop``).

The daemon and the venue beacon both own a radio and a store that must be closed, so the first
signal asks them to stop and finish; a second one gets the default behaviour and interrupts, for
when the clean stop itself hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None], doing: str, *, enabled: bool = True) -> Iterator[None]:
    """While the block runs, the first SIGINT or SIGTERM logs ``doing`` and calls ``stop``; the handlers go
    when it ends.  Call from a coroutine (the running loop's handlers); off the main thread or off Unix,
    nothing is installed."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s: %s", sig.name, doing)
        stop()
        loop.remove_signal_handler(sig)  # a second signal interrupts

    if enabled:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
