"""stop_on_signals: the daemon's and the venue beacon's clean stop on the first SIGINT/SIGTERM, and the exit at
once on the next."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

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


# A command whose clean stop hangs: the first signal calls stop (printed), the loop then blocks in a flush that
# never ends, as a stuck radio or disk would.
_HUNG_STOP = """
import asyncio, sys, time
from bluezone.proximity.stopsignals import stop_on_signals

async def main() -> None:
    asked = asyncio.Event()
    def stop() -> None:
        print("stop", flush=True)
        asked.set()
    with stop_on_signals(stop, "flushing and stopping"):
        print("ready", flush=True)
        await asked.wait()
        # the flush that never ends, blocking the loop; in short sleeps, because a signal that lands after
        # Python last checked for signals but before one long sleep begins is handled only when it ends
        # (CPython runs handlers between bytecodes): the test sent its second signal in that gap in 2 of 40
        # runs and then waited out the whole sleep
        for _ in range(600):
            time.sleep(0.1)

asyncio.run(main())
print("returned", flush=True)
"""


def _start_hung() -> subprocess.Popen[str]:
    proc = subprocess.Popen(  # a mask left by an earlier test of this process must not block the signals sent
        [sys.executable, "-c", _HUNG_STOP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, []),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


@pytest.mark.parametrize(("first", "second"), [
    (signal.SIGINT, signal.SIGTERM),  # Ctrl-C, then systemctl stop
    (signal.SIGINT, signal.SIGINT),  # Ctrl-C twice
    (signal.SIGTERM, signal.SIGINT),
])
def test_a_second_signal_exits_at_once_with_one_line_and_stop_is_called_once(
    first: signal.Signals, second: signal.Signals
) -> None:
    proc = _start_hung()
    assert proc.stdout is not None
    proc.send_signal(first)
    assert proc.stdout.readline() == "stop\n"
    proc.send_signal(second)
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + second
    assert out == ""  # stop was not called again, and nothing ran after the block
    lines = [line for line in err.splitlines() if "stopsignals" not in line]
    assert lines == [
        f"bluezone: {second.name} while flushing and stopping: exiting now without finishing "
        "(what was not yet stored is lost)"
    ]


def test_two_signals_sent_together_call_stop_once_and_exit() -> None:
    """`kill -INT pid; kill -TERM pid`: both may wait on the loop before it runs either handler."""
    proc = _start_hung()
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    # which one the loop takes first is the kernel's and the loop's order: the other is the second
    second = signal.Signals(proc.returncode - 128)
    assert second in (signal.SIGINT, signal.SIGTERM)
    assert out == "stop\n"
    assert err.count("exiting now without finishing") == 1 and f"bluezone: {second.name} while" in err


def test_the_handlers_there_before_come_back_after_a_stop() -> None:
    def mine(_signum: int, _frame: object) -> None:
        """A SIGTERM handler the caller had before the block."""

    async def main() -> tuple[object, object]:
        with stop_on_signals(lambda: None, "stopping"):
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.05)  # the loop runs the first signal's handler
        return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    before = signal.signal(signal.SIGTERM, mine)
    try:
        term, interrupt = asyncio.run(main())
    finally:
        signal.signal(signal.SIGTERM, before)
    assert term is mine
    assert interrupt is not signal.SIG_DFL  # asyncio.run's own Ctrl-C handler, not "kill the process"
