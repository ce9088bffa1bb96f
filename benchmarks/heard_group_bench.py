"""Where grouping a store's distinct RPIs in SQLite starts to beat numpy's grouping: ``heardread._GROUP_FROM``.

    .venv/bin/python benchmarks/heard_group_bench.py [--per-rpi 1 2 3 4 6 8 16] [--sightings 1000000] [--repeat 7]

A check reads every RPI its store heard (``heardread.read_heard`` of every day, then ``heard_arrays``) one of
two ways, chosen by the store's shape (``rpis_heard_often``: RPIs heard ``_GROUP_FROM`` times or more on
average): grouped by SQLite (from ``rpi_days``, one row per RPI and day, schema 13) or every index entry handed
over and grouped by numpy.  For each ``--per-rpi`` shape (``check_bench.make_inputs``' stores: every RPI heard
that many times, five phones' RPIs interleaved; made once in ``--workdir``) a fresh process per run reads the
store both ways, alternating which goes first, and reports each way's CPU seconds (``time.process_time``, best
of three within the process), medians over ``--repeat`` processes, and their ratio (numpy's over SQLite's:
above 1, grouping in SQLite is faster).  Both ways must give the same arrays, else it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_bench import make_inputs  # noqa: E402  (the same stores as the whole check's benchmark)

CHILD = """
import json, sqlite3, sys, time
import numpy as np
from bluezone.proximity.store.heardread import read_heard
from bluezone.proximity.store.sightings import heard_arrays
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, isolation_level=None)
order = [True, False] if sys.argv[2] == "0" else [False, True]
out, arrays = {}, {}
for grouped in order:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        arrays[grouped] = heard_arrays(read_heard(conn, None, None, 2, grouped), 2, None)
        best = min(best, time.process_time() - start)
    out["sqlite" if grouped else "numpy"] = best
same = all(np.array_equal(a, b) for a, b in zip(arrays[True], arrays[False]))
out["distinct"] = len(arrays[True][0])
print(json.dumps(out) if same else "DIFFERENT")
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-rpi", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8, 16])
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-heard-group-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    stores = {k: make_inputs(args.workdir, 100, args.sightings, 0, per_rpi=k)[1] for k in args.per_rpi}
    runs: dict[int, dict[str, list[float]]] = {k: {"sqlite": [], "numpy": []} for k in args.per_rpi}
    distinct: dict[int, int] = {}
    load = [os.getloadavg()]
    for i in range(args.repeat):
        for k, db in stores.items():
            done = subprocess.run([sys.executable, "-c", CHILD, str(db), str(i % 2)], capture_output=True, text=True, check=True)
            if done.stdout.strip() == "DIFFERENT":
                raise SystemExit(f"per-rpi {k}: SQLite's and numpy's grouping differ")
            out = json.loads(done.stdout)
            distinct[k] = out["distinct"]
            for way in ("sqlite", "numpy"):
                runs[k][way].append(out[way])
    load.append(os.getloadavg())
    result = {
        "sightings": args.sightings,
        "load_average_start_end": [[round(x, 2) for x in avg[:3]] for avg in load],
        "at": time.strftime("%H:%M UTC", time.gmtime()),
        "by_per_rpi": {
            k: {
                "distinct_rpis": distinct[k],
                "sqlite_ms": round(1000 * statistics.median(r["sqlite"]), 2),
                "numpy_ms": round(1000 * statistics.median(r["numpy"]), 2),
                "numpy_over_sqlite": round(statistics.median(r["numpy"]) / statistics.median(r["sqlite"]), 2),
            }
            for k, r in runs.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(f"{args.sightings} sightings, {args.repeat} processes each, load {result['load_average_start_end']}")
    for k, row in result["by_per_rpi"].items():
        print(f"per RPI {k:>3}: {row['distinct_rpis']:>8} distinct  SQLite {row['sqlite_ms']:8.2f} ms  "
              f"numpy {row['numpy_ms']:8.2f} ms  numpy/SQLite {row['numpy_over_sqlite']:.2f}")
    return result


if __name__ == "__main__":
    main()
