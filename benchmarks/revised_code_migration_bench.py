"""Seconds of server schema 16's migration (each earlier revision linked to the code used at its instant)
on a schema-15 SQLite database of N keys, R of them revised, C used codes: it runs once, at the first
start after the upgrade, with the server's database locked.

    python benchmarks/revised_code_migration_bench.py [--keys 300000] [--revised 100000] [--codes 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bluezone.keyformat.keys import empty_keys
from bluezone.server.storage import open_storage, schema

USED_AT = 1.7e9


def schema15(db: Path, keys: int, revised: int, codes: int) -> None:
    """A schema-15 database: ``keys`` keys, the first ``revised`` revised at the instant of one of ``codes`` used codes."""
    version, schema.SCHEMA_VERSION = schema.SCHEMA_VERSION, 15
    try:
        storage = open_storage(db)
    finally:
        schema.SCHEMA_VERSION = version
    try:
        stored = empty_keys(keys)
        stored["key"] = np.frombuffer(np.random.default_rng(1).bytes(16 * keys), "V16")
        stored["rolling_start"], stored["rolling_period"] = 2_940_000, 144
        storage.insert_keys_unchecked(stored, USED_AT)
        with storage._transaction() as cur:
            cur.executemany(storage._sql(
                "INSERT INTO codes (code_hash, report_type, test_type, issued_at, expires_at, used_at, keyed)"
                " VALUES (?, 1, 'confirmed', 0, 1e10, ?, 1)"
            ), [(f"code{i}", USED_AT + i * 0.37) for i in range(codes)])
            storage._exec(cur, "UPDATE exposure_keys SET revised_report_type = 1, revised_at = ? + (id % ?) * 0.37"
                          " WHERE id <= ?", [USED_AT, codes, revised])
    finally:
        storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=300_000)
    parser.add_argument("--revised", type=int, default=100_000)
    parser.add_argument("--codes", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "server.db"
        schema15(db, args.keys, args.revised, args.codes)
        start = time.perf_counter()
        storage = open_storage(db)  # migrates to the current schema
        seconds = time.perf_counter() - start
        with storage._transaction() as cur:
            (linked,) = storage._exec(cur, "SELECT COUNT(*) FROM exposure_keys WHERE revised_code_hash IS NOT NULL").fetchone()
        storage.close()
    print(json.dumps({"keys": args.keys, "revised": args.revised, "codes": args.codes, "linked": int(linked),
                      "migration_s": round(seconds, 3), "load": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
