"""Junk chunks under a venue's own set id: how soon a receiver opens the café's set when someone who hears the beacon
sends a made-up copy of some of its frames (same set id, count and index, other bytes) right after each genuine one.

    PYTHONPATH=<tree> python research/beacon_junk.py [--seeds 2]

The café's beacon sends frame ``t mod n`` each second of its 10-minute epoch; the receiver hears each frame, and each
junk copy, with probability ``p``; junk follows the genuine frame of each disputed index by 50 ms, ``fresh`` (new
bytes every time) or ``fixed`` (the same bytes every round).  Printed: seconds into the epoch the set opened, per seed,
or "-" (never in the epoch); docs/venues.md.
"""

from __future__ import annotations

import argparse
import random

from bluezone.venues import beacon
from bluezone.venues.location import Venue

CAFE = Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45, seed=bytes(range(16)))
KEY = bytes(range(32))
T0 = 2_994_000 * beacon.EPOCH_SECONDS


def opened_at(disputed: int, p: float, fixed: bool, seed: int) -> float | None:
    """Seconds into the epoch at which the receiver opened the café's set, None if not within it."""
    rng = random.Random(seed)
    frames = beacon.frames(CAFE.payload, KEY, beacon.epoch_of(T0))
    junk = {i: rng.randbytes(beacon.CHUNK_BYTES) for i in range(disputed)}
    heard = []
    for s in range(beacon.EPOCH_SECONDS):
        frame = frames[s % len(frames)]
        if rng.random() < p:
            heard.append((T0 + s, frame))
        if s % len(frames) < disputed and rng.random() < p:
            heard.append((T0 + s + 0.05, frame[:7] + (junk[s % len(frames)] if fixed else rng.randbytes(beacon.CHUNK_BYTES))))
    assembler = beacon.FrameAssembler()
    for t, frame in sorted(heard):
        result = assembler.add(frame, -70, t)
        if result is not None and result[1] == CAFE:
            return t - T0
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    n = len(beacon.frames(CAFE.payload, KEY, 0))
    print(f"café: {n} frames; seconds into the epoch the set opened, seeds 1-{args.seeds} ('-': never)")
    for disputed in (1, 2, 4, n):
        for fixed in (False, True):
            cells = []
            for p in (1.0, 0.5):
                got = [opened_at(disputed, p, fixed, s) for s in range(1, args.seeds + 1)]
                cells.append(f"p={p:g}: " + " ".join("-" if g is None else f"{g:.0f}" for g in got))
            print(f"  {disputed} indices, {'fixed' if fixed else 'fresh'} junk:  " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
