"""Choosing which of this device's own daily keys to publish after a positive test."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD, interval_number, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.keyformat.keys import keys_from_daily


def export_own_keys(daily: Iterable[DailyKey], days: int, now: float) -> np.ndarray:
    """The keys of the last ``days`` UTC days up to ``now`` (today's included), oldest first."""
    return keys_from_daily(own_keys_to_export(daily, days, now))


def own_keys_to_export(daily: Iterable[DailyKey], days: int, now: float) -> list[DailyKey]:
    """``export_own_keys`` as DailyKeys, today's cut to end with the current interval when it runs on.

    Whoever has the file could otherwise follow this device's adverts until midnight by today's
    key; cut, and saved so (``released_today``), the daemon starts a new key when the interval ends,
    as after ``bluezone upload --include-today``."""
    first = rolling_start(now) - (days - 1) * ROLLING_PERIOD
    last = rolling_start(now) + ROLLING_PERIOD
    current = interval_number(now)
    chosen = []
    for key in sorted((k for k in daily if first <= k.rolling_start < last), key=lambda k: k.rolling_start):
        if key.rolling_start <= current and key.end > current + 1:
            key = DailyKey(key.key, key.rolling_start, current + 1 - key.rolling_start)
        chosen.append(key)
    return chosen


def released_today(chosen: Iterable[DailyKey], now: float) -> list[DailyKey]:
    """The keys of ``chosen`` cut to end with the current interval: to save, so the daemon stops them."""
    current = interval_number(now)
    return [k for k in chosen if k.end == current + 1 and k.rolling_period < ROLLING_PERIOD]
