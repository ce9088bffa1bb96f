"""Proximity figures for docs/benchmarks.md: store write/load, ingest (with and without the RPI budget, and a flood), emulated hour.

    .venv/bin/python benchmarks/proximity_bench.py [--rows 1000000] [--repeat 5] [--json]

Medians of ``--repeat`` runs (the machine is shared: quote medians and ratios).

Baselines, timed in the same run and compared by rate (they live here, never in the
product path): writing = one INSERT and one commit per sighting on the store's own
connection (same schema, indices and pragmas), as a naive daemon would, on the first
``--naive-rows`` rows; loading = the same query fetched into one Python object per row,
on the first ``--naive-load-rows`` rows of the same table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bluezone.crypto.payload import SERVICE_UUID
from bluezone.progress import Progress, terminal_progress
from bluezone.config import DaemonConfig
from bluezone.proximity.budget import RpiBudget
from bluezone.proximity.emulation import run_emulated
from bluezone.proximity.ingest import adverts_to_sightings
from bluezone.proximity.radio import Advert
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
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


@dataclass(frozen=True, slots=True)
class _Sighting:
    """The naive load's row object."""

    time: float
    rpi: bytes
    aem: bytes
    rssi: int
    tx_power: int | None


def naive_insert(store: SightingStore, rows: np.ndarray) -> None:
    """Baseline writer: one INSERT and one commit per sighting."""
    conn = store.db.conn
    for r in rows.tolist():  # (time, rpi, aem, rssi, tx_power) tuples
        tx = None if r[4] == NO_TX_POWER else r[4]
        conn.execute(
            "INSERT INTO sightings (time, rpi, aem, rssi, tx_power, address) VALUES (?, ?, ?, ?, ?, ?)",
            (r[0], r[1], r[2], r[3], tx, None),
        )
        conn.commit()


def naive_load(store: SightingStore, limit: int) -> list[_Sighting]:
    """Baseline reader: the store's query, one Python object per row."""
    cursor = store.db.conn.execute(
        "SELECT time, rpi, aem, rssi, tx_power FROM sightings"
        " WHERE length(rpi) = 16 AND length(aem) = 4 ORDER BY time LIMIT ?",
        (limit,),
    )
    return [_Sighting(*row) for row in cursor.fetchall()]


