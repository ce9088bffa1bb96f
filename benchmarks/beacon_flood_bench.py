"""A flood of one venue's beacon frames through the check-in listener (``venues.nearby.BeaconCheckIns``).

    .venv/bin/python benchmarks/beacon_flood_bench.py [--rates 10,300,1000] [--seconds 90]

Frames of one venue at ``rate`` a second (a beacon sends ~1; a replay from several transmitters can
reach the scanner's report rate), RSSI -75 dBm, on the virtual timeline; prints the time each frame
took once the 60 s window is full.  The listener must keep up with the air: under 1 ms a frame at
1,000 a second.  Before attack12b the window's strong frames were listed at each frame (3.5 ms a
frame at 1,000 a second, load 11: 3.5x slower than the air).
"""

from __future__ import annotations

import argparse
import statistics
import time

from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.location import Venue
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

T0 = 1_796_400_000.0


def per_frame(rate: int, seconds: int) -> float:
    """Seconds a frame took after the first 30 s of the flood."""
    venue = Venue.create("Cafe", "1 Main St", "food-service", 30, seed=bytes(16))
    secrets = VenueSecrets(venue, bytes(range(32)))
    frames = beacon.frames(venue.payload, secrets.beacon_key, beacon.epoch_of(T0))
    adverts = [Advert(T0 + i / rate, frames[i % len(frames)], -75, beacon.SERVICE_UUID) for i in range(rate * seconds)]
    listener = BeaconCheckIns(SightingStore.open(":memory:"))
    for advert in adverts[: rate * 30]:
        listener.on_advert(advert)
    start = time.perf_counter()
    for advert in adverts[rate * 30 :]:
        listener.on_advert(advert)
    return (time.perf_counter() - start) / len(adverts[rate * 30 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,300,1000")
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for rate in (int(r) for r in args.rates.split(",")):
        median = statistics.median(per_frame(rate, args.seconds) for _ in range(args.repeat))
        print(f"{rate:>5} frames/s: {median * 1e6:8.1f} us a frame (median of {args.repeat})")


if __name__ == "__main__":
    main()
