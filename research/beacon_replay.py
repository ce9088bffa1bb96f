"""Venue beacon replays from afar (attack13): minutes checked in, per case, by the listener of this tree.

    PYTHONPATH=<tree> python research/beacon_replay.py [--seeds 5] [--minutes 20]

A visitor hears the café's beacon for ``--minutes``: ``k`` reports a second of the frame on air (1: a beacon
advertising once a second, or a duty-cycled scan; 4 or 10: every advertising copy), each scattered ``sd`` dB around the link's
mean (shared/RADIO.md: 5-8 dB), lost under -98 dBm.  A replayer sends copies of the epoch's frames ``r`` times
a second, heard at -95 dBm on average (from the street).  Printed: mean minutes checked in over the seeds,
for a visitor next to the beacon, in the far corner, and next door (where 0 is right).  Run it with
PYTHONPATH at two trees to compare their stay rules (docs/venues.md).
"""

from __future__ import annotations

import argparse
import random
import statistics

from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.checkins import visits
from bluezone.venues.location import Venue
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

T0 = 1_796_400_000.0
CAFE = Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45, seed=bytes(range(16)))
SECRETS = VenueSecrets(CAFE, bytes(range(32)))
REPLAY_RSSI = -95.0
CASES = [  # (what, the link's mean dBm, replays a second)
    ("next to it, no replay", -72.0, 0), ("next to it, replay 2/s", -72.0, 2), ("next to it, replay 6/s", -72.0, 6),
    ("next to it, replay 20/s", -72.0, 20), ("-78 dBm, replay 6/s", -78.0, 6),
    ("far corner -87, no replay", -87.0, 0), ("far corner -87, replay 2/s", -87.0, 2),
    ("far corner -87, replay 3/s", -87.0, 3), ("far corner -87, replay 6/s", -87.0, 6),
    ("next door -97", -97.0, 0), ("next door -95", -95.0, 0), ("next door -93", -93.0, 0),
]


def minutes_in(mean: float, k: int, sd: float, replays: int, minutes: int, seed: int) -> float:
    """Minutes checked in by beacon over ``minutes`` heard as described in the module's docstring."""
    rng = random.Random(seed)
    listener = BeaconCheckIns(SightingStore.open(":memory:"))
    seconds = minutes * 60
    copies = [(T0 + i / k, mean, True) for i in range(seconds * k)]
    copies += [(T0 + (i + 0.37) / replays, REPLAY_RSSI, False) for i in range(seconds * replays)]
    next_tick = T0
    for t, link_mean, on_air in sorted(copies):
        rssi = round(rng.gauss(link_mean, sd))
        if rssi >= -98:
            frames = beacon.frames(CAFE.payload, SECRETS.beacon_key, beacon.epoch_of(t))
            frame = frames[int(t) % len(frames)] if on_air else rng.choice(frames)
            listener.on_advert(Advert(t, frame, rssi, beacon.SERVICE_UUID))
        if t >= next_tick:
            listener.tick(t)
            next_tick = t + 10
    listener.tick(T0 + seconds + 400)
    return sum(v.end - v.start for v in visits(listener.store)) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--minutes", type=int, default=20)
    args = parser.parse_args()
    print(f"minutes checked in of {args.minutes}, mean of seeds 1-{args.seeds}; columns k (reports a second) / sd (dB)")
    grid = [(k, sd) for k in (1, 4, 10) for sd in (6.0, 8.0)]
    print(f"{'case':28s}" + "".join(f"{f'{k}/{sd:.0f}':>7s}" for k, sd in grid))
    for what, mean, replays in CASES:
        row = [statistics.mean(minutes_in(mean, k, sd, replays, args.minutes, s) for s in range(1, args.seeds + 1)) for k, sd in grid]
        print(f"{what:28s}" + "".join(f"{m:7.1f}" for m in row), flush=True)


if __name__ == "__main__":
    main()
