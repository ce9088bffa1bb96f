"""A venue beacon whose radio never finishes opening (a bluetoothd that does not answer): a stop (SIGTERM, Ctrl-C) or
its ``--duration`` ends it, the radio closed.  Before, ``run_beacon`` waited in the open deaf to both, and since SIGTERM
again is the same stop only SIGKILL ended it (as ``bluezone run`` did until 554635f)."""

from __future__ import annotations

import asyncio
import os
import signal

from bluezone.clock import SystemClock, VirtualClock
from bluezone.proximity.backends.emulated import Air
from bluezone.venues import beacon
from bluezone.venues.broadcast import run_beacon
from bluezone.venues.owner import VenueSecrets

from silent_radio import SilentRadio
from tests.venues.venue_helpers import CLINIC

T0 = 1_796_400_000.0


def test_the_duration_ends_a_beacon_whose_radio_never_opens() -> None:
    clock = VirtualClock(T0)
    radio = SilentRadio(Air(clock, 1).radio("cafe", (0.0, 0.0), beacon.SERVICE_UUID))
    stats = clock.run(run_beacon(radio, VenueSecrets(CLINIC, bytes(32)), clock, 5.0))  # type: ignore[arg-type]
    assert clock.now() == T0 + 5.0 and radio.closed == 1 and stats.frames_sent == 0


def test_sigterm_ends_a_beacon_whose_radio_never_opens() -> None:
    clock = SystemClock()
    radio = SilentRadio(Air(VirtualClock(T0), 1).radio("cafe", (0.0, 0.0), beacon.SERVICE_UUID))

    async def main() -> object:
        running = asyncio.ensure_future(
            run_beacon(radio, VenueSecrets(CLINIC, bytes(32)), clock, handle_signals=True)  # type: ignore[arg-type]
        )
        await radio.opening.wait()
        os.kill(os.getpid(), signal.SIGTERM)  # (the loop's handler takes it: stop_on_signals)
        async with asyncio.timeout(10):
            return await running

    stats = asyncio.run(main())
    assert radio.closed == 1 and stats.frames_sent == 0  # type: ignore[attr-defined]
