"""``CheckedClock``'s 40-minute hold across a daemon's restart: a restart began the hold again, so a daemon restarted
more often than every 40 minutes (``Restart=on-failure``) never believed a host's pause put right, and stamped behind
by it for the rest of the boot.  Now a restarted daemon holds on from where the hold began (``held``/``resume``),
asking the kernel at once (nobody asked it while no daemon ran).  And a step undone and made again holds anew."""

from __future__ import annotations

from bluezone.clock import ANCHOR_SECONDS, HOLD_SECONDS
from tests.checked_clock_helpers import Wall, clock_of, hold, paused, restarted

DAY = 86_400.0


def test_a_daemon_restarted_mid_hold_holds_on() -> None:
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 2 * DAY)
    hold(w, clock, HOLD_SECONDS - 10 * ANCHOR_SECONDS)
    clock = restarted(w, clock)
    assert clock.off_by == 2 * DAY and clock.held() is not None
    hold(w, clock, 9 * ANCHOR_SECONDS)
    assert clock.off_by == 2 * DAY  # not yet
    hold(w, clock, ANCHOR_SECONDS)
    assert clock.off_by == 0 and clock.now() == w.wall  # was: 40 minutes after the restart


def test_a_daemon_restarted_every_half_hour_believes_a_pause_put_right() -> None:
    """Was: never, in the boot (each restart began the hold again)."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 2 * DAY)
    for _ in range(2):
        hold(w, clock, 30 * 60)
        clock = restarted(w, clock)
    assert clock.off_by == 0 and clock.now() == w.wall


def test_a_daemon_restarted_after_the_hold_asks_the_kernel_first() -> None:
    """Nobody asked the kernel while no daemon ran: a restart 45 minutes on believes the step only if it says
    synchronised now; else the hold begins again."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 2 * DAY)
    hold(w, clock, 10 * 60)
    stopped = (clock.line(), clock.mark(), clock.held())
    w.advance(35 * 60)  # no daemon: nobody reads the clock
    w.synced = False
    clock = clock_of(w)
    clock.restore(stopped[0])
    clock.resume(stopped[1], stopped[2])
    assert clock.off_by == 2 * DAY
    w.synced = True
    hold(w, clock, HOLD_SECONDS - ANCHOR_SECONDS)
    assert clock.off_by == 2 * DAY  # held anew from the restart's ask
    hold(w, clock, ANCHOR_SECONDS)
    assert clock.off_by == 0


def test_a_step_undone_and_made_again_holds_anew() -> None:
    """A bad answer held 20 minutes, undone by the time daemon (what the hold waits for), then the same step again 25
    minutes on: believed at once before (the hold kept its first start), now only once it has held 40 minutes."""
    w = Wall()
    clock = clock_of(w)
    paused(w, clock, 2 * DAY)
    hold(w, clock, 20 * 60)
    w.wall -= 2 * DAY
    hold(w, clock, 25 * 60)
    assert clock.off_by == 0 and clock.held() is None
    w.wall += 2 * DAY
    hold(w, clock, ANCHOR_SECONDS)
    assert clock.off_by == 2 * DAY  # was: believed
    hold(w, clock, HOLD_SECONDS)
    assert clock.off_by == 0
