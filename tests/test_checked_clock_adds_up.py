"""``CheckedClock`` counts the measured time from the first reading it believed while synchronised: a wall clock
crept forward (or back) below the tolerance a minute at a time is a step like any other (attack20: 999 s a
minute, each within the 1,000 s, was followed 16 days ahead in a day, and a purge then deleted every sighting)."""

from __future__ import annotations

import pytest

from bluezone.clock import ANCHOR_SECONDS, STEP_TOLERANCE
from tests.checked_clock_helpers import T0, Wall, clock_of


@pytest.mark.parametrize("sign", [1, -1])
def test_a_wall_clock_crept_below_the_tolerance_a_minute_at_a_time_is_not_followed_past_it(sign: int) -> None:
    """999 s each minute for a day (a time daemon steps any offset above 0.4 s at each answer): was 16 days off."""
    w = Wall()
    clock = clock_of(w)
    clock.now()
    for _ in range(24 * 60):
        w.advance(ANCHOR_SECONDS)
        w.wall += sign * (STEP_TOLERANCE - 1)
        clock.now()
    assert abs(clock.now() - (T0 + 24 * 3600)) <= STEP_TOLERANCE
    assert abs(clock.off_by) > 15 * 86_400  # said: not believed


def test_a_step_within_the_tolerance_is_believed_and_still_counted() -> None:
    """A small correction is believed as before; a second one that takes the sum past the tolerance is a step."""
    w = Wall()
    clock = clock_of(w)
    clock.now()
    w.advance(ANCHOR_SECONDS)
    w.wall += 600
    assert clock.now() == w.wall and clock.off_by == 0
    w.advance(10 * ANCHOR_SECONDS)
    assert clock.now() == w.wall
    w.wall += 600
    assert clock.now() == w.wall - 1200 and clock.off_by == 1200
