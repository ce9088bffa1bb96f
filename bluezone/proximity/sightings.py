"""Sightings as a numpy structured array: the shape that flows from the store to the matcher."""

from __future__ import annotations

import numpy as np

#: ``tx_power`` is the advert's TX Power Level field, NO_TX_POWER when absent.
NO_TX_POWER = -128

SIGHTING_DTYPE = np.dtype(
    [
        ("time", "f8"),  # Unix seconds
        ("rpi", "V16"),
        ("aem", "V4"),
        ("rssi", "i2"),  # dBm
        ("tx_power", "i2"),  # dBm or NO_TX_POWER
    ]
)


def empty_sightings(n: int = 0) -> np.ndarray:
    """``n`` zeroed SIGHTING_DTYPE rows."""
    return np.zeros(n, SIGHTING_DTYPE)


#: A heard Bluezone v3 advert: its 12-byte ID instead of an RPI and AEM (the advert has no TX
#: Power Level field from the app, but one may be present from other senders).
BLUEZONE3_SIGHTING_DTYPE = np.dtype(
    [
        ("time", "f8"),  # Unix seconds
        ("bzid", "V12"),
        ("rssi", "i2"),  # dBm
        ("tx_power", "i2"),  # dBm or NO_TX_POWER
    ]
)


def empty_bluezone3_sightings(n: int = 0) -> np.ndarray:
    """``n`` zeroed BLUEZONE3_SIGHTING_DTYPE rows."""
    return np.zeros(n, BLUEZONE3_SIGHTING_DTYPE)
