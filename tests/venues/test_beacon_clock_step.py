"""A venue beacon's ``--duration`` is time the beacon has run, whatever the wall clock does meanwhile.  It ran until
the wall clock read the duration past its start: a beacon on a Raspberry Pi (no real-time clock) started at boot
for a day stopped at NTP's first sync, which steps the clock ahead by the hours the Pi was off; stepped back, it
broadcast that much longer than asked."""

from __future__ import annotations

import pytest

from bluezone.clock import VirtualClock
from bluezone.proximity.backends.emulated import Air
from bluezone.venues import beacon
from bluezone.venues.broadcast import FRAME_SECONDS, run_beacon
from bluezone.venues.owner import VenueSecrets
from tests.venues.venue_helpers import CLINIC

T0 = 1_796_400_000.0


class SteppedClock:
    """``clock`` whose wall time is stepped by ``step`` seconds once ``after`` seconds have passed."""

    def __init__(self, clock: VirtualClock, after: float, step: float) -> None:
        self.clock, self.after, self.step = clock, after, step

    def now(self) -> float:
        now = self.clock.now()
        return now + (self.step if now - T0 >= self.after else 0.0)

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


@pytest.mark.parametrize("step", [10 * 3600.0, -3600.0], ids=["stepped ahead 10 h", "stepped back an hour"])
def test_the_duration_is_the_time_the_beacon_ran(step: float) -> None:
    clock = VirtualClock(T0)
    stepped = SteppedClock(clock, after=30.0, step=step)
    radio = Air(clock, 1).radio("cafe", (0.0, 0.0), beacon.SERVICE_UUID)
    stats = clock.run(run_beacon(radio, VenueSecrets(CLINIC, bytes(32)), stepped, 120.0))  # type: ignore[arg-type]
    assert clock.now() == pytest.approx(T0 + 120.0, abs=FRAME_SECONDS)
    assert stats.frames_sent == pytest.approx(120 / FRAME_SECONDS, abs=2)
