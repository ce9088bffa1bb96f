"""Does a radio what-if on one seed keep each link's packets? (left15: no; docs/simulation.md)

    python research/whatif_packets.py [--scenario classroom] [--seed 1] [--minutes 5]

Runs the scenario with the shipped radio and with one setting changed at a time (sensitivity, advert
rate, fast-fading SD, path-loss exponent), records every packet the channel lets through (sender,
receiver, time, RSSI), and counts the links heard in both runs whose packets come at the same times
(and with the same RSSI).  The
crowd, phones, keys and shadowing come from streams of their own (``sim/streams.py``); the packets
(how many, when, their fast noise) share one stream drawn link by link over the audible links, so a
setting that changes which links are audible, or how many packets a link sends, moves every later draw.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from bluezone.sim import channel, engine
from bluezone.sim.catalogue import find_scenario
from bluezone.sim.scenario import load_scenario

WHAT_IFS = {"sensitivity_dbm": -85.0, "advert_rate_hz": 4.0, "fast_sd_db": 5.0, "exponent": 2.2}


def packets_of(scenario: object, seed: int) -> np.ndarray:
    """(tx, rx, time, rssi) of every packet the channel passed to the receivers."""
    recorded: list[np.ndarray] = []
    step = channel.LinkShadowing.step

    def recording(self: channel.LinkShadowing, *args: object, **kwargs: object) -> object:
        out = step(self, *args, **kwargs)  # type: ignore[arg-type]
        p = out[0]
        recorded.append(np.c_[p.tx, p.rx, p.time, p.rssi])
        return out

    channel.LinkShadowing.step = recording  # type: ignore[method-assign]
    try:
        engine.run(scenario, seed, scorers=["gaen"], store="memory")  # type: ignore[arg-type]
    finally:
        channel.LinkShadowing.step = step  # type: ignore[method-assign]
    return np.concatenate(recorded)


def by_link(packets: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Each link's (time, rssi) rows, by time."""
    order = np.lexsort((packets[:, 2], packets[:, 1], packets[:, 0]))
    packets = packets[order]
    links = packets[:, :2].astype(np.int64)
    cut = np.flatnonzero(np.any(np.diff(links, axis=0) != 0, axis=1)) + 1
    return {(int(g[0, 0]), int(g[0, 1])): g[:, 2:] for g in np.split(packets, cut)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="classroom")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=5.0)
    args = p.parse_args()
    base = load_scenario(find_scenario(args.scenario))
    base = dataclasses.replace(base, duration_min=args.minutes)
    shipped = by_link(packets_of(base, args.seed))
    print(f"{args.scenario}, seed {args.seed}, {args.minutes:g} min: {len(shipped)} links heard with the shipped radio")
    for name, value in WHAT_IFS.items():
        other = dataclasses.replace(base, radio=dataclasses.replace(base.radio, **{name: value}))
        changed = by_link(packets_of(other, args.seed))
        both = shipped.keys() & changed.keys()
        times = sum(np.array_equal(shipped[k][:, 0], changed[k][:, 0]) for k in both)
        same = sum(np.array_equal(shipped[k], changed[k]) for k in both)
        print(f"  {name} = {value:g}: {len(both)} links heard in both runs; {times} with the same packet times,"
              f" {same} with the same times and RSSI")


if __name__ == "__main__":
    main()
