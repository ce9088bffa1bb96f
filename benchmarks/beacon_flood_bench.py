"""A flood of one venue's beacon frames through the check-in listener (``venues.nearby.BeaconCheckIns``).

    .venv/bin/python benchmarks/beacon_flood_bench.py [--rates 10,300,1000] [--seconds 90] [--venues | --sets]

Frames of one venue at ``rate`` a second (a beacon sends ~1; a replay from several transmitters can
reach the scanner's report rate), RSSI -75 dBm, on the virtual timeline; prints the time each frame
took once the 60 s window is full.  The listener must keep up with the air: under 1 ms a frame at
1,000 a second.  Before attack12b the window's strong frames were listed at each frame (3.5 ms a
frame at 1,000 a second, load 11: 3.5x slower than the air).

``--venues``: the flood is of made-up venues instead (anyone can make one), each one's frames three
rounds, then the next: each is heard a moment and its stay kept for 3 minutes.  Before attack14 every
frame swept all those stays.

``--sets``: the flood is of made-up sets of one frame each (a new set id every frame): the table of sets
being collected is full, and each frame waits for a second one (venue19; before, each pushed out a set).

``--pairs``: made-up sets of two frames each: every second frame lets its set in and pushes one out (the table's
eviction looks at all 256 sets: venue20 weighs each by its rate).

``--junk``: junk under one venue's own set id and count (anyone hearing its beacon can send it), fresh bytes at
every index, round and round: each frame that changed a chunk of the complete set cost up to 13 AES-GCM openings;
venue21 keeps every copy and spends a budget of openings a second on the set (``venues/copies.py``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.location import Venue
from bluezone.venues.nearby import BeaconCheckIns
from bluezone.venues.owner import VenueSecrets

T0 = 1_796_400_000.0


def one_venue(count: int) -> list[bytes]:
    """``count`` frames of one venue's beacon, round and round."""
    venue = Venue.create("Cafe", "1 Main St", "food-service", 30, seed=bytes(16))
    secrets = VenueSecrets(venue, bytes(range(32)))
    frames = beacon.frames(venue.payload, secrets.beacon_key, beacon.epoch_of(T0))
    return [frames[i % len(frames)] for i in range(count)]


def made_up_venues(count: int) -> list[bytes]:
    """``count`` frames of made-up venues, each one's frames three rounds, then the next's."""
    out: list[bytes] = []
    while len(out) < count:
        n = len(out).to_bytes(16, "big")
        venue = Venue.create(f"Made up {len(out)}", "a", seed=n)
        out += beacon.frames(venue.payload, n * 2, beacon.epoch_of(T0)) * 3
    return out[:count]


def made_up_sets(count: int, frames: int = 1) -> list[bytes]:
    """``count`` frames of made-up sets, ``frames`` frames each."""
    rng = random.Random(1)
    out: list[bytes] = []
    while len(out) < count:
        set_id = rng.randbytes(4)
        out += [bytes([beacon.VERSION]) + set_id + bytes([i, 255]) + rng.randbytes(13) for i in range(frames)]
    return out[:count]


def junk(count: int) -> list[bytes]:
    """``count`` frames of junk under one venue's set id and count, fresh bytes at each index in turn."""
    rng = random.Random(1)
    return [frame[:7] + rng.randbytes(beacon.CHUNK_BYTES) for frame in one_venue(count)]


def made_up_pairs(count: int) -> list[bytes]:
    """``count`` frames of made-up sets, two frames each."""
    return made_up_sets(count, 2)


def per_frame(rate: int, seconds: int, kind: str = "one") -> float:
    """Seconds a frame took after the first 30 s of the flood."""
    frames = {"one": one_venue, "venues": made_up_venues, "sets": made_up_sets, "pairs": made_up_pairs, "junk": junk}[kind](rate * seconds)
    adverts = [Advert(T0 + i / rate, frame, -75, beacon.SERVICE_UUID) for i, frame in enumerate(frames)]
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
    flood = parser.add_mutually_exclusive_group()
    flood.add_argument("--venues", action="store_true", help="a flood of made-up venues, not of one venue's frames")
    flood.add_argument("--sets", action="store_true", help="a flood of made-up sets of one frame each")
    flood.add_argument("--pairs", action="store_true", help="a flood of made-up sets of two frames each")
    flood.add_argument("--junk", action="store_true", help="junk under one venue's set id, fresh bytes at every index")
    args = parser.parse_args()
    kind = "venues" if args.venues else "sets" if args.sets else "pairs" if args.pairs else "junk" if args.junk else "one"
    for rate in (int(r) for r in args.rates.split(",")):
        median = statistics.median(per_frame(rate, args.seconds, kind) for _ in range(args.repeat))
        print(f"{rate:>5} frames/s: {median * 1e6:8.1f} us a frame (median of {args.repeat})")


if __name__ == "__main__":
    main()
