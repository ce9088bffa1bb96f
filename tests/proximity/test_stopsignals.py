"""stop_on_signals: the daemon's and the venue beacon's clean stop on the first SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal

from bluezone.proximity.stopsignals import stop_on_signals


def test_the_first_signal_stops_once_and_the_handlers_go_with_the_block() -> None:
    async def main() -> tuple[list[str], bool, bool]:
        loop = asyncio.get_running_loop()
        stops: list[str] = []
        with stop_on_signals(lambda: stops.append("stop"), "stopping"):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)  # the loop runs the handler
            term_left = loop.remove_signal_handler(signal.SIGTERM)  # False: it removed itself (a second interrupts)
        int_left = loop.remove_signal_handler(signal.SIGINT)  # False: the block's end removed it
        return stops, term_left, int_left

    assert asyncio.run(main()) == (["stop"], False, False)


def test_nothing_is_installed_when_not_enabled() -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        with stop_on_signals(lambda: None, "stopping", enabled=False):
            return loop.remove_signal_handler(signal.SIGINT), loop.remove_signal_handler(signal.SIGTERM)

    assert asyncio.run(main()) == (False, False)
