"""``CheckedClock`` keeps what it believes for the boot: through a spell the kernel says unsynchronised (NTP blocked
for hours, so no anchor, and then even a bad answer's year was believed whole, attack20), and across a daemon's
restart (``line``/``restore``: a restarted daemon began a new line, so the 3 days believed steps may add up to held per
daemon run, not per boot).  A boot's first synchronised reading is still believed as it reads: nothing measured could
judge it (a board without a real-time clock starts in 1970, and NTP's first step is the correction)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.boottime import BELIEVED_STEP, STEP_TOLERANCE
from bluezone.clock import ANCHOR_SECONDS, HOLD_SECONDS, CheckedClock
from tests.checked_clock_helpers import T0, YEAR, Wall, clock_of, hold, restarted

DAY = 86_400.0


def _blocked(w: Wall, clock: CheckedClock, hours: float) -> None:
    """NTP blocked ``hours``: the kernel says unsynchronised (its error bound past 16 s) while the clock runs free."""
    w.synced = False
    hold(w, clock, hours * 3600)


def test_ntp_blocked_for_hours_then_a_bad_answer_is_not_believed() -> None:
    w = Wall()
    clock = clock_of(w)
    clock.now()
    _blocked(w, clock, 10)
    w.wall += YEAR  # the first answer after the block is a bad one: the kernel says synchronised again
    w.synced = True
    hold(w, clock, 14 * DAY)
    real = T0 + 10 * 3600 + 14 * DAY
    assert clock.now() == real and clock.off_by == YEAR  # was: believed, every sighting past the 14 days


def test_a_pause_put_right_after_ntp_was_blocked_is_believed_after_the_hold_as_any_other() -> None:
    """The other way: a virtual machine paused two days while NTP was blocked, put right when NTP answers again."""
    w = Wall()
    clock = clock_of(w)
    clock.now()
    _blocked(w, clock, 3)
    w.wall += 2 * DAY  # the host's pause: the guest's boot clock stood still
    w.synced = True
    hold(w, clock, HOLD_SECONDS - ANCHOR_SECONDS)
    assert clock.off_by == 2 * DAY  # not at once: a bad answer looks the same
    hold(w, clock, 2 * ANCHOR_SECONDS)
    assert clock.now() == w.wall and clock.off_by == 0


def test_a_boots_first_synchronised_reading_is_believed_as_it_reads() -> None:
    """Unsynchronised since boot, a year behind (a board without a real-time clock): NTP's first step is believed."""
    w = Wall()
    w.wall -= YEAR
    w.synced = False
    clock = clock_of(w)
    hold(w, clock, 3600)
    w.wall += YEAR
    w.synced = True
    assert clock.now() == w.wall and clock.off_by == 0


def test_a_restarted_daemon_counts_the_bound_from_the_boots_line() -> None:
    """A pause of 2.9 days believed, the daemon restarted, then another of 2.9 days: 5.8 days past the line."""
    w = Wall()
    clock = clock_of(w)
    clock.now()
    w.advance(ANCHOR_SECONDS)
    w.wall += 2.9 * DAY
    hold(w, clock, HOLD_SECONDS + ANCHOR_SECONDS)
    assert clock.off_by == 0
    clock = restarted(w, clock)
    assert clock.now() == w.wall and clock.off_by == 0  # the believed step stays believed
    w.wall += 2.9 * DAY
    hold(w, clock, 10 * HOLD_SECONDS)
    assert clock.off_by == 2.9 * DAY  # was: a new line, believed (5.8 days ahead)
    clock = restarted(w, clock)
    assert clock.now() == w.wall - 2.9 * DAY and clock.off_by == 2.9 * DAY  # nor by a second restart
    w.wall -= 2.9 * DAY  # put right
    assert clock.now() == w.wall and clock.off_by == 0


def test_a_restart_with_nothing_to_count_from_believes_the_clock() -> None:
    w = Wall()
    clock = clock_of(w)
    clock.restore(None)
    w.wall += YEAR
    assert clock.now() == w.wall


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(-4 * DAY, 4 * DAY), st.integers(0, 50), st.booleans(), st.booleans()), max_size=8))
def test_whatever_the_clock_and_the_kernel_do_the_time_believed_stays_within_the_bound_for_the_boot(
    moves: list[tuple[float, int, bool, bool]],
) -> None:
    """Steps of any size and sign, each kept 0-50 minutes, the kernel synchronised or not, the daemon restarted or not:
    after the boot's first synchronised reading the time believed is never more than ``BELIEVED_STEP`` (plus the
    tolerance) ahead of the time that really passed, nor more than the tolerance behind."""
    w = Wall()
    clock = clock_of(w)
    start = (clock.now(), w.steady)
    for step, minutes, synced, restart in moves:
        w.wall += step
        w.synced = synced
        if restart:
            clock = restarted(w, clock)
        for _ in range(minutes + 1):
            real = start[0] + w.steady - start[1]
            assert real - STEP_TOLERANCE <= clock.now() <= real + BELIEVED_STEP + STEP_TOLERANCE
            w.advance(ANCHOR_SECONDS)


def test_a_line_read_later_than_now_is_none_of_this_boots() -> None:
    """A damaged report's line (boot seconds past this boot's now) counts from nothing: the clock is believed."""
    w = Wall()
    clock = clock_of(w)
    clock.restore(((T0, w.steady + 3600), None, None))
    w.wall += YEAR
    assert clock.now() == w.wall and clock.line() == ((w.wall, w.steady), None, None)  # its own first reading
