"""Many simulated phones' exposure windows from one match over their sightings together.

The engine checks every phone against the same positives' keys.  One ``find_exposures`` per phone
derived every key's RPIs again and built an index for each store (the market, 30 minutes: 282
phones with sightings, 0.5-0.7 s CPU of a 2.4 s check phase).  Whether a sighting matches depends on
the key and that sighting alone, so the phones' sightings are matched together, a group of phones at
a time (``GROUP_SIGHTINGS`` rows: the group is copied once), and each phone's matches become its
windows through the matcher's own ``exposure_windows``: the windows ``find_exposures`` gives each
store alone, to the bit (tests/sim/test_phonematch.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from bluezone.matching.matcher import ExposureWindow, exposure_windows, match

#: Sightings matched together at most (32 bytes each, held twice while matched: ~64 MB), so a crowd
#: that stores every advert (``positives = "all"``, gigabytes) is not copied whole.
GROUP_SIGHTINGS = 1_000_000


def read_in_groups(
    read: Callable[[int], np.ndarray], phones: int, limit: int | None = None
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """(phone, its sightings) of the phones that stored any, read in order and handed over in groups of
    about ``limit`` sightings (``GROUP_SIGHTINGS``; a group ends with the phone that reaches it)."""
    limit = GROUP_SIGHTINGS if limit is None else limit
    group: list[tuple[int, np.ndarray]] = []
    held = 0
    for phone in range(phones):
        sightings = read(phone)
        if len(sightings) == 0:
            continue
        group.append((phone, sightings))
        held += len(sightings)
        if held >= limit:
            yield group
            group, held = [], 0
    if group:
        yield group


def windows_by_phone(keys: np.ndarray, stores: list[np.ndarray], corrections: list[int]) -> list[list[ExposureWindow]]:
    """``find_exposures(keys, stores[i], rssi_correction=corrections[i])`` for every i, from one match."""
    if not stores:
        return []
    bounds = np.cumsum([0, *map(len, stores)])
    matches = match(keys, np.concatenate(stores))
    phone = np.searchsorted(bounds, matches["sighting_index"], "right") - 1  # an empty store owns no row
    order = np.argsort(phone, kind="stable")  # each phone's matches in the order its own match gives
    matches, phone = matches[order], phone[order]
    cuts = np.searchsorted(phone, np.arange(len(stores) + 1))
    out = []
    for i, correction in enumerate(corrections):
        mine = matches[cuts[i] : cuts[i + 1]]
        mine["sighting_index"] -= bounds[i]  # rows of its own store
        out.append(exposure_windows(keys, mine, rssi_correction=correction))
    return out
