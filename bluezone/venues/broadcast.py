"""The venue beacon itself: send the current epoch's frames round and round on a radio.

One frame a second (each repeated by the radio at its advertising interval), the whole set
again and again; at every 10-minute epoch a new set id and key (``beacon.py``).  A visitor's
daemon needs one full cycle (about ten seconds for a café's payload) to decode the venue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bluezone.clock import Clock
from bluezone.proximity.radio import Radio
from bluezone.proximity.stopsignals import stop_on_signals
from bluezone.venues import beacon
from bluezone.venues.owner import VenueSecrets

log = logging.getLogger(__name__)

FRAME_SECONDS = 1.0
#: Beacon TX power (dBm) for the emulated radio; a Pi's adapter uses its own.
TX_POWER = 0


@dataclass
class BeaconStats:
    """What a venue beacon has sent so far."""

    frames_sent: int = 0
    epochs: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"frames_sent": self.frames_sent, "epochs": self.epochs}


async def run_beacon(
    radio: Radio, secrets: VenueSecrets, clock: Clock, duration: float | None = None, stop: asyncio.Event | None = None,
    on_started: Callable[[], None] | None = None, on_epoch: Callable[[BeaconStats], None] | None = None,
    *, handle_signals: bool = False,
) -> BeaconStats:
    """Broadcast until ``duration`` seconds have passed (the loop's time: a step of the wall clock changes no duration),
    or ``stop`` is set; ``on_started`` is called once the radio is open (a start line printed before would read as a beacon on air),
    ``on_epoch`` at each new 10-minute epoch after the first (a beacon left running for days says it is
    still on air).  ``handle_signals`` (``bluezone venue beacon``): SIGINT and SIGTERM (Ctrl-C, ``systemctl
    stop``) set ``stop``, so the radio is closed and the totals returned; a second signal exits at once.  The duration
    counts from the call, the radio's open included, and a signal's stop ends the open too (a bluetoothd that never
    answered held both for ever: since SIGTERM again is the same stop, only SIGKILL ended it)."""
    stats = BeaconStats()
    stop = stop or asyncio.Event()
    opening: asyncio.Timeout | None = None  # the radio's open while it runs: a signal's stop ends it at once

    def stop_now() -> None:
        stop.set()
        if opening is not None:
            opening.reschedule(0)  # (due now: a bluetoothd that never answers held the stop and the duration for ever)

    with stop_on_signals(stop_now, "stopping the venue beacon", enabled=handle_signals):
        if stop.is_set():  # (asked as it loaded: nothing to open)
            return stats
        loop = asyncio.get_running_loop()
        # the loop's (monotonic) time, not the wall clock's: a beacon on a board without a real-time clock, started at
        # boot, stopped at NTP's first sync (a step ahead by the hours it was off); stepped back, it ran that much longer
        ends = None if duration is None else loop.time() + duration
        opening = asyncio.timeout_at(ends)
        try:
            async with opening:  # (the duration counts from the start, the open included, as the daemon's)
                await radio.open()
        except TimeoutError:
            if not opening.expired():  # (the radio's own)
                raise
            await radio.close()
            return stats
        finally:
            opening = None
        try:
            if on_started is not None:
                on_started()
            epoch, frames, i = None, [], 0
            while not stop.is_set() and (ends is None or loop.time() < ends):
                now = clock.now()
                if beacon.epoch_of(now) != epoch:
                    epoch = beacon.epoch_of(now)
                    frames, i = beacon.frames(secrets.venue.payload, secrets.beacon_key, epoch), 0
                    stats.epochs += 1
                    if on_epoch is not None and stats.epochs > 1:
                        on_epoch(stats)
                await radio.advertise_as(beacon.SERVICE_UUID, frames[i % len(frames)], TX_POWER)
                stats.frames_sent += 1
                i += 1
                await clock.sleep(FRAME_SECONDS)  # a stop is seen within a frame
        finally:
            await radio.close()
    log.info("venue beacon stopped: %d frames in %d epochs", stats.frames_sent, stats.epochs)
    return stats
