"""Bluezone v3 matching for docs/benchmarks.md: F0-list entries per second against stored v3 sightings.

    .venv/bin/python benchmarks/bluezone3_bench.py [--entries 2000] [--sightings 200000] [--repeat 3] [--far N] [--json]

Medians of ``--repeat`` runs (the machine is shared: quote medians and ratios).

The baseline, timed in the same run on the first ``--naive-entries`` entries, is the app's own
walk (``BluezoneIdTrace.checkContactF``): for each entry, every slot from ``time_start`` to
``time_end`` is derived with one SHA-256 and looked up, here in a Python dict of the stored IDs
(the app asked SQLite once per slot, which is slower still).  Both find the same matches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from typing import Any

import numpy as np

from bluezone.crypto import bluezone3 as bz3
from bluezone.matching import bluezone3 as m3
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER

DAY0 = 20_400
DAYS = 14
#: ``--far`` entries start this many days before the others: a year before the last of the 14 days.
FAR_DAYS = 365 - DAYS + 1


def make_inputs(entries: int, sightings: int, seed: int = 0, far: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """An F0 list of ``entries`` keys over 14 days and sightings over the same days; some are the F0s' IDs.
    The last ``far`` entries start a year back (``FAR_DAYS`` before the others; none of them is planted)."""
    rng = np.random.default_rng(seed)
    f0 = np.zeros(entries, m3.F0_DTYPE)
    f0["daily_key"] = np.frombuffer(rng.bytes(32 * entries), "V32")
    f0["time_start"] = DAY0 * 86400
    if far:
        f0["time_start"][-far:] -= FAR_DAYS * 86400
    f0["max"] = 96
    f0["time_end"] = (DAY0 + DAYS) * 86400 - 1
    out = np.zeros(sightings, BLUEZONE3_SIGHTING_DTYPE)
    out["time"] = np.sort(DAY0 * 86400 + rng.uniform(0, DAYS * 86400, sightings))
    out["bzid"] = np.frombuffer(rng.bytes(12 * sightings), "V12")
    out["rssi"] = rng.integers(-100, -40, sightings)
    out["tx_power"] = NO_TX_POWER
    # plant 20 sightings of each of the first 10 entries, at the right time
    planted = 0
    for e in range(min(10, entries)):
        day = int(rng.integers(0, DAYS))
        key = bz3.daily_key(bytes(f0["daily_key"][e]), day)
        ids = bz3.ids_for_day(key)
        for k in rng.choice(sightings, 20, replace=False):
            slot = int(rng.integers(0, 96))
            out["bzid"][k] = np.void(ids[slot].tobytes())
            out["time"][k] = (DAY0 + day) * 86400 + slot * 900 + 60
            planted += 1
    return f0, out[np.argsort(out["time"], kind="stable")], planted


def naive_match(entries: np.ndarray, sightings: np.ndarray) -> set[tuple[int, int]]:
    """The app's walk, one SHA-256 and one dict lookup per slot (no tolerance, as the app)."""
    by_id: dict[bytes, list[int]] = {}
    for i, b in enumerate(sightings["bzid"].tolist()):
        by_id.setdefault(b, []).append(i)
    times = sightings["time"]
    found = set()
    for e, (key, start, slots, end) in enumerate(entries.tolist()):
        first = bytes(key)
        sub = first + bz3.SUBKEY_SALT
        t_next, delta, i = start * 1000, bz3.DAY_MS // slots, 0
        while t_next <= end * 1000:
            sub = hashlib.sha256(sub).digest()
            bzid = bytes(sub[o] for o in bz3.ID_OFFSETS)
            for row in by_id.get(bzid, ()):
                if t_next <= times[row] * 1000 <= t_next + delta:
                    found.add((e, row))
            t_next += delta
            i += 1
            if i == slots:
                first = hashlib.sha256(first).digest()
                sub, i = first + bz3.SUBKEY_SALT, 0
    return found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=2000)
    p.add_argument("--sightings", type=int, default=200_000)
    p.add_argument("--naive-entries", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--far", type=int, default=0, help="of the entries, this many start a year back")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not 0 <= args.far <= max(0, args.entries - 10):
        p.error("--far must leave the 10 planted entries")
    entries, sightings, planted = make_inputs(args.entries, args.sightings, far=args.far)
    ours, naive = [], []
    pairs = np.empty((0, 2))
    for _ in range(args.repeat):
        t = time.perf_counter()
        pairs = m3.match(entries, sightings, tolerance=0)
        ours.append(time.perf_counter() - t)
        sample = entries[: args.naive_entries]
        t = time.perf_counter()
        found = naive_match(sample, sightings)
        naive.append(time.perf_counter() - t)
    ours_rate = args.entries / statistics.median(ours)
    naive_rate = len(sample) / statistics.median(naive)
    in_sample = {tuple(x) for x in pairs.tolist() if x[0] < len(sample)}
    result = {
        "entries": args.entries,
        "far": args.far,
        "sightings": args.sightings,
        "days": DAYS,
        "planted": planted,
        "matches": int(len(pairs)),
        "same_matches_as_naive_on_sample": in_sample == found,
        "entries_per_s": round(ours_rate, 1),
        "naive_entries": len(sample),
        "naive_entries_per_s": round(naive_rate, 1),
        "speedup_vs_naive": round(ours_rate / naive_rate, 2),
        "median_s": round(statistics.median(ours), 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return result


if __name__ == "__main__":
    main()
