"""The bluezone scorer's cost on a busy day: the previous defaults, the same-minute reference with the
ramp ranking, and now the near/far chain ranking.

Usage: python benchmarks/scorer_bench.py [--repeats N]

A receiver heard 300 neighbours for an hour each over ten hours (20 adverts a minute: 360,000
sightings); 50 of them are diagnosis keys' links.  Per repeat, the settings alternate: building the
receiver context (``receiver_context``, the same for all) and scoring the 50 exposure windows.  Then
the worst case for the chain, one link heard all day (1,440 judged minutes), ramp and chain
alternating.  Prints medians and the ratios (docs/benchmarks.md, "Scorer").
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.receiver import receiver_context
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE

DAY = 1_780_444_800
SETTINGS = {
    "previous": BluezoneConfig(minute_reference_weight=0.0, ramp_db=0.0, ranking="ramp"),
    "ramp": BluezoneConfig(ranking="ramp"),
    "now": BluezoneConfig(),
}


def busy_day(neighbours: int = 300, minutes: int = 60, per_minute: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(neighbours):
        k = minutes * per_minute
        s = np.zeros(k, SIGHTING_DTYPE)
        s["time"] = DAY + 8 * 3600 + rng.uniform(0, 9 * 3600) + np.sort(rng.uniform(0, minutes * 60, k))
        s["rpi"] = np.frombuffer(n.to_bytes(16, "little") * k, "V16")
        s["rssi"] = np.round(-24 - (55 + 15 * rng.random() + rng.normal(0, 4, k))).astype(np.int16)
        s["tx_power"] = NO_TX_POWER
        rows.append(s)
    return np.sort(np.concatenate(rows), order="time")


def windows_of(sightings: np.ndarray, count: int = 50) -> list[ExposureWindow]:
    out = []
    for n in range(count):
        idx = np.flatnonzero(sightings["rpi"] == np.frombuffer(n.to_bytes(16, "little"), "V16")[0])
        rssi = sightings["rssi"][idx].astype(np.int32)
        out.append(ExposureWindow(0, DAY, sightings["time"][idx], rssi, -24 - rssi, False, sighting_index=idx))
    return out


def main(repeats: int = 7) -> None:
    sightings = busy_day()
    windows = windows_of(sightings)
    times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    context_s = []
    for _ in range(repeats):
        t = time.perf_counter()
        context = receiver_context(sightings)
        context_s.append(time.perf_counter() - t)
        for name, config in SETTINGS.items():
            scorer = BluezoneScorer(config).for_receiver(context)
            t = time.perf_counter()
            for w in windows:
                scorer.score(w)
            times[name].append(time.perf_counter() - t)
    print(f"{len(sightings)} sightings; receiver context median {np.median(context_s):.3f} s")
    for name, ts in times.items():
        print(f"{name:>9}: 50 windows scored, median {np.median(ts):.3f} s (min {min(ts):.3f}, max {max(ts):.3f})")
    print(f"ratio now / previous: {np.median(times['now']) / np.median(times['previous']):.2f}")
    print(f"ratio now (chain) / ramp: {np.median(times['now']) / np.median(times['ramp']):.2f}")
    all_day(repeats)


def all_day(repeats: int) -> None:
    """One link heard every minute of a day (a housemate): the chain's longest window."""
    rng = np.random.default_rng(1)
    times = DAY + np.sort(rng.uniform(0, 86_400, 1440 * 20))
    att = np.round(60 + rng.normal(0, 4, len(times))).astype(np.int32)
    window = ExposureWindow(0, DAY, times, -24 - att, att, False)
    took: dict[str, list[float]] = {"ramp": [], "now": []}
    for _ in range(repeats):
        for name in took:
            scorer = BluezoneScorer(SETTINGS[name])
            t = time.perf_counter()
            for _ in range(10):
                scorer.score(window)
            took[name].append((time.perf_counter() - t) / 10)
    for name, ts in took.items():
        print(f"{name:>9}: one all-day window (1,440 minutes), median {np.median(ts) * 1e3:.2f} ms (min {min(ts) * 1e3:.2f}, max {max(ts) * 1e3:.2f})")
    print(f"ratio now (chain) / ramp, all day: {np.median(took['now']) / np.median(took['ramp']):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 7)
