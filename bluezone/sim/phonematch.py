"""Many simulated phones' exposure windows from one match over their sightings together.

The engine checks every phone against the same positives' keys.  One ``find_exposures`` per phone
derived every key's RPIs again and built a new index (its first sieve alone is 2 MB) for each store:
in the market (30 minutes, seed 1: 282 phones with ~1,200 sightings each) that was 0.8-1.3 s CPU of
a 2.4 s check phase.  Whether a sighting matches depends on the key and that sighting alone, so small
stores are matched together, a group of phones at a time, and each phone's matches become its windows
through the matcher's own ``exposure_windows``: the windows ``find_exposures`` gives each store
alone, to the bit (tests/sim/test_phonematch.py).  Groups stay small (``GROUP_SIGHTINGS``): one large
match costs more per sighting than its stores apart (sorts, cache), so a phone with that many
sightings is matched alone, as before (the classroom's phones, ~52,000 each: 0.9-1.0 s CPU apart,
1.4-1.6 s all in one match; the market's 0.35-0.45 s in groups of 10,000-30,000).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from bluezone.matching.matcher import ExposureWindow, as_bytes, exposure_windows, find_exposures, gather, match
from bluezone.proximity.sightings import SIGHTING_DTYPE

#: Sightings a group of phones gathers before it is matched (a phone with as many is matched alone).
GROUP_SIGHTINGS = 20_000


def read_in_groups(
    read: Callable[[int], np.ndarray], phones: int, limit: int | None = None
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """(phone, its sightings) of the phones that stored any, in order: a phone with ``limit``
    (``GROUP_SIGHTINGS``) or more alone, the others in groups that end when they reach it."""
    limit = GROUP_SIGHTINGS if limit is None else limit
    group: list[tuple[int, np.ndarray]] = []
    held = 0
    for phone in range(phones):
        sightings = read(phone)
        if len(sightings) >= limit:
            if group:
                yield group
                group, held = [], 0
            yield [(phone, sightings)]
        elif len(sightings):
            group.append((phone, sightings))
            held += len(sightings)
            if held >= limit:
                yield group
                group, held = [], 0
    if group:
        yield group


def windows_by_phone(keys: np.ndarray, stores: list[np.ndarray], corrections: list[int]) -> list[list[ExposureWindow]]:
    """``find_exposures(keys, stores[i], rssi_correction=corrections[i])`` for every i, from one match."""
    if len(stores) < 2:  # nothing to share
        return [find_exposures(keys, s, rssi_correction=c) for s, c in zip(stores, corrections)]
    bounds = np.cumsum([0, *map(len, stores)])
    together = np.concatenate([as_bytes(np.ascontiguousarray(s, SIGHTING_DTYPE)) for s in stores]).view(SIGHTING_DTYPE)
    matches = match(keys, together)
    phone = np.searchsorted(bounds, matches["sighting_index"], "right") - 1  # an empty store owns no row
    order = np.argsort(phone, kind="stable")  # each phone's matches in the order its own match gives
    matches = gather(matches, order)
    cuts = np.searchsorted(phone[order], np.arange(len(stores) + 1))
    out = []
    for i, correction in enumerate(corrections):
        mine = matches[cuts[i] : cuts[i + 1]]
        mine["sighting_index"] -= bounds[i]  # rows of its own store
        out.append(exposure_windows(keys, mine, rssi_correction=correction))
    return out

