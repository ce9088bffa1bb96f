"""What the schema-12 migration costs the first open of a busy store: with a key server named by a URL
with credentials (rename and vacuum) and without one (nothing to rename), in alternation.

    .venv/bin/python benchmarks/store_migration_bench.py [--sightings 1000000] [--repeat 3]

Makes (untimed) a schema-11 store of ``--sightings`` random sightings, copies it for each run and times
``SightingStore.open`` on the copy (wall and CPU seconds, medians)."""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store import schema

CREDENTIAL_PIN = "INSERT INTO keyserver_pins VALUES ('https://user:secret@keys.example', 'KEY', 'id', 'v1', ?)"


def schema_11_store(path: Path, sightings: int, with_credentials: bool) -> None:
    """A store at schema 11 (before the rename) holding ``sightings`` rows, and a credential pin if asked."""
    migrations = schema.MIGRATIONS
    schema.MIGRATIONS, schema.SCHEMA_VERSION = migrations[:11], 11
    try:
        tomorrow = (int(time.time()) // DAY_SECONDS + 1) * DAY_SECONDS  # 14 days up to it: nothing to purge
        _, rows, _ = synthetic_data(1, sightings, seed=1, planted=0, end_time=tomorrow)
        with SightingStore.open(path, purge_now=time.time()) as store:
            store.add_sightings(rows)
    finally:
        schema.MIGRATIONS, schema.SCHEMA_VERSION = migrations, len(migrations)
    if with_credentials:
        with sqlite3.connect(path) as conn:
            conn.execute(CREDENTIAL_PIN, (time.time(),))
        conn.close()


def timed_open(template: Path, work: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the first open of a copy of ``template`` (the migration, and the vacuum if any)."""
    shutil.copy(template, work)
    start, cpu = time.perf_counter(), time.process_time()
    SightingStore.open(work, create=False, purge_now=time.time()).close()
    spent = time.perf_counter() - start, time.process_time() - cpu
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        templates = {kind: Path(tmp) / f"{kind}.db" for kind in ("plain", "credentials")}
        for kind, path in templates.items():
            schema_11_store(path, args.sightings, kind == "credentials")
        times: dict[str, list[tuple[float, float]]] = {kind: [] for kind in templates}
        for _ in range(args.repeat):
            for kind, path in templates.items():
                times[kind].append(timed_open(path, Path(tmp) / "work.db"))
        size = templates["plain"].stat().st_size
        print(f"{args.sightings} sightings, {size / 1e6:.1f} MB, load {os.getloadavg()[0]:.1f}")
        for kind, spent in times.items():
            wall, cpu = (statistics.median(s[i] for s in spent) for i in (0, 1))
            print(f"first open, {kind}: {wall:.2f} s wall, {cpu:.2f} s CPU (median of {args.repeat})")


if __name__ == "__main__":
    main()
