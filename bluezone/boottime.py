"""What this boot's clocks say, and what the daemon's checked clock (``bluezone.clock.CheckedClock``) keeps of a
boot, importable without asyncio: a command opening the store reads the daemon's report by them on every open, and
``bluezone.clock`` brings asyncio (~25 ms), which a check never needs."""

from __future__ import annotations

import time

#: A step of a synchronised wall clock larger than this, either way, is not believed (ntpd's panic threshold).
STEP_TOLERANCE = 1000.0
#: The largest forward step a hold makes believed: a host that paused its virtual machine overnight or over a
#: weekend (Friday evening to Monday morning, 63 h) is put right; a bad step believed costs at most the oldest 3
#: of the 14 days, and a step of a year (the whole store) is never believed in this boot.
BELIEVED_STEP = 72 * 3600.0  # 3 days, in hours: bluezone.crypto (DAY_SECONDS) costs a clock 65 ms to import


#: A forward step within ``BELIEVED_STEP`` is believed once the wall clock has kept to it this long, the kernel saying
#: synchronised at every minute's ask: longer than one poll at systemd-timesyncd's longest default interval (2048 s;
#: chrony's and ntpd's 1024 s), so a time daemon that would undo the step (a bad answer outvoted, a date set by hand)
#: has asked again.
HOLD_SECONDS = 2400.0


def boot_seconds() -> float:
    """Seconds since boot, suspend included (CLOCK_BOOTTIME): what really passed, whatever the wall clock did."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


def boot_id() -> str:
    """This boot's id (Linux), "" elsewhere: ``boot_seconds`` of another boot measure nothing against ours."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def kernel_clock_synced() -> bool:
    """Whether the kernel says a time daemon keeps the wall clock synchronised (adjtimex: not TIME_ERROR).
    False where it cannot be asked, and before NTP has answered after boot."""
    import ctypes  # here: asked only by the daemon's clock and where a command judges a held step (~2 ms to import)

    try:
        state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.create_string_buffer(512))  # modes 0: read only
    except (OSError, AttributeError):
        return False
    return 0 <= int(state) < 5


#: A point of a line of time this boot: (a wall clock reading believed, ``boot_seconds`` then).
Reading = tuple[float, float]
#: What a ``CheckedClock`` believes in a boot (``line``, ``restore``): its anchor, the line the first step a hold made
#: believed left (believed steps add up from it), and the line the last one left (a step back to it is believed).
Line = tuple[Reading, Reading | None, Reading | None]
#: The names of a ``Line``'s parts where it is kept (the daemon's report).
LINE_PARTS = ("anchor", "origin", "left")
#: Where a step not believed began to hold: the wall clock's reading then, and ``boot_seconds`` then (a ``Reading``):
#: the wall clock keeps to the step while it stays on that line (``on_line``).
Hold = Reading


def on_line(reading: Reading, wall: float, steady: float, tolerance: float = STEP_TOLERANCE) -> bool:
    """Whether the wall clock reading ``wall`` at ``steady`` lies within ``tolerance`` of the line through ``reading``
    (the time measured on from it)."""
    return abs(wall - (reading[0] + steady - reading[1])) <= tolerance
