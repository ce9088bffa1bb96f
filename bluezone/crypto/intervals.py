"""GAEN time units: ENIntervalNumber is the count of 10-minute intervals since the Unix epoch."""

from __future__ import annotations

INTERVAL_SECONDS = 600
ROLLING_PERIOD = 144  # intervals in one day: a daily key is valid for this many
DAY_SECONDS = INTERVAL_SECONDS * ROLLING_PERIOD


def interval_number(unix_seconds: float) -> int:
    """ENIntervalNumber of a moment (GAEN v1.2, section "ENIntervalNumber")."""
    return int(unix_seconds // INTERVAL_SECONDS)


def rolling_start(unix_seconds: float) -> int:
    """First interval of the UTC day holding ``unix_seconds``: where that day's daily key starts."""
    return interval_number(unix_seconds) // ROLLING_PERIOD * ROLLING_PERIOD


def interval_start(interval: int) -> float:
    """Unix seconds at which ``interval`` begins."""
    return float(interval * INTERVAL_SECONDS)
