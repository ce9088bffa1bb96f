"""``CheckedClock``'s bounds hold however the steps come (attack20): it counts the measured time from the first
reading it believed while synchronised, so a wall clock crept forward (or back) below the tolerance a minute at a
time is a step like any other (999 s a minute was followed 16 days ahead in a day, and a purge then deleted every
sighting); and steps a hold made believed add up against the line the first one left (2.9 days every 41 minutes
had put the daemon 23 days ahead in under seven hours)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.boottime import BELIEVED_STEP, STEP_TOLERANCE
from bluezone.clock import ANCHOR_SECONDS, HOLD_SECONDS
from tests.checked_clock_helpers import T0, Wall, clock_of, hold, paused

DAY = 86_400.0


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


def test_steps_within_the_bound_made_believed_in_turn_never_add_up_past_it() -> None:
    """A time source that steps 2.9 days, lets it hold, and steps again: the second is 5.8 days past the line."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 2.9 * DAY)
    hold(w, clock, HOLD_SECONDS + ANCHOR_SECONDS)
    assert clock.off_by == 0  # the first is believed, as a paused virtual machine's
    believed = clock.now()
    w.wall += 2.9 * DAY
    hold(w, clock, 10 * HOLD_SECONDS)
    assert clock.now() == believed + 10 * HOLD_SECONDS and clock.off_by == 2.9 * DAY
    w.wall -= 2.9 * DAY  # put right: the line the believed step left it on
    assert clock.now() == w.wall and clock.off_by == 0


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.floats(-4 * DAY, 4 * DAY), st.integers(0, 50)), max_size=8))
def test_whatever_a_synchronised_wall_clock_does_the_time_believed_stays_within_the_bound(
    moves: list[tuple[float, int]],
) -> None:
    """Steps of any size and sign, each kept to for 0-50 minutes (read once a minute): the time believed is never
    more than ``BELIEVED_STEP`` (plus the tolerance) ahead of the time that really passed, nor more than the
    tolerance behind."""
    w = Wall()
    clock = clock_of(w)
    start = (clock.now(), w.steady)
    for step, minutes in moves:
        w.wall += step
        for _ in range(minutes + 1):
            real = start[0] + w.steady - start[1]
            assert real - STEP_TOLERANCE <= clock.now() <= real + BELIEVED_STEP + STEP_TOLERANCE
            w.advance(ANCHOR_SECONDS)
