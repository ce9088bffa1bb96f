"""Exports while revisions keep coming: how many exports record nothing, and how long each export and
revision takes.  F1s upload recursive keys (exported first), then one thread revises them likely and at
once confirmed, person after person, while the main thread exports again and again over a second
connection, as `server run` beside `server export` would.  An export that read a likely revision which
the confirmation then replaced in the queue recorded nothing before srv20 ("a later revision replaced
one"); run it on a tree to compare (PYTHONPATH picks the tree):

    PYTHONPATH=/tmp/base python benchmarks/export_under_revisions.py [--people 150] [--gap-ms 5] [--postgres DSN]

At the end every revision must have gone out: the last export leaves revision_queue empty, each person's
keys stand confirmed in the files' revisions, no file says less than an earlier one did of a key
(``down_the_ladder``) and no revision is in two files (``revisions_repeated``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import bluezone
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import ServerStorageError
from bluezone.keyformat.export import open_signed_export
from bluezone.server.codes import CodeKey, issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import CONFIRMED, LIKELY, RECURSIVE, open_storage

NOW = 1_763_640_000.0  # 2025-11-20 12:00 UTC
DAYS = 14
KEY = CodeKey(bytes(32))
CERTAINTY = {RECURSIVE: 1, LIKELY: 2, CONFIRMED: 3}


def _body(keys: list[bytes], code: str, token: str | None) -> bytes:
    first = rolling_start(NOW) - ROLLING_PERIOD
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": first - i * ROLLING_PERIOD}
               for i, k in enumerate(keys)]
    return json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code,
                       **({"revisionToken": token} if token else {})}).encode()


def one_run(db: str, people: int, seed: int, out: Path, gap: float) -> dict[str, Any]:
    """Upload ``people`` F1s' recursive keys and export them, then revise each likely and confirmed while
    exports loop (``gap`` seconds between people); what happened."""
    rng = np.random.default_rng(seed)
    config = PublishConfig(max_keys_per_day=DAYS, max_recursive_per_hour=people)
    exporter, uploader = open_storage(db), open_storage(db)
    signer = keygen(out / "keys", force=True)
    exports = out / "exports"
    exposed = dt.datetime.fromtimestamp(NOW - 3 * 86_400, dt.UTC).date()
    keys = [[rng.bytes(16) for _ in range(3)] for _ in range(people)]  # keys from the exposure day on
    tokens = []
    for i, own in enumerate(keys):
        code = issue_code(uploader, NOW, key=KEY, test_type="recursive", exposure_date=exposed,
                          max_recursive_per_day=people).code
        tokens.append(publish(uploader, _body(own, code, None), f"192.0.2.{i % 250}", NOW + 1, config,
                              code_key=KEY).revision_token)
    export_batches(exporter, signer, exports, NOW + 2, ExportConfig())
    codes = [(issue_code(uploader, NOW, key=KEY, test_type="likely").code,
              issue_code(uploader, NOW, key=KEY, test_type="confirmed").code) for _ in keys]
    revision_ms: list[float] = []

    def revise() -> None:
        for i, own in enumerate(keys):
            token = tokens[i]
            for code in codes[i]:
                t0 = time.perf_counter()
                token = publish(uploader, _body(own, code, token), f"192.0.2.{i % 250}", NOW + 3, config,
                                code_key=KEY).revision_token
                revision_ms.append(1000 * (time.perf_counter() - t0))
            time.sleep(gap)  # the next person's revisions a moment later

    thread = threading.Thread(target=revise)
    done, failed, export_ms = 0, 0, []
    at = NOW + 4
    thread.start()
    while thread.is_alive():
        t0 = time.perf_counter()
        try:
            export_batches(exporter, signer, exports, at, ExportConfig())
            done += 1
        except ServerStorageError:
            failed += 1
        export_ms.append(1000 * (time.perf_counter() - t0))
        at += 1
    thread.join()
    export_batches(exporter, signer, exports, at + 1, ExportConfig())  # whatever is left
    left = len(exporter.pending_revisions(0)[0])
    real = {k for own in keys for k in own}
    standing: dict[bytes, int] = {}  # each real key's most certain revision in the files so far
    down = repeated = 0
    seen: set[tuple[bytes, int]] = set()
    for name in (exports / "index.txt").read_text().split():  # oldest first
        export, _ = open_signed_export((exports / name).read_bytes(), signer.public_key)
        for k in export.revised_keys:
            key, kind = bytes(k["key"]), int(k["report_type"])
            if key not in real:
                continue
            down += CERTAINTY[kind] < standing.get(key, 0)
            repeated += (key, kind) in seen
            seen.add((key, kind))
            standing[key] = max(standing.get(key, 0), CERTAINTY[kind])
    confirmed = sum(all(standing.get(k) == CERTAINTY[CONFIRMED] for k in own) for own in keys)
    exporter.close()
    uploader.close()
    return {"exports": done, "failed": failed, "export_ms": statistics.median(export_ms),
            "revision_ms": statistics.median(revision_ms), "left_queued": left, "people_confirmed": confirmed,
            "down_the_ladder": down, "revisions_repeated": repeated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gap-ms", type=float, default=5.0, help="between one person's revisions and the next's")
    parser.add_argument("--postgres", help="a PostgreSQL URL (a new database is made per run); default SQLite")
    args = parser.parse_args()
    runs = []
    for seed in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "s.db")
            if args.postgres:
                import psycopg

                name = f"bz_revisions_{os.getpid()}_{seed}"
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name}")
                    conn.execute(f"CREATE DATABASE {name}")
                db = args.postgres.replace("/postgres?", f"/{name}?")
            runs.append(one_run(db, args.people, seed, Path(tmp), args.gap_ms / 1000))
    print(json.dumps({
        "tree": str(Path(bluezone.__file__).parent.parent), "load": round(os.getloadavg()[0], 2),
        "storage": "postgres" if args.postgres else "sqlite", "runs": runs,
    }))


if __name__ == "__main__":
    main()
