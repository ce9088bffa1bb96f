"""How /readyz answers while the key server exports in its own process: database connections opened, answer time.

    .venv/bin/python benchmarks/readyz_connections.py [--db postgresql://...] [--keys 1000000] [--every 0.2]

As ``readyz_during_export.py`` (a scratch database with ``--keys`` exportable keys, the app's schedule exporting
them in a thread), but counting the connections the storage opens meanwhile (PostgreSQL: its ``_connect``;
SQLite: ``sqlite3.connect``) and timing each check.  One line: the export's seconds, the checks made (and their
503s), the connections opened, the median answer and the load.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _counting(storage: Any, opened: list[int]) -> None:
    """Count every connection ``storage`` opens from now on in ``opened[0]``."""
    def counted(connect: Any) -> Any:
        return lambda *a, **k: (opened.__setitem__(0, opened[0] + 1), connect(*a, **k))[1]

    if hasattr(storage, "_dsn"):
        storage._connect = counted(storage._connect)
    else:
        sqlite3.connect = counted(sqlite3.connect)  # type: ignore[assignment]


def one_run(db: str, n: int, work: Path, every: float) -> str:
    from readyz_during_export import scratch_storage
    from starlette.testclient import TestClient

    from bluezone.server.app import create_app
    from bluezone.server.codes import CodeKey
    from bluezone.server.signing import keygen

    storage = scratch_storage(db, n, time.time())
    opened = [0]
    _counting(storage, opened)
    exports = work / f"exports-{time.monotonic_ns()}"
    app = create_app(storage, code_key=CodeKey(bytes(32)), export_dir=exports, signer=keygen(work / f"k-{time.monotonic_ns()}"),
                     export_every=3600)
    times, codes = [], []
    t0 = time.perf_counter()
    try:
        with TestClient(app) as http:
            while not (exports / "index.txt").exists() and time.perf_counter() - t0 < 600:
                asked = time.perf_counter()
                codes.append(http.get("/readyz").status_code)
                times.append(time.perf_counter() - asked)
                time.sleep(every)
    finally:
        storage.close()
    return (f"export {time.perf_counter() - t0:5.2f} s  checks {len(times):3d} (503: {codes.count(503)})  connections opened"
            f" {opened[0]:3d}  median answer {statistics.median(times) * 1e3:6.2f} ms  load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="postgresql://... scratch database (default: a temporary SQLite file)")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between checks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bluezone-readyz-") as tmp:
        print(one_run(args.db or str(Path(tmp) / "scratch.db"), args.keys, Path(tmp), args.every))


if __name__ == "__main__":
    main()
