"""CPU of a key server's publish, in process on a new SQLite database: first uploads (14 new keys under a
likely code) and their revisions (the same keys under a confirmed code with the first upload's token),
the two upload paths a revocation's bookkeeping touches.  Run it once per tree to compare, alternating,
in the same session (PYTHONPATH picks the tree):

    PYTHONPATH=/tmp/base python benchmarks/publish_revision_bench.py [--uploads 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import bluezone
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.server.codes import CodeKey, issue_code
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.storage import open_storage

NOW = 1_763_640_000.0  # 2025-11-20 12:00 UTC
DAYS = 14


def _body(keys: list[bytes], code: str, token: str | None) -> bytes:
    first = rolling_start(NOW) - ROLLING_PERIOD
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": first - i * ROLLING_PERIOD}
               for i, k in enumerate(keys)]
    return json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code,
                       **({"revisionToken": token} if token else {})}).encode()


def one_run(uploads: int, seed: int) -> tuple[float, float]:
    """Median CPU seconds of a first upload and of a revision, ``uploads`` of each, in a new database."""
    rng = np.random.default_rng(seed)
    key = CodeKey(bytes(32))
    config = PublishConfig(max_keys_per_day=DAYS)
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(Path(tmp) / "s.db")
        try:
            people = [[rng.bytes(16) for _ in range(DAYS)] for _ in range(uploads)]
            likely = [issue_code(storage, NOW, key=key, test_type="likely").code for _ in people]
            confirmed = [issue_code(storage, NOW, key=key, test_type="confirmed").code for _ in people]
            firsts, revisions, tokens = [], [], []
            for i, keys in enumerate(people):
                start = time.process_time()
                result = publish(storage, _body(keys, likely[i], None), f"192.0.2.{i % 250}", NOW + 5, config, code_key=key)
                firsts.append(time.process_time() - start)
                tokens.append(result.revision_token)
            for i, keys in enumerate(people):
                start = time.process_time()
                result = publish(storage, _body(keys, confirmed[i], tokens[i]), f"192.0.2.{i % 250}", NOW + 9, config,
                                 code_key=key)
                revisions.append(time.process_time() - start)
                assert result.revised == DAYS
        finally:
            storage.close()
    return statistics.median(firsts), statistics.median(revisions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run(args.uploads, seed) for seed in range(args.repeats)]
    print(json.dumps({
        "tree": str(Path(bluezone.__file__).parent.parent), "load": round(os.getloadavg()[0], 2),
        "first_upload_ms": round(1000 * statistics.median(r[0] for r in runs), 4),
        "revision_ms": round(1000 * statistics.median(r[1] for r in runs), 4),
    }))


if __name__ == "__main__":
    main()
