"""An export of many revisions (keys published before, then confirmed), on SQLite or PostgreSQL, beside
the export of the keys themselves, for one or two versions of bluezone alternating:

    git archive <commit> bluezone | tar -x -C DIR
    .venv/bin/python benchmarks/export_revisions_bench.py [--keys 300000] [--revisions 100000] [--repeat 3]
        [--baseline-src DIR] [--postgres URL] [--json]

Each version gets a database written by its own code (untimed; SQLite files in ``--workdir``, or one
database per version on the ``--postgres`` server) holding ``--keys`` likely keys over the last 14 days.
Each run is a fresh process importing one version (``PYTHONPATH``): it forgets every file and revision,
exports every key (timed: ``keys_seconds``, files padded as usual), confirms ``--revisions`` of them
(untimed: one statement per table, what that many uploads with their tokens would leave behind), then
times the export of those revisions (``revisions_seconds``): the queue read, the files of those days
read back for fake keys to revise beside the real ones (padding), signing, writing, taking them out of
the queue and marking them carried.  Medians and ratios are printed.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bench import _postgres_database, add_options  # noqa: E402  (a directory that is not a checkout)
from tree_passes import alternate, trees  # noqa: E402

def worker(db: str, n_keys: int, n_revisions: int, seed: int, out: Path) -> dict[str, Any]:
    """One run in this process, with whichever ``bluezone`` is on the path."""
    import numpy as np

    from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
    from bluezone.keyformat.keys import empty_keys
    from bluezone.server.exports import ExportConfig, export_batches
    from bluezone.server.signing import keygen
    from bluezone.server.storage import CONFIRMED, LIKELY, open_storage

    storage = open_storage(db)
    signer = keygen(out / "key", force=True)
    now = time.time()
    if storage.count_keys() == 0:
        rng = np.random.default_rng(seed)
        keys = empty_keys(n_keys)
        keys["key"] = np.frombuffer(rng.bytes(16 * n_keys), "V16")
        keys["rolling_start"] = rolling_start(now) - ROLLING_PERIOD * rng.integers(1, 15, n_keys)
        keys["report_type"] = LIKELY
        storage.insert_keys_unchecked(keys, now)
    with storage._transaction() as cur:  # every revision of an earlier run forgotten
        storage._exec(cur, "DELETE FROM key_revisions")
        storage._exec(cur, "UPDATE exposure_keys SET revised_report_type = NULL, revised_days_since_onset = NULL,"
                           " revised_at = NULL, revised_code_hash = NULL WHERE revised_at IS NOT NULL")
        storage._exec(cur, "DELETE FROM padding_secrets")
    storage.reset_exported()
    files = out / "exports"
    t0 = time.perf_counter()
    export_batches(storage, signer, files, now, ExportConfig())
    keys_seconds = time.perf_counter() - t0
    step = max(1, n_keys // n_revisions)
    with storage._transaction() as cur:  # what n_revisions confirmations by their devices leave behind
        storage._exec(cur, "UPDATE exposure_keys SET revised_report_type = ?, revised_at = ? WHERE id - (id / ?) * ? = 0",
                      [CONFIRMED, now, step, step])
        storage._exec(cur, "INSERT INTO key_revisions (key_id, report_type, days_since_onset, revised_at, code_hash)"
                           " SELECT id, ?, NULL, ?, NULL FROM exposure_keys WHERE revised_at IS NOT NULL", [CONFIRMED, now])
    with storage._transaction() as cur:  # planned on fresh statistics (uploads one by one leave them so)
        storage._exec(cur, "ANALYZE")
    with storage._transaction() as cur:
        storage._queue_keys(cur, "revision_queue", "k.revised_at IS NOT NULL")
    waiting = len(storage.pending_revisions(0)[0])
    t0 = time.perf_counter()
    batches = export_batches(storage, signer, files, now + 60, ExportConfig())
    revisions_seconds = time.perf_counter() - t0
    left = len(storage.pending_revisions(0)[0])
    storage.close()
    return {"keys_seconds": keys_seconds, "revisions_seconds": revisions_seconds, "revisions": waiting, "left": left,
            "revision_files": len(batches), "storage": type(storage).__name__}


def run(src: Path, db: str, n_keys: int, n_revisions: int, seed: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    with tempfile.TemporaryDirectory() as neutral:  # so `-c` does not import the checkout's bluezone/
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", db, "--keys", str(n_keys), "--revisions",
             str(n_revisions), "--seed", str(seed), "--out", neutral],
            env=env, cwd=neutral, capture_output=True, text=True, check=False,
        )
    if done.returncode:
        raise SystemExit(f"run of {src} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(parser, 300_000, "export-revisions")
    parser.add_argument("--revisions", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.keys, args.revisions, args.seed, args.out)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    day = int(time.time()) // 86400  # keys are placed relative to today: a new day, new databases
    versions = trees(parser, args)
    named = {src: name for name, src in versions.items()}

    def one(src: Path) -> dict[str, Any]:
        label = f"{named[src]}-{args.keys}-{args.seed}-{day}"
        db = (_postgres_database(args.postgres, f"bluezone_export_revisions_{label.replace('-', '_')}")
              if args.postgres else str(args.workdir / f"{label}.db"))
        done = run(src, db, args.keys, args.revisions, args.seed)
        if not args.json:
            print(f"{named[src]}: {done}", file=sys.stderr)
        return done

    runs = alternate(versions, args.repeat, one)
    result: dict[str, Any] = {"backend": "PostgreSQL" if args.postgres else "SQLite", "keys": args.keys,
                              "load_average": os.getloadavg()}
    for name, rows in runs.items():
        if any(row["left"] or row["revisions"] != rows[0]["revisions"] for row in rows):
            raise SystemExit(f"{name}: revisions not all exported: {rows}")
        result[name] = {
            "revisions": rows[0]["revisions"],
            **{f"{k}_seconds": statistics.median(row[f"{k}_seconds"] for row in rows) for k in ("keys", "revisions")},
            **{f"{k}_seconds_runs": [round(row[f"{k}_seconds"], 3) for row in rows] for k in ("keys", "revisions")},
        }
    if "baseline" in result:
        for k in ("keys", "revisions"):
            result[f"{k}_now_vs_baseline"] = result["now"][f"{k}_seconds"] / result["baseline"][f"{k}_seconds"]
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
