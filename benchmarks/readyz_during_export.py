"""What /readyz answers while the key server exports in its own process (the schedule of `server run`).

    .venv/bin/python benchmarks/readyz_during_export.py [--keys 1000000] [--every 0.05] [--db postgresql://...]
        [--repeat 3] [--json]

Fills a scratch database (a temporary SQLite file, or ``--db``) with ``--keys`` exportable keys, starts
the app with its export schedule (the first export runs at start), and asks /readyz every ``--every`` s while
that export runs, as a load balancer's health check would (2 s timeout, the default).  Reports per run
the export's seconds, how many answers were 200 and 503, and the slowest answer.  A 503 here takes a
healthy server out of the load balancer for being busy with its own export.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _keys(n: int, now: float, rng: np.random.Generator) -> np.ndarray:
    from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
    from bluezone.keyformat.keys import empty_keys

    keys = empty_keys(n)
    keys["key"] = np.frombuffer(rng.bytes(16 * n), "V16")
    keys["rolling_start"] = rolling_start(now) - ROLLING_PERIOD * rng.integers(1, 14, n)
    keys["rolling_period"] = ROLLING_PERIOD
    keys["report_type"] = 1
    return keys


def scratch_storage(db: str, n: int, now: float) -> Any:
    """The scratch database ``db`` opened with ``n`` exportable keys, none exported yet."""
    from bluezone.server.storage import open_storage

    storage = open_storage(db)
    storage.claim_for_benchmark()
    storage.reset_exported()
    if storage.count_keys() < n:
        storage.insert_keys_unchecked(_keys(n - storage.count_keys(), now, np.random.default_rng(1)), now)
    storage.reset_exported()
    return storage


def one_run(db: str, n: int, work: Path, every: float = 0.05) -> dict[str, float]:
    from starlette.testclient import TestClient

    from bluezone.server.app import create_app
    from bluezone.server.codes import CodeKey
    from bluezone.server.signing import keygen

    now = time.time()
    storage = scratch_storage(db, n, now)
    signer = keygen(work / f"keys-{time.monotonic_ns()}")
    exports = work / f"exports-{time.monotonic_ns()}"
    app = create_app(storage, code_key=CodeKey(bytes(32)), export_dir=exports, signer=signer, export_every=3600)
    statuses: list[int] = []
    slowest = 0.0
    t0 = time.perf_counter()
    try:
        with TestClient(app) as http:  # starts the schedule: the first export runs now, in a thread
            while not (exports / "index.txt").exists() and time.perf_counter() - t0 < 600:
                asked = time.perf_counter()
                statuses.append(http.get("/readyz").status_code)
                slowest = max(slowest, time.perf_counter() - asked)
                time.sleep(every)
            seconds = time.perf_counter() - t0
    finally:
        storage.close()
    return {"export_seconds": round(seconds, 2), "ready_200": statuses.count(200), "not_ready_503": statuses.count(503),
            "slowest_answer_seconds": round(slowest, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="postgresql://... scratch database (default: a temporary SQLite file)")
    parser.add_argument("--every", type=float, default=0.05, help="seconds between checks (a load balancer: 2-10)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bluezone-readyz-") as tmp:
        db = args.db or str(Path(tmp) / "scratch.db")
        runs = [one_run(db, args.keys, Path(tmp), args.every) for _ in range(args.repeat)]
    result = {
        "backend": "PostgreSQL" if args.db else "SQLite", "keys": args.keys, "every": args.every, "cores": len(os.sched_getaffinity(0)),
        "load_average_start": load, "load_average": [round(x, 2) for x in os.getloadavg()], "runs": runs,
        "median_export_seconds": statistics.median(r["export_seconds"] for r in runs),
        "not_ready_503_total": sum(r["not_ready_503"] for r in runs),
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
