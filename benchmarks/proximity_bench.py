"""Proximity figures for docs/benchmarks.md: store write/load, ingest, emulated hour.

    .venv/bin/python benchmarks/proximity_bench.py [--rows 1000000] [--repeat 5] [--json]

Medians of ``--repeat`` runs (the machine is shared: quote medians and ratios).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bluezone.crypto.payload import SERVICE_UUID
from bluezone.proximity.emulation import run_emulated
from bluezone.proximity.ingest import adverts_to_sightings
from bluezone.proximity.radio import Advert
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

START = 1_790_000_000.0


def random_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = START + np.sort(rng.uniform(0, 13 * 86400, n))
    out["rpi"] = np.frombuffer(rng.bytes(16 * n), "V16")
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rng.integers(-100, -40, n)
    out["tx_power"] = -128
    return out


def timed(f) -> tuple[float, object]:
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.rows
    rows = random_rows(n)
    res: dict[str, object] = {"rows": n, "repeat": args.repeat}
    with tempfile.TemporaryDirectory() as d:
        writes, loads = [], []
        for i in range(args.repeat):
            with SightingStore.open(Path(d) / f"w{i}.db") as store:
                writes.append(timed(lambda: store.add_sightings(rows))[0])
        with SightingStore.open(Path(d) / "w0.db") as store:
            for _ in range(args.repeat):
                t, back = timed(store.sightings)
                loads.append(t)
            assert len(back) == n
        res["insert_rows_per_s"] = n / statistics.median(writes)
        res["insert_seconds"] = [round(x, 3) for x in writes]
        res["load_seconds_median"] = statistics.median(loads)
        res["load_seconds"] = [round(x, 3) for x in loads]

        # the daemon's path: Advert objects -> validation -> one transaction per 2,000
        m = min(n, 200_000)
        payloads = [bytes(r) + bytes(a) for r, a in zip(rows["rpi"][:m], rows["aem"][:m], strict=True)]
        times = rows["time"][:m].tolist()
        adverts = [Advert(t, p, -70, SERVICE_UUID, None, "00:11:22:33:44:55") for t, p in zip(times, payloads, strict=True)]
        ingests = []
        for i in range(args.repeat):
            with SightingStore.open(Path(d) / f"i{i}.db") as store:
                def run() -> None:
                    for lo in range(0, m, 2000):
                        batch = adverts_to_sightings(adverts[lo : lo + 2000])
                        store.add_sightings(batch.sightings, batch.addresses)
                ingests.append(timed(run)[0])
        res["ingest_adverts_per_s"] = m / statistics.median(ingests)

        # six daemons on one air for one virtual hour
        hours = []
        for i in range(max(1, args.repeat // 2)):
            positions = {"a": (0, 0), "b": (1, 0), "c": (10, 0), "d": (3, 3), "e": (20, 0), "f": (0, 5)}
            t, paths = timed(lambda: run_emulated(positions, Path(d) / f"h{i}", START, 3600, seed=i))
            hours.append(t)
        total = 0
        for p in paths.values():
            with SightingStore.open(p) as s:
                total += s.count_sightings()
        res["six_nodes_one_hour_seconds"] = [round(x, 2) for x in hours]
        res["six_nodes_one_hour_sightings"] = total
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
