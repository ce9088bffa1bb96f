"""How far the venue beacon's dBm rules should trust an RSSI correction beyond +-20 dB: not at all (the rule since
venue20), clamped to +-20, or tapered from 20 to 0 at 40 (the most ``bluezone calibrate`` accepts).

    PYTHONPATH=<tree> python research/beacon_correction.py [--seeds 3]

The rules only see the corrected RSSI, so what matters is its error: the correction the rules apply less the one the
adapter needs.  Part 1 measures, with the real listener, the minutes of 20 a visitor is checked in in the café's far
corner (-87 dBm: 20 is right) and next door (-97 dBm: 0 is right) when every reading is off by that error (4 reports a
second scattered 6 dB, lost under -98 dBm, as ``tests/venues``).  Part 2 gives each rule's error for a correction
``c`` beyond 20 dB in the two cases it cannot tell apart: the adapter really is ``c`` dB off (a rare phone: 2 of
Google's 313 lie beyond, at -21 and -37) or ``c`` is a calibration gone wrong on a sound adapter (a reference behind a
wall), and so the minutes each case gets (docs/venues.md, "How far the rules trust a calibration").
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
from bluezone.venues.nearby import TRUSTED_CORRECTION_DB, BeaconCheckIns, trusted_correction
from bluezone.venues.owner import VenueSecrets

T0 = 1_796_400_000.0
CAFE = Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45, seed=bytes(range(16)))
SECRETS = VenueSecrets(CAFE, bytes(range(32)))
ERRORS = (-20, -15, -10, -5, -3, 0, 3, 5, 7, 10, 15, 20)
RULES = {
    "none beyond (venue20)": trusted_correction,
    "clamped": lambda c: max(-TRUSTED_CORRECTION_DB, min(TRUSTED_CORRECTION_DB, c)),
    "tapered": lambda c: c if abs(c) <= TRUSTED_CORRECTION_DB else (1 if c > 0 else -1) * max(0, 2 * TRUSTED_CORRECTION_DB - abs(c)),
}


def minutes_in(true_rssi: float, error: int, seed: int) -> float:
    """Minutes of 20 checked in where the link's mean is ``true_rssi`` and every corrected reading is ``error`` off."""
    rng = random.Random(seed)
    listener = BeaconCheckIns(SightingStore.open(":memory:"))
    listener.rssi_correction = error  # (what the rules add: here, only the error matters)
    next_tick = T0
    for i in range(20 * 60 * 4):
        t = T0 + i / 4
        rssi = round(rng.gauss(true_rssi, 6.0))
        if rssi >= -98:
            frames = beacon.frames(CAFE.payload, SECRETS.beacon_key, beacon.epoch_of(t))
            listener.on_advert(Advert(t, frames[int(t) % len(frames)], rssi, beacon.SERVICE_UUID))
        if t >= next_tick:
            listener.tick(t)
            next_tick = t + 10
    listener.tick(T0 + 20 * 60 + 400)
    return sum(v.end - v.start for v in visits(listener.store)) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    seeds = range(1, args.seeds + 1)
    print(f"1. minutes of 20 checked in, mean of seeds 1-{args.seeds}, by the corrected reading's error (dB)")
    by_error = {}
    for error in ERRORS:
        by_error[error] = tuple(statistics.mean(minutes_in(where, error, s) for s in seeds) for where in (-87.0, -97.0))
        print(f"  error {error:+3d}: far corner {by_error[error][0]:4.1f}, next door {by_error[error][1]:4.1f}", flush=True)

    def nearest(error: int) -> tuple[float, float]:
        return by_error[min(ERRORS, key=lambda e: abs(e - error))]

    print("2. error (dB) and minutes (far corner / next door, nearest error measured) per rule, correction c beyond 20")
    for c in (21, 25, 30, 37, 40, -21, -25, -30, -37, -40):
        cells = []
        for name, rule in RULES.items():
            right, wrong = rule(c) - c, rule(c)  # the adapter is c off / sound and c a mistake
            cells.append(f"{name}: right {right:+3d} ({nearest(right)[0]:4.1f}/{nearest(right)[1]:4.1f}),"
                         f" mistake {wrong:+3d} ({nearest(wrong)[0]:4.1f}/{nearest(wrong)[1]:4.1f})")
        print(f"  c {c:+3d}  " + "  |  ".join(cells))


if __name__ == "__main__":
    main()
