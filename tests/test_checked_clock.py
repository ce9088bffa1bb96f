"""``CheckedClock``: a step of a synchronised wall clock is not believed (the time measured since is), a clock
never synchronised is believed as it reads, and a suspend (both clocks move) is no step."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluezone.boottime import BELIEVED_STEP, STEP_TOLERANCE, boot_id, boot_seconds
from bluezone.clock import ANCHOR_SECONDS, HOLD_SECONDS
from tests.checked_clock_helpers import T0, YEAR, Wall, clock_of, hold, paused



def test_a_step_ahead_of_a_synchronised_clock_is_not_believed_until_it_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    w = Wall()
    clock = clock_of(w)
    assert clock.now() == T0 and clock.off_by == 0
    w.advance(300)
    w.wall += YEAR  # a bad NTP answer
    with caplog.at_level(logging.WARNING, logger="bluezone.clock"):
        assert clock.now() == T0 + 300
    assert clock.off_by == YEAR and "stepped +31536000 s" in caplog.text
    assert clock.mark() == (T0 + 300, w.steady)
    w.advance(3 * 3600)
    assert clock.now() == T0 + 300 + 3 * 3600  # the measured time goes on
    w.wall -= YEAR  # put right
    assert clock.now() == w.wall and clock.off_by == 0 and clock.mark() is None


def test_a_step_back_is_not_believed_either() -> None:
    w = Wall()
    clock = clock_of(w)
    clock.now()
    w.advance(60)
    w.wall -= 30 * 86_400
    assert clock.now() == T0 + 60 and clock.off_by == -30 * 86_400


def test_a_clock_never_synchronised_is_believed_as_it_reads() -> None:
    """A board without a real-time clock starts at its last saved time and NTP steps it forward: that step is
    the correction, and distrusting it would keep expired rows for as long as the clock was behind."""
    w = Wall()
    w.synced = False
    clock = clock_of(w)
    clock.now()
    w.advance(ANCHOR_SECONDS)
    w.wall += 40 * 86_400
    w.synced = True  # NTP answered: the kernel now says synchronised
    assert clock.now() == w.wall and clock.off_by == 0
    w.advance(ANCHOR_SECONDS)
    assert clock.now() == w.wall
    w.wall += YEAR  # from now on a step is one
    assert clock.now() == w.wall - YEAR


def test_a_suspend_is_no_step() -> None:
    """CLOCK_BOOTTIME counts a suspend: a laptop closed for a night finds both clocks 8 h on."""
    w = Wall()
    clock = clock_of(w)
    clock.now()
    w.advance(8 * 3600)
    assert clock.now() == w.wall and clock.off_by == 0


def test_a_restart_resumes_from_the_last_mark() -> None:
    """A daemon restarted during a step counts from its last report's mark, not from the stepped clock."""
    w = Wall()
    w.wall += YEAR
    clock = clock_of(w)
    clock.resume((T0, w.steady - 120))
    assert clock.now() == T0 + 120 and clock.off_by == YEAR - 120


@given(st.floats(-STEP_TOLERANCE, STEP_TOLERANCE), st.floats(0, 10 * 86_400))
def test_drift_within_the_tolerance_is_believed(drift: float, elapsed: float) -> None:
    w = Wall()
    clock = clock_of(w)
    clock.now()
    w.advance(elapsed)
    w.wall += drift
    assert clock.now() == w.wall and clock.off_by == 0


def test_this_machines_boot_clock_is_read() -> None:
    """(Linux) the seams the real clock uses: a boot id, and seconds since boot that move forward."""
    first = boot_seconds()
    assert boot_seconds() >= first > 0
    assert len(boot_id()) in (0, 36)


def test_a_virtual_machine_paused_by_its_host_is_believed_once_the_step_holds(caplog: pytest.LogCaptureFixture) -> None:
    """A host paused its guest over a weekend (63 h): its boot clock stood still, and NTP then stepped the wall clock
    forward.  Not believed at first (a bad answer looks the same); believed once the wall clock has kept to it for
    ``HOLD_SECONDS`` with the kernel saying synchronised: before, the daemon stamped 63 h behind until a reboot."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 63 * 3600)
    measured = T0 + ANCHOR_SECONDS
    assert clock.now() == measured and clock.off_by == 63 * 3600
    hold(w, clock, HOLD_SECONDS - ANCHOR_SECONDS)
    assert clock.now() == measured + HOLD_SECONDS - ANCHOR_SECONDS  # not yet: still the measured time
    with caplog.at_level(logging.WARNING, logger="bluezone.clock"):
        hold(w, clock, ANCHOR_SECONDS)
    assert clock.now() == w.wall and clock.off_by == 0 and clock.mark() is None
    assert "has held 40 min while synchronised: believed" in caplog.text
    hold(w, clock, 3 * ANCHOR_SECONDS)
    assert clock.now() == w.wall  # and goes on being: the new line is the anchor


@pytest.mark.parametrize("step", [YEAR, BELIEVED_STEP + 60, -3 * 3600.0])
def test_a_step_beyond_the_bound_or_back_is_never_believed_however_long_it_holds(step: float) -> None:
    """A year ahead (every sighting past the 14 days), just past the bound, or back: held for two weeks, synchronised."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, step)
    hold(w, clock, 14 * 86_400)
    assert clock.now() == T0 + ANCHOR_SECONDS + 14 * 86_400 and clock.off_by == step


def test_the_hold_starts_again_when_the_kernel_says_unsynchronised_or_the_step_moves() -> None:
    """A date set by hand unsynchronises the kernel (settimeofday), and a wall clock that wanders is no step
    kept to: neither counts toward the hold."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 86_400)
    hold(w, clock, HOLD_SECONDS - 2 * ANCHOR_SECONDS)
    w.synced = False
    hold(w, clock, ANCHOR_SECONDS)
    w.synced = True
    hold(w, clock, HOLD_SECONDS - ANCHOR_SECONDS)
    assert clock.off_by == 86_400  # not yet: the hold began again at the unsynchronised ask
    hold(w, clock, ANCHOR_SECONDS)
    assert clock.off_by == 0 and clock.now() == w.wall
    w2 = Wall()
    wandering = clock_of(w2)
    paused(w2, wandering, 86_400)
    for _ in range(3):
        hold(w2, wandering, HOLD_SECONDS - ANCHOR_SECONDS)
        w2.wall += 2 * STEP_TOLERANCE
    assert wandering.off_by > 86_400


def test_a_step_believed_and_then_undone_is_followed_back() -> None:
    """A bad answer within the bound that held, then put right: the step back to the line it left is believed
    (else the daemon would stamp a day ahead until a reboot)."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 86_400)
    hold(w, clock, HOLD_SECONDS)
    assert clock.off_by == 0
    w.wall -= 86_400  # the time source put right
    assert clock.now() == w.wall and clock.off_by == 0
    w.wall -= 86_400  # but a step back beyond it is one
    assert clock.off_by == 0 and clock.now() == w.wall + 86_400


@given(st.floats(STEP_TOLERANCE + 1, BELIEVED_STEP), st.floats(HOLD_SECONDS, 3 * HOLD_SECONDS))
def test_any_forward_step_within_the_bound_is_believed_after_thehold(step: float, held: float) -> None:
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, step)
    hold(w, clock, held + ANCHOR_SECONDS)
    assert clock.now() == w.wall and clock.off_by == 0
