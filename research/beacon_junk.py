"""Junk chunks under a venue's own set id: how soon a receiver opens the venue's set when someone who hears the beacon
sends made-up copies of some of its frames (same set id, count and index, other bytes) around each genuine one, and
how many AES-GCM openings the receiver spends on it.

    PYTHONPATH=<tree> python research/beacon_junk.py [--seeds 2] [--cases all|NAME,...]

The beacon sends frame ``t mod n`` each second of its 10-minute epoch; the receiver hears each frame, and each junk
copy, with probability ``p``.  A case ``VENUE D KIND TIMING [xV] [rR]``: junk on the first D indices (``all``: every
index), ``fresh`` (new bytes every time) or ``fixed`` (the same bytes every round), 50 ms ``after`` or ``before`` the
genuine frame (before wins ties of how often copies were heard, as the sender can time it: the beacon's order is
fixed), V distinct copies each round (default 1), each sent R times (default 1; R=2 makes fixed junk heard more
often than the genuine frame).  Printed per receiver: seconds into the epoch the set opened, per seed, or "-" (never
in the epoch), and the median openings a second the receiver spent on the venue's set id over the epoch (its CPU:
~20 us an opening); docs/venues.md.
"""

from __future__ import annotations

import argparse
import random
import statistics

from bluezone.venues import beacon
from bluezone.venues.location import Venue

VENUES = {
    "café": (Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45, seed=bytes(range(16))), bytes(range(32))),
    "long": (
        Venue.create("Quán cà phê Hoa Sữa và Bánh Mì Phượng " * 2, "Số 12 Trần Phú, Phường Minh An, Hội An " * 2, "food-service", 45, seed=bytes(16)),
        bytes(32),
    ),
}
T0 = 2_994_000 * beacon.EPOCH_SECONDS
CASES = [
    # venue20's: one copy after each genuine frame
    *(f"café {d} {kind} after" for d in ("1", "2", "4", "all") for kind in ("fresh", "fixed")),
    # the sender's best timing, and junk heard more often than the genuine frame
    "café 2 fixed before", "café all fixed before", "café 2 fixed before r2", "café 4 fixed before r2",
    "café all fixed before r2", "café all fixed after r2", "café all fixed before x3 r2",
    # junk heard once, many copies a round on one index (to push the genuine copy out before it is heard again)
    "café 1 fresh after x8", "café 1 fresh after x40",
    # a longer venue
    "long 4 fixed before r2", "long all fixed after", "long all fixed before r2", "long all fixed after r2",
]
OPENINGS = [0]


def _counting(open_blob):  # type: ignore[no-untyped-def]
    def counted(set_id: bytes, blob: bytes) -> bytes:
        OPENINGS[0] += 1
        return open_blob(set_id, blob)  # type: ignore[no-any-return]

    return counted


beacon.open_blob = _counting(beacon.open_blob)  # every opening the assembler makes, on either tree


def heard(case: str, p: float, seed: int) -> list[tuple[float, bytes]]:
    """(time, frame) the receiver hears over the epoch: the beacon's frames and the junk."""
    name, d, kind, timing, *more = case.split()
    venue, key = VENUES[name]
    rng = random.Random(seed)
    frames = beacon.frames(venue.payload, key, beacon.epoch_of(T0))
    disputed = len(frames) if d == "all" else int(d)
    options = {m[0]: int(m[1:]) for m in more}
    variants, repeats = options.get("x", 1), options.get("r", 1)
    fixed = {(i, v): rng.randbytes(beacon.CHUNK_BYTES) for i in range(disputed) for v in range(variants)}
    out = []
    for s in range(beacon.EPOCH_SECONDS):
        i = s % len(frames)
        if rng.random() < p:
            out.append((T0 + s, frames[i]))
        if i >= disputed:
            continue
        for v in range(variants):
            junk = frames[i][:7] + (fixed[i, v] if kind == "fixed" else rng.randbytes(beacon.CHUNK_BYTES))
            for r in range(repeats):
                if rng.random() < p:
                    step = 0.05 + 0.3 * (v * repeats + r) / (variants * repeats)
                    out.append((T0 + s + (step if timing == "after" else -step), junk))
    return sorted(out)


def opened_at(case: str, p: float, seed: int) -> tuple[float | None, float]:
    """(seconds into the epoch the receiver opened the venue's set or None, its openings a second over the epoch)."""
    venue = VENUES[case.split()[0]][0]
    assembler = beacon.FrameAssembler()
    OPENINGS[0] = 0
    at = None
    for t, frame in heard(case, p, seed):
        result = assembler.add(frame, -70, t)
        if at is None and result is not None and result[1] == venue:
            at = t - T0
    return at, OPENINGS[0] / beacon.EPOCH_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--cases", default="all", help="'all' or cases separated by commas")
    args = parser.parse_args()
    cases = CASES if args.cases == "all" else args.cases.split(",")
    print(f"seconds into the epoch the set opened, seeds 1-{args.seeds} ('-': never); median openings a second")
    for case in cases:
        cells = []
        for p in (1.0, 0.5):
            got = [opened_at(case, p, s) for s in range(1, args.seeds + 1)]
            opened = " ".join("-" if at is None else f"{at:.0f}" for at, _ in got)
            cells.append(f"p={p:g}: {opened} ({statistics.median(rate for _, rate in got):.1f}/s)")
        print(f"  {case:<28} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
