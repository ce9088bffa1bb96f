"""Ground truth from the true positions: per pair and UTC day, minutes within 1, 2 and 3 m.

Pairs separated by a wall that stops air (``separates = true``) are never in contact, however
close: neighbours on either side of a wall are the classic false positive of every system.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS

RADII_M = (1.0, 2.0, 3.0)


@dataclass
class Truth:
    """Seconds within each radius, per (sender row, device) pair and day."""

    senders: int
    devices: int
    radii: tuple[float, ...] = RADII_M
    seconds: dict[int, np.ndarray] = field(default_factory=dict)  # day -> (radii, senders, devices) f8
    #: the radius whose first and last moment per pair and day are kept (for F1 -> F2 time order)
    close_radius: float = 2.0
    first_close: dict[int, np.ndarray] = field(default_factory=dict)  # day -> (senders, devices), nan: never
    last_close: dict[int, np.ndarray] = field(default_factory=dict)
    #: seconds both were in the scene at once, per day (senders, devices): "shared the room"
    together: dict[int, np.ndarray] = field(default_factory=dict)

    def add_presence(self, day: int, sender_present: np.ndarray, device_present: np.ndarray, dt: float) -> None:
        """Count ``dt`` for every (sender, device) pair present at once (venue check-in's truth)."""
        acc = self.together.get(day)
        if acc is None:
            acc = self.together[day] = np.zeros((self.senders, self.devices), np.float64)
        acc += np.outer(sender_present, device_present) * float(dt)

    def minutes_together(self) -> dict[int, np.ndarray]:
        """Per day, minutes each pair spent in the scene at the same time."""
        return {day: acc / 60.0 for day, acc in sorted(self.together.items())}

    def add(self, day: int, d: np.ndarray, separated: np.ndarray, dt: float, now: float | None = None) -> None:
        acc = self.seconds.get(day)
        if acc is None:
            # float64: float32 sums of a step like 0.1 s fall short (15 minutes together read 14.9988)
            acc = self.seconds[day] = np.zeros((len(self.radii), self.senders, self.devices), np.float64)
        together = ~separated
        with np.errstate(invalid="ignore"):
            for i, radius in enumerate(self.radii):
                acc[i] += ((d < radius) & together) * float(dt)
            if now is not None:
                close = (d < self.close_radius) & together
                first = self.first_close.get(day)
                if first is None:
                    first = self.first_close[day] = np.full((self.senders, self.devices), np.nan)
                    self.last_close[day] = np.full((self.senders, self.devices), np.nan)
                first[close & np.isnan(first)] = now
                self.last_close[day][close] = now

    def minutes(self, radius: float = 2.0) -> dict[int, np.ndarray]:
        """Per day, minutes within ``radius`` (one of ``radii``): (senders, devices)."""
        i = self.radii.index(radius)
        return {day: acc[i] / 60.0 for day, acc in sorted(self.seconds.items())}


def day_of(unix_seconds: float) -> int:
    """Unix seconds of the UTC midnight starting the day of ``unix_seconds``."""
    return int(unix_seconds // DAY_SECONDS) * DAY_SECONDS