def timed(f) -> tuple[float, object]:
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--naive-rows", type=int, default=10_000, help="rows the one-commit-per-row baseline writes")
    ap.add_argument("--naive-load-rows", type=int, default=200_000, help="rows the object-per-row baseline loads")
    ap.add_argument("--emulated-seconds", type=float, default=3600.0, help="virtual time of the six-node run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n = args.rows
    with terminal_progress(f"proximity_bench: {n:,} rows, {args.repeat} repeats (a minute or more)") as progress:
        res = measure(args, progress or (lambda stage, fraction: None))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return res


def measure(args: argparse.Namespace, say: Progress) -> dict[str, object]:
    """Every figure; ``say`` hears of each stage between timings."""
    n = args.rows
    rows = random_rows(n)
    res: dict[str, object] = {"rows": n, "repeat": args.repeat}
    with tempfile.TemporaryDirectory() as d:
        writes, loads, naive_writes, naive_loads = [], [], [], []
        k = min(n, args.naive_rows)
        for i in range(args.repeat):  # batched and baseline alternate, so load bursts hit both
            with SightingStore.open(Path(d) / f"w{i}.db") as store:
                writes.append(timed(lambda: store.add_sightings(rows))[0])
            with SightingStore.open(Path(d) / f"n{i}.db") as store:
                naive_writes.append(timed(lambda: naive_insert(store, rows[:k]))[0])
                assert store.count_sightings() == k
            say("store writes", (i + 1) / args.repeat)
        kl = min(n, args.naive_load_rows)
        with SightingStore.open(Path(d) / "w0.db") as store:
            for i in range(args.repeat):
                t, back = timed(store.sightings)
                loads.append(t)
                t, objs = timed(lambda: naive_load(store, kl))
                naive_loads.append(t)
                say("store loads", (i + 1) / args.repeat)
            assert len(back) == n and len(objs) == kl
        res["insert_rows_per_s"] = n / statistics.median(writes)
        res["insert_seconds"] = [round(x, 3) for x in writes]
        res["naive_insert_rows"] = k
        res["naive_insert_rows_per_s"] = k / statistics.median(naive_writes)
        res["naive_insert_seconds"] = [round(x, 3) for x in naive_writes]
        res["insert_speedup_vs_naive"] = res["insert_rows_per_s"] / res["naive_insert_rows_per_s"]
        res["load_seconds_median"] = statistics.median(loads)
        res["load_seconds"] = [round(x, 3) for x in loads]
        res["load_rows_per_s"] = n / statistics.median(loads)
        res["naive_load_rows"] = kl
        res["naive_load_rows_per_s"] = kl / statistics.median(naive_loads)
        res["naive_load_seconds"] = [round(x, 3) for x in naive_loads]
        res["load_speedup_vs_naive"] = res["load_rows_per_s"] / res["naive_load_rows_per_s"]

        # the daemon's path: Advert objects -> validation -> the RPI budget -> one transaction per
        # batch; beside it, alternating, the same without the budget (the path before it), in CPU
        # time (this process's: a loaded machine's other work counts less).  Three workloads: the
        # rows above (every advert its own RPI, 2,000 a batch spanning ~37 minutes: the budget's
        # worst case), a crowd (300 phones at 4 Hz, 6,000 adverts a batch: the daemon's 5 s), a flood
        # (every advert a new RPI, 100 a second, 500 a batch)
        m = min(n, 200_000)
        payloads = [bytes(r) + bytes(a) for r, a in zip(rows["rpi"][:m], rows["aem"][:m], strict=True)]
        phones = payloads[:300]  # 300 phones' RPIs, each heard again and again
        sent = {
            "ingest": (rows["time"][:m].tolist(), payloads, 2000),
            "crowd": ((START + np.arange(m) / 1200.0).tolist(), [phones[i % len(phones)] for i in range(m)], 6000),
            "flood": ((START + np.arange(m) / 100.0).tolist(), payloads, 500),
        }
        for name, (times, data, size) in sent.items():
            adverts = [Advert(t, p, -70, SERVICE_UUID, None, "00:11:22:33:44:55") for t, p in zip(times, data, strict=True)]
            took: dict[bool, list[float]] = {True: [], False: []}
            stored: dict[bool, int] = {}
            for i in range(args.repeat):
                for budgeted in (True, False):
                    with SightingStore.open(Path(d) / f"{name}{i}{budgeted}.db") as store:
                        budget = RpiBudget(DaemonConfig().max_rpis_per_minute) if budgeted else None
                        started = time.process_time()
                        for lo in range(0, m, size):
                            batch = adverts_to_sightings(adverts[lo : lo + size])
                            kept = (batch.sightings, batch.addresses) if budget is None else budget.filter(
                                batch.sightings, batch.addresses
                            )
                            store.add_sightings(*kept)
                        took[budgeted].append(time.process_time() - started)
                        stored[budgeted] = store.count_sightings()
                say(name, (i + 1) / args.repeat)
            res[f"{name}_adverts_per_cpu_s"] = m / statistics.median(took[True])
            res[f"{name}_without_budget_adverts_per_cpu_s"] = m / statistics.median(took[False])
            res[f"{name}_budget_ratio"] = statistics.median(took[False]) / statistics.median(took[True])
            res[f"{name}_rows_stored"] = stored[True]
            res[f"{name}_without_budget_rows_stored"] = stored[False]

        # six daemons on one air for one virtual hour
        hours = []
        for i in range(max(1, args.repeat // 2)):
            say("six emulated nodes for an hour", i / max(1, args.repeat // 2))
            positions = {"a": (0, 0), "b": (1, 0), "c": (10, 0), "d": (3, 3), "e": (20, 0), "f": (0, 5)}
            t, paths = timed(lambda: run_emulated(positions, Path(d) / f"h{i}", START, args.emulated_seconds, seed=i))
            hours.append(t)
        total = 0
        for p in paths.values():
            with SightingStore.open(p) as s:
                total += s.count_sightings()
        res["six_nodes_one_hour_seconds"] = [round(x, 2) for x in hours]
        res["six_nodes_one_hour_sightings"] = total
    return res


if __name__ == "__main__":
    main()
