"""Choosing which of this device's own daily keys to publish after a positive test."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.keyformat.keys import keys_from_daily


def export_own_keys(daily: Iterable[DailyKey], days: int, now: float) -> np.ndarray:
    """The keys of the last ``days`` UTC days up to ``now`` (today's included), oldest first."""
    first = rolling_start(now) - (days - 1) * ROLLING_PERIOD
    last = rolling_start(now) + ROLLING_PERIOD
    chosen = sorted((k for k in daily if first <= k.rolling_start < last), key=lambda k: k.rolling_start)
    return keys_from_daily(chosen)
