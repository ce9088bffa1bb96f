"""``bluezone server benchmark``: uploads per second over loopback HTTP, and export time.

Uploads: a real uvicorn server on 127.0.0.1 (in a thread of this process) and one
keep-alive httpx client sending publish requests of 14 keys each, one after another,
each with its own verification code.  Export: N random keys spread over 14 days,
written into signed batches of at most 30,000 keys (storage read, shuffle, protobuf,
ECDSA, zip, bookkeeping all included).  Medians of ``repeat`` runs.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.matching.keyfile import empty_keys
from bluezone.server.app import create_app
from bluezone.server.client import publish_body
from bluezone.server.codes import issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig
from bluezone.server.signing import keygen
from bluezone.server.storage import Storage, open_storage


def _random_keys(n: int, now: float, rng: np.random.Generator, per_day: int | None = None) -> np.ndarray:
    keys = empty_keys(n)
    keys["key"] = np.frombuffer(rng.bytes(16 * n), "V16")
    today = rolling_start(now)
    if per_day is None:
        keys["rolling_start"] = today - ROLLING_PERIOD * rng.integers(1, 15, n)
    else:  # one key per day, like a phone's upload
        keys["rolling_start"] = today - ROLLING_PERIOD * (1 + np.arange(n) % 14)
    return keys


def _serve(storage: Storage, export_dir: Path) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    # a generous failure budget: the benchmark's codes are all valid anyway
    app = create_app(storage, export_dir=export_dir, publish_config=PublishConfig())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


def run_benchmark(db: str | None, uploads: int, export_keys: int, repeat: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="bluezone-server-bench-") as tmp:
        root = Path(tmp)
        storage = open_storage(db or root / "server.db")
        backend = "PostgreSQL" if db and "://" in db else "SQLite"
        signer = keygen(root / "signing")
        try:
            server, thread, url = _serve(storage, root / "exports")
            rates = []
            try:
                with httpx.Client(timeout=60) as http:
                    for _ in range(repeat):
                        now = time.time()
                        codes = [issue_code(storage, now).code for _ in range(uploads)]
                        bodies = [publish_body(_random_keys(14, now, rng, per_day=1), c) for c in codes]
                        t0 = time.perf_counter()
                        for body in bodies:
                            r = http.post(url + "/v1/publish", json=body)
                            if r.status_code != 200:
                                raise RuntimeError(f"upload failed: {r.status_code} {r.text}")
                        rates.append(uploads / (time.perf_counter() - t0))
            finally:
                server.should_exit = True
                thread.join(10)
            result: dict[str, Any] = {
                "backend": backend,
                "uploads": uploads,
                "keys_per_upload": 14,
                "uploads_per_second": statistics.median(rates),
                "uploads_per_second_runs": rates,
            }
            if export_keys:
                storage.reset_exported()
                missing = max(0, export_keys - storage.count_keys())  # the uploads' keys count too
                storage.insert_keys_unchecked(_random_keys(missing, time.time(), rng), time.time())
                seconds, files = [], 0
                export_repeat = max(1, min(repeat, 3))
                for i in range(export_repeat):
                    storage.reset_exported()
                    out = root / f"exports-{i}"
                    t0 = time.perf_counter()
                    batches = export_batches(storage, signer, out, time.time(), ExportConfig())
                    seconds.append(time.perf_counter() - t0)
                    files = len(batches)
                    exported = sum(b.num_keys for b in batches)
                result.update(
                    export_keys=exported,
                    export_files=files,
                    export_seconds=statistics.median(seconds),
                    export_seconds_runs=seconds,
                    export_repeat=export_repeat,
                )
            return result
        finally:
            storage.close()
