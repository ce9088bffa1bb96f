"""Venue beacon sets under frame floods: how soon a visitor's receiver opens the café's set, per flood and receiver.

    PYTHONPATH=<tree> python research/beacon_flood.py [--seeds 3] [--cases all|NAME,...]

The café's beacon sends frame ``t mod n`` each second of its 10-minute epoch; the receiver hears each with
probability ``p`` (1: every frame; 0.1: a scanner that misses most of them, or a beacon far off), at -70 dBm.
Floods (anyone can send frames with made-up set ids, at -70 dBm too):

* ``singles R`` / ``pairs R``: R new made-up sets a second (a set id never seen again), of one frame / two;
* ``venue18 [k]``: 256 made-up sets of 200 frames each sent just before the epoch (51,200 frames at 300 a
  second), then one new set id a second, of k frames (1: venue18's flood, which kept every set from completing
  for 20 minutes);
* ``keep F [W]``: an attacker who keeps 255 made-up sets heard, F frames a second round and round over them (a new
  chunk each time), from W seconds before the epoch (60 unless given; ``keep F 600``: a flood that goes on), plus
  one new set of two frames a second from the epoch's start: what it costs to keep a set out for good.

Printed: epochs opened (of ``--seeds``) and the median seconds into the epoch the set opened, by receiver
(``p``); run it with PYTHONPATH at two trees to compare their assemblers (docs/venues.md).
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Iterator

from bluezone.venues import beacon
from bluezone.venues.location import Venue

T0 = 2_994_000 * beacon.EPOCH_SECONDS  # an epoch's start
VENUES = {
    "café": (Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45, seed=bytes(range(16))), bytes(range(32))),
    "long": (
        Venue.create("Quán cà phê Hoa Sữa và Bánh Mì Phượng " * 2, "Số 12 Trần Phú, Phường Minh An, Hội An " * 2, "food-service", 45, seed=bytes(16)),
        bytes(32),
    ),
}
RECEIVERS = (1.0, 0.5, 0.2, 0.1)


def _made_up(rng: random.Random, index: int = 0, set_id: bytes | None = None) -> bytes:
    return bytes([beacon.VERSION]) + (set_id or rng.randbytes(4)) + bytes([index, 255]) + rng.randbytes(13)


def _new_set(rng: random.Random, t: float, frames: int) -> list[tuple[float, bytes]]:
    """``frames`` frames of a new made-up set from ``t``, a millisecond apart."""
    set_id = rng.randbytes(4)
    return [(t + i / 1000, _made_up(rng, i, set_id)) for i in range(frames)]


def flood(case: str, rng: random.Random) -> Iterator[tuple[float, bytes]]:
    """(time, frame) of the flood, in time order, over the epoch (and before it for ``venue18``)."""
    kind, _, arg = case.partition(" ")
    if kind == "none":
        return
    if kind in ("singles", "pairs"):
        rate = int(arg)
        for i in range(beacon.EPOCH_SECONDS * rate):
            yield from _new_set(rng, T0 + (i + 0.5) / rate, 1 if kind == "singles" else 2)
    elif kind == "venue18":
        ids = [rng.randbytes(4) for _ in range(256)]
        burst = [(i, sid) for i in range(200) for sid in ids]
        for k, (i, sid) in enumerate(burst):
            yield T0 - (len(burst) - k) / 300, _made_up(rng, i, sid)
        for s in range(beacon.EPOCH_SECONDS):
            yield from _new_set(rng, T0 + s + 0.5, int(arg or 1))
    elif kind == "keep":
        rate, _, warm = arg.partition(" ")
        ahead = float(warm or 60)
        ids = [rng.randbytes(4) for _ in range(255)]
        n = int((beacon.EPOCH_SECONDS + ahead) * float(rate))
        events = [(T0 - ahead + (i + 0.25) / float(rate), _made_up(rng, (i // 255) % 255, ids[i % 255])) for i in range(n)]
        events += [e for s in range(beacon.EPOCH_SECONDS) for e in _new_set(rng, T0 + s + 0.5, 2)]
        yield from sorted(events)
    else:
        raise SystemExit(f"unknown flood {case!r}")


def opened_at(venue: Venue, key: bytes, p: float, case: str, seed: int) -> float | None:
    """Seconds into the epoch at which the receiver opened the venue's set, None if not within it."""
    rng = random.Random(seed)
    frames = beacon.frames(venue.payload, key, beacon.epoch_of(T0))
    mine = [(T0 + s, frames[s % len(frames)]) for s in range(beacon.EPOCH_SECONDS) if rng.random() < p]
    heard = sorted([*mine, *flood(case, rng)], key=lambda e: e[0])
    assembler = beacon.FrameAssembler()
    swept = T0 - 1e9
    for t, frame in heard:
        result = assembler.add(frame, -70, t)
        if result is not None and result[1] == venue:
            return t - T0
        if t >= swept + 1:  # as the listener sweeps, once a second
            assembler.forget_before(t)
            swept = t
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cases", default="none,singles 100,singles 300,singles 1000,pairs 10,pairs 100,venue18,venue18 2,keep 2,keep 5,keep 10,keep 30")
    args = parser.parse_args()
    print(f"epochs the set opened in, of {args.seeds} (median seconds into the epoch); columns: share of the beacon's frames heard")
    for name, (venue, key) in VENUES.items():
        print(f"{name}: {len(beacon.frames(venue.payload, key, 0))} frames")
        print(f"  {'flood':14s}" + "".join(f"{f'p={p:g}':>16s}" for p in RECEIVERS))
        for case in args.cases.split(","):
            cells = []
            for p in RECEIVERS:
                got = [opened_at(venue, key, p, case, s) for s in range(1, args.seeds + 1)]
                done = [g for g in got if g is not None]
                cells.append(f"{len(done)}/{len(got)}" + (f" ({statistics.median(done):.0f} s)" if done else ""))
            print(f"  {case:14s}" + "".join(f"{c:>16s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
