"""``bluezone server benchmark``: uploads per second over loopback HTTP, and export time.

Uploads: a real uvicorn server on 127.0.0.1 (in a thread of this process) and one
keep-alive httpx client sending publish requests of 14 keys each, one after another,
each with its own verification code.  Export: N random keys spread over 14 days,
written into signed batches of at most 30,000 keys (storage read, shuffle, protobuf,
ECDSA, zip, bookkeeping all included).  Medians of ``repeat`` runs.

Baselines, timed in the same run (they live here, never in the product path):

- uploads: the same number of publish requests sent the naive way, alternating with the
  keep-alive runs: each on a new TCP connection (one client, keep-alive off;
  ``keepalive_speedup_vs_new_connection``), and each through a new ``httpx.Client`` (the
  one-shot way, ``httpx.post``; ``keepalive_speedup_vs_new_client``).  A phone uploads
  once, so a new connection is also what one phone sees; keep-alive is the server's
  capacity behind a proxy that pools connections.
- export: the bare cost of the work no exporter can skip, encoding (column-wise, as the
  export does) + ECDSA signing + zipping of the same keys in memory in the same 30,000-key chunks (no
  database read, shuffle, file writes or bookkeeping); ``export_vs_sign_zip_floor`` is
  how many times that floor the full export takes.
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

from bluezone.crypto.intervals import ROLLING_PERIOD, interval_number, rolling_start
from bluezone.keyformat.export import signed_export_zip
from bluezone.keyformat.keyfile import publish_body
from bluezone.keyformat.keys import empty_keys
from bluezone.progress import Progress
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey, issue_code
from bluezone.server.exportdir import claim_export_dir
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig
from bluezone.server.signing import Signer, keygen
from bluezone.server.storage import Storage, open_storage


WARMUP_UPLOADS = 3


def _random_keys(n: int, now: float, rng: np.random.Generator, per_day: int | None = None) -> np.ndarray:
    keys = empty_keys(n)
    keys["key"] = np.frombuffer(rng.bytes(16 * n), "V16")
    today = rolling_start(now)
    if per_day is None:
        keys["rolling_start"] = today - ROLLING_PERIOD * rng.integers(1, 15, n)
    else:  # one key per day, like a phone's upload
        keys["rolling_start"] = today - ROLLING_PERIOD * (1 + np.arange(n) % 14)
    return keys


def _serve(storage: Storage, code_key: CodeKey, export_dir: Path) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    app = create_app(storage, code_key=code_key, export_dir=export_dir, publish_config=PublishConfig())
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


def _post_all(http: httpx.Client | None, url: str, bodies: list[dict[str, Any]]) -> float:
    """Uploads/s for ``bodies`` sent one after another; ``http=None``: a new client per request."""
    t0 = time.perf_counter()
    for body in bodies:
        if http is None:  # the one-shot way: client (and its TLS context) built for each request
            with httpx.Client(timeout=60) as once:
                r = once.post(url + "/v1/publish", json=body)
        else:
            r = http.post(url + "/v1/publish", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"upload failed: {r.status_code} {r.text}")
    return len(bodies) / (time.perf_counter() - t0)


def sign_zip_floor(keys: np.ndarray, signer: Signer, config: ExportConfig = ExportConfig()) -> float:
    """Seconds to encode, sign and zip ``keys`` in memory, per day in chunks of the export's size."""
    days = keys["rolling_start"] // ROLLING_PERIOD
    t0 = time.perf_counter()
    for day in np.unique(days):
        day_keys = keys[days == day]
        n_files = -(-len(day_keys) // config.max_keys_per_file)
        for i in range(n_files):
            chunk = day_keys[i * config.max_keys_per_file : (i + 1) * config.max_keys_per_file]
            signed_export_zip(
                chunk, signer.private_key, signer.info, region=config.region, batch_num=i + 1, batch_size=n_files
            )
    return time.perf_counter() - t0


def run_benchmark(
    db: str | None, uploads: int, export_keys: int, repeat: int, seed: int = 0, progress: Progress | None = None
) -> dict[str, Any]:
    """The figures as a JSON-ready dict; ``progress`` hears of each stage between timings (never inside one)."""
    say = progress or (lambda stage, fraction: None)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="bluezone-server-bench-") as tmp:
        root = Path(tmp)
        storage = open_storage(db or root / "server.db")
        try:
            storage.claim_for_benchmark()
        except BaseException:
            storage.close()
            raise
        backend = "PostgreSQL" if db and "://" in db else "SQLite"
        signer = keygen(root / "signing")
        code_key = CodeKey.load(root / "signing")
        try:
            server, thread, url = _serve(storage, code_key, root / "exports")
            rates: list[float] = []
            naive_rates: list[float] = []
            oneshot_rates: list[float] = []
            no_keepalive = httpx.Limits(max_keepalive_connections=0)
            try:
                with httpx.Client(timeout=60) as http, httpx.Client(timeout=60, limits=no_keepalive) as fresh:
                    say("warm-up", 0.0)
                    now = time.time()  # warm-up, untimed: the server's first requests are slower for all
                    codes = [issue_code(storage, now, key=code_key).code for _ in range(WARMUP_UPLOADS)]
                    _post_all(http, url, [publish_body(_random_keys(14, now, rng, per_day=1), c) for c in codes])
                    say("warm-up", 1.0)
                    for r in range(repeat):  # keep-alive and baselines alternate
                        ways = ((rates, http), (naive_rates, fresh), (oneshot_rates, None))
                        for k, (sink, client) in enumerate(ways):
                            now = time.time()
                            codes = [issue_code(storage, now, key=code_key).code for _ in range(uploads)]
                            bodies = [publish_body(_random_keys(14, now, rng, per_day=1), c) for c in codes]
                            sink.append(_post_all(client, url, bodies))
                            say(f"{uploads} uploads three ways", (r * len(ways) + k + 1) / (repeat * len(ways)))
            finally:
                server.should_exit = True
                thread.join(10)
            result: dict[str, Any] = {
                "backend": backend,
                "uploads": uploads,
                "keys_per_upload": 14,
                "uploads_per_second": statistics.median(rates),
                "uploads_per_second_runs": rates,
                "baseline_uploads": "a new TCP connection per upload (keep-alive off), same run, alternating",
                "uploads_per_second_new_connection": statistics.median(naive_rates),
                "uploads_per_second_new_connection_runs": naive_rates,
                "keepalive_speedup_vs_new_connection": statistics.median(rates) / statistics.median(naive_rates),
                "uploads_per_second_new_client": statistics.median(oneshot_rates),
                "uploads_per_second_new_client_runs": oneshot_rates,
                "keepalive_speedup_vs_new_client": statistics.median(rates) / statistics.median(oneshot_rates),
            }
            if export_keys:
                say(f"storing {export_keys:,} keys to export", 0.0)
                storage.reset_exported()
                missing = max(0, export_keys - storage.count_keys())  # the uploads' keys count too
                storage.insert_keys_unchecked(_random_keys(missing, time.time(), rng), time.time())
                config = ExportConfig()
                pending, _, _ = storage.pending_keys(  # what the export will write, read untimed for the floor
                    interval_number(time.time()), rolling_start(time.time()) - config.retention_days * ROLLING_PERIOD
                )
                seconds, floors, files = [], [], 0
                export_repeat = max(1, min(repeat, 3))
                say(f"storing {export_keys:,} keys to export", 1.0)
                for i in range(export_repeat):
                    say(f"export of {export_keys:,} keys", i / export_repeat)
                    storage.reset_exported()
                    out = root / f"exports-{i}"
                    claim_export_dir(storage, out, moved=True)  # each repeat into a new directory, on purpose
                    t0 = time.perf_counter()
                    batches = export_batches(storage, signer, out, time.time(), config)
                    seconds.append(time.perf_counter() - t0)
                    files = len(batches)
                    exported = sum(b.num_keys for b in batches)
                    floors.append(sign_zip_floor(pending, signer, config))
                say(f"export of {export_keys:,} keys", 1.0)
                result.update(
                    export_keys=exported,
                    export_files=files,
                    export_seconds=statistics.median(seconds),
                    export_seconds_runs=seconds,
                    export_repeat=export_repeat,
                    baseline_export="encoding + ECDSA + zip of the same keys in memory, 30,000-key chunks per day",
                    export_sign_zip_floor_seconds=statistics.median(floors),
                    export_sign_zip_floor_seconds_runs=floors,
                    export_vs_sign_zip_floor=statistics.median(seconds) / statistics.median(floors),
                )
            return result
        finally:
            storage.close()
