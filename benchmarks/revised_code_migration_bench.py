"""Seconds of server schema 16's migration (each earlier revision linked to the code used at its instant)
and of schema 17's (each revision kept in key_revisions, the queues' records naming it) on a schema-15
SQLite database (or PostgreSQL, ``--postgres``) of N keys, R of them revised (Q of those still waiting for a file), C used codes: each runs
once, at the first start after the upgrade, with the server's database locked.

    python benchmarks/revised_code_migration_bench.py [--keys 300000] [--revised 100000] [--queued 10000]
        [--waiting 5000] [--codes 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bench import _postgres_database  # noqa: E402  (a directory that is not a checkout)

from bluezone.keyformat.keys import empty_keys  # noqa: E402
from bluezone.server.storage import open_storage, schema  # noqa: E402

USED_AT = 1.7e9


def open_at(db: Path | str, version: int):  # type: ignore[no-untyped-def]
    """The database opened (made, or migrated) at schema ``version``, its queues written as that version's did."""
    current, schema.SCHEMA_VERSION = schema.SCHEMA_VERSION, version
    try:
        storage = open_storage(db)
    finally:
        schema.SCHEMA_VERSION = current
    if version < 17:  # a record said revised or not (no key_revisions yet)
        storage._queue_keys = functools.partial(type(storage)._queue_keys, storage, revision=schema.QUEUED_REVISED_FLAG)
    return storage


def schema15(db: Path | str, keys: int, revised: int, queued: int, codes: int, waiting: int) -> None:
    """A schema-15 database: ``keys`` keys, the first ``revised`` revised at the instant of one of ``codes`` used
    codes, the first ``queued`` of those waiting for a file in revision_queue, the first ``waiting`` keys still
    waiting for their first file too."""
    storage = open_at(db, 15)
    try:
        stored = empty_keys(keys)
        stored["key"] = np.frombuffer(np.random.default_rng(1).bytes(16 * keys), "V16")
        stored["rolling_start"], stored["rolling_period"] = 2_940_000, 144
        storage.insert_keys_unchecked(stored, USED_AT)
        with storage._transaction() as cur:
            storage._exec(cur, "DELETE FROM export_queue WHERE key_id > ?", [waiting])  # exported, but the first
            cur.executemany(storage._sql(
                "INSERT INTO codes (code_hash, report_type, test_type, issued_at, expires_at, used_at, keyed)"
                " VALUES (?, 1, 'confirmed', 0, 1e10, ?, 1)"
            ), [(f"code{i}", USED_AT + i * 0.37) for i in range(codes)])
            storage._exec(cur, "UPDATE exposure_keys SET revised_report_type = 1, revised_at = ? + (id - (id / ?) * ?) * 0.37"
                          " WHERE id <= ?", [USED_AT, codes, codes, revised])
            storage._queue_keys(cur, "revision_queue", "k.id <= ?", [queued])
    finally:
        storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=300_000)
    parser.add_argument("--revised", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=5_000, help="keys (revised among the first) not yet exported")
    parser.add_argument("--postgres", metavar="URL", help="a new database on this PostgreSQL server instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db: Path | str = Path(tmp) / "server.db"
        if args.postgres:
            db = _postgres_database(args.postgres, f"bluezone_migration_bench_{os.getpid()}")
        schema15(db, args.keys, args.revised, args.queued, args.codes, args.waiting)
        seconds = {}
        for version in (16, schema.SCHEMA_VERSION):
            start = time.perf_counter()
            open_at(db, version).close()
            seconds[f"migration_{version}_s"] = round(time.perf_counter() - start, 3)
        storage = open_storage(db)
        with storage._transaction() as cur:
            (linked,) = storage._exec(cur, "SELECT COUNT(*) FROM exposure_keys WHERE revised_code_hash IS NOT NULL").fetchone()
            (kept,) = storage._exec(cur, "SELECT COUNT(*) FROM key_revisions").fetchone()
            (uncarried,) = storage._exec(cur, "SELECT COUNT(*) FROM key_revisions WHERE carried = 0").fetchone()
        storage.close()
    print(json.dumps({"keys": args.keys, "revised": args.revised, "queued": args.queued, "waiting": args.waiting,
                      "codes": args.codes,
                      "linked": int(linked), "kept": int(kept), "uncarried": int(uncarried), **seconds,
                      "load": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
