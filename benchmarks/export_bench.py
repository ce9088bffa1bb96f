"""The key server's export of N keys, beside its sign-and-zip floor and an older version's export.

    git archive <commit> bluezone | tar -x -C DIR
    .venv/bin/python benchmarks/export_bench.py [--keys 1000000] [--repeat 3] [--baseline-src DIR]
        [--postgres DSN] [--json]

Each version gets a key-server database written by its own code (untimed; SQLite files cached
in ``--workdir``, or databases on the ``--postgres`` server) holding the same ``--keys`` random keys over the last 14 days.  Each run is a
fresh process importing one version (``PYTHONPATH``, from a neutral directory): it puts every
key back in the export queue (untimed), times ``export_batches`` (read, shuffle, encode, sign,
zip, write, mark, index, purge; and the bytes of the files it wrote, the padding's fake keys among
them), then times that version's floor on the same keys:
``server.benchmark.sign_zip_floor``, encoding + ECDSA + zip in memory in the export's chunks,
nothing else.  Versions alternate, ``--repeat`` times; medians and ratios are printed.  The
floor of the current version, whose encoder is column-wise, is the honest one: the
``export_vs_floor`` that counts; the baseline's floor (protobuf objects) is shown beside it.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_FIELDS = [("key", "V16"), ("rolling_start", "i4"), ("rolling_period", "i4"), ("transmission_risk", "i4"),
              ("report_type", "i1"), ("days_since_onset", "i4")]


def worker(db: str, n_keys: int, seed: int, signing: Path) -> dict[str, Any]:
    """One run in this process, with whichever ``bluezone`` is on the path."""
    import numpy as np

    from bluezone.crypto.intervals import ROLLING_PERIOD, interval_number, rolling_start
    from bluezone.server.benchmark import sign_zip_floor
    from bluezone.server.exports import ExportConfig, export_batches
    from bluezone.server.signing import keygen
    from bluezone.server.storage import open_storage

    storage = open_storage(db)
    signer = keygen(signing, force=True)
    now = time.time()
    if storage.count_keys() == 0:
        rng = np.random.default_rng(seed)
        keys = np.zeros(n_keys, KEY_FIELDS)  # the fields every version's insert_keys_unchecked reads
        keys["rolling_period"] = ROLLING_PERIOD
        keys["days_since_onset"] = np.iinfo(np.int32).min  # unknown
        keys["key"] = np.frombuffer(rng.bytes(16 * n_keys), "V16")
        keys["rolling_start"] = rolling_start(now) - ROLLING_PERIOD * rng.integers(1, 15, n_keys)
        storage.insert_keys_unchecked(keys, now)
    storage.reset_exported()
    config = ExportConfig()
    pending, _, _ = storage.pending_keys(interval_number(now), rolling_start(now) - config.retention_days * ROLLING_PERIOD)
    with tempfile.TemporaryDirectory(prefix="bluezone-export-bench-") as scratch:
        out = Path(scratch) / "exports"  # (exports since srv22 write beside it first: gone with the scratch)
        try:  # the database is kept between runs, each exporting into a scratch directory of its own
            from bluezone.server.exportdir import claim_export_dir
        except ImportError:  # a baseline from before the export directory on record
            pass
        else:
            claim_export_dir(storage, out, moved=True)
        t0 = time.perf_counter()
        batches = export_batches(storage, signer, out, now, config)
        seconds = time.perf_counter() - t0
        written = sum(f.stat().st_size for f in out.glob("*.zip"))
    floor = sign_zip_floor(pending, signer, config)
    storage.close()
    src = Path(os.environ["PYTHONPATH"]).resolve()
    strays = [m.__file__ for name, m in sys.modules.items()
              if name.split(".")[0] == "bluezone" and getattr(m, "__file__", None) and src not in Path(m.__file__).parents]
    if strays:  # a module the older version lacks, found in an installed bluezone: not that version's run
        raise SystemExit(f"modules from outside {src}: {strays[:3]}")
    return {"export_seconds": seconds, "floor_seconds": floor, "keys": sum(b.num_keys for b in batches),
            "padding_keys": sum(getattr(b, "padding_keys", 0) for b in batches),  # fakes (none before padding)
            "files": len(batches), "bytes": written, "storage": type(storage).__name__}


def run(src: Path, db: str, n_keys: int, seed: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    with tempfile.TemporaryDirectory() as neutral:  # so `-c` does not import the checkout's bluezone/
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", db, "--keys", str(n_keys), "--seed", str(seed)],
            env=env, cwd=neutral, capture_output=True, text=True, check=False,
        )
    if done.returncode:
        raise SystemExit(f"run of {src} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def _postgres_database(dsn: str, name: str) -> str:
    """The ``postgresql://`` URL of database ``name`` on the server of ``dsn`` (a URL), created if missing."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def add_options(parser: argparse.ArgumentParser, keys: int, name: str) -> None:
    """The options of a benchmark of exports from a database per version (this one's, export_revisions_bench's)."""
    parser.add_argument("--keys", type=int, default=keys)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-src", type=Path, help="directory holding an older bluezone/")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / f"bluezone-{name}")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL instead of SQLite (postgresql://...): each version"
                        f" gets its own database (bluezone_{name.replace('-', '_')}_<version>_...) on that server")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(parser, 1_000_000, "export-bench")
    args = parser.parse_args()
    if args.worker:
        with tempfile.TemporaryDirectory() as signing:
            print(json.dumps(worker(args.worker, args.keys, args.seed, Path(signing) / "key")))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    day = int(time.time()) // 86400  # keys are placed relative to today: a new day, new databases
    versions = {"now": ROOT}
    if args.baseline_src:
        versions = {"baseline": args.baseline_src.resolve(), **versions}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in versions}
    for r in range(args.repeat):
        for name, src in versions.items():
            db = str(args.workdir / f"{name}-{args.keys}-{args.seed}-{day}.db")
            if args.postgres:
                db = _postgres_database(args.postgres, f"bluezone_export_bench_{name}_{args.keys}_{args.seed}_{day}")
            runs[name].append(run(src, db, args.keys, args.seed))
            if not args.json:
                print(f"run {r + 1}/{args.repeat} {name}: {runs[name][-1]}", file=sys.stderr)
    result: dict[str, Any] = {"backend": "PostgreSQL" if args.postgres else "SQLite", "keys": args.keys, "repeat": args.repeat, "load_average": os.getloadavg()}
    for name, rows in runs.items():
        if any(row["keys"] != args.keys for row in rows):
            raise SystemExit(f"{name} exported {[row['keys'] for row in rows]} keys, not {args.keys}")
        expected = "PostgresStorage" if args.postgres else "SQLiteStorage"
        if any(row["storage"] != expected for row in rows):  # a DSN open_storage took for a file name, say
            raise SystemExit(f"{name} ran on {[row['storage'] for row in rows]}, not {expected}")
        result[name] = {
            "export_seconds": statistics.median(row["export_seconds"] for row in rows),
            "floor_seconds": statistics.median(row["floor_seconds"] for row in rows),
            "export_seconds_runs": [round(row["export_seconds"], 3) for row in rows],
            "floor_seconds_runs": [round(row["floor_seconds"], 3) for row in rows],
            "files": rows[-1]["files"],
            "bytes": statistics.median(row["bytes"] for row in rows),
            "padding_keys": statistics.median(row["padding_keys"] for row in rows),
        }
    now = result["now"]
    result["export_vs_floor"] = now["export_seconds"] / now["floor_seconds"]
    if "baseline" in result:
        base = result["baseline"]
        result["speedup_vs_baseline"] = base["export_seconds"] / now["export_seconds"]
        result["baseline_export_vs_its_floor"] = base["export_seconds"] / base["floor_seconds"]
        result["export_vs_baseline_floor"] = now["export_seconds"] / base["floor_seconds"]
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
