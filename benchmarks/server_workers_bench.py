"""Uploads per second with several key-server processes on one PostgreSQL: the path to many machines.

    .venv/bin/python benchmarks/server_workers_bench.py [--workers 1 2 4] [--one-port] [--uploads 600]
        [--clients 8] [--repeat 3] [--db postgresql://...] [--json]

Starts ``W`` separate ``bluezone server run`` processes (as a deployment would run them on
one or many machines behind a load balancer) on loopback ports, or with ``--one-port`` one
``bluezone server run --workers W`` (W processes on one port, the kernel spreading connections),
all on one PostgreSQL database (``--db``, or a throwaway cluster made with
``scripts/pg-dev-cluster.sh``), with exporting off in all of them.  ``--clients`` threads, each with a keep-alive httpx client,
send publish requests of 14 keys, each with its own one-time code, round-robin over the
processes as a load balancer would.  For each ``W`` (alternating, ``--repeat`` times) the
median uploads/s is reported, and the ratio to one process measured in the same run.
Every upload must be answered 200 and every key stored: a fast wrong answer cannot pass.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KEYS_PER_UPLOAD = 14


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(code: str, now: float, rng: np.random.Generator) -> dict:
    """A publish request of 14 daily keys, one per past day, as ``bluezone upload`` sends it."""
    today = int(now) // 86400 * 144
    keys = [
        {
            "key": base64.b64encode(rng.bytes(16)).decode("ascii"),
            "rollingStartNumber": today - 144 * d,
            "rollingPeriod": 144,
            "transmissionRisk": 0,
        }
        for d in range(1, KEYS_PER_UPLOAD + 1)
    ]
    return {"temporaryExposureKeys": keys, "verificationPayload": code,
            "padding": base64.b64encode(secrets.token_bytes(128)).decode("ascii")}


def _start(n: int, dsn: str, key_dir: Path, log_dir: Path, one_port: bool = False) -> list[tuple[subprocess.Popen, str]]:
    procs = []
    for i in range(1 if one_port else n):
        port = _free_port()
        cmd = [sys.executable, "-m", "bluezone", "server", "run", "--server-db", dsn, "--port", str(port),
               "--signing-key-dir", str(key_dir), "--export-dir", str(log_dir / f"exports-{i}"),
               "--export-every", "0", "--max-connections-per-client", "1000", "-q",
               *(["--workers", str(n)] if one_port else [])]
        log = open(log_dir / f"server-{n}-{i}.log", "w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), f"http://127.0.0.1:{port}"))
    deadline = time.monotonic() + 60
    for proc, url in procs:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"a key server exited at start; see {log_dir}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("key servers did not answer within 60 s")
            time.sleep(0.1)
    return procs


def _stop(procs: list[tuple[subprocess.Popen, str]]) -> None:
    for proc, _ in procs:
        proc.terminate()
    for proc, _ in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _load(urls: list[str], bodies: list[dict], clients: int) -> float:
    """Uploads/s of ``bodies`` sent by ``clients`` threads round-robin over ``urls``."""
    failures: list[str] = []
    share = [bodies[i::clients] for i in range(clients)]

    def worker(c: int) -> None:
        with httpx.Client(timeout=60) as http:
            for j, body in enumerate(share[c]):
                url = urls[(c + j * clients) % len(urls)]
                r = http.post(f"{url}/v1/publish", json=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"{len(failures)} uploads failed, first: {failures[0]}")
    return len(bodies) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--uploads", type=int, default=600)
    parser.add_argument("--one-port", action="store_true", help="one `server run --workers W` instead of W processes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default=None, help="postgresql://... (default: a throwaway cluster)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from bluezone.server.codes import CodeKey, issue_code
    from bluezone.server.signing import keygen
    from bluezone.server.storage import open_storage

    load_start = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="bluezone-workers-bench-"))
    work.chmod(0o755)  # as root the throwaway cluster runs as the postgres user, who must reach it
    cluster = None
    dsn = args.db
    if dsn is None:
        cluster = work / "pg"
        dsn = subprocess.run(
            ["sh", str(ROOT / "scripts" / "pg-dev-cluster.sh"), "start", str(cluster)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    try:
        keygen(work / "keys")
        code_key = CodeKey.load(work / "keys")
        storage = open_storage(dsn)
        rng = np.random.default_rng(0)
        rates: dict[int, list[float]] = {w: [] for w in args.workers}
        for _ in range(args.repeat):
            for w in args.workers:  # alternating, so load from elsewhere falls on all alike
                procs = _start(w, dsn, work / "keys", work, args.one_port)
                try:
                    now = time.time()
                    before = storage.count_keys()
                    bodies = [_body(issue_code(storage, now, key=code_key).code, now, rng) for _ in range(args.uploads)]
                    rates[w].append(_load([u for _, u in procs], bodies, args.clients))
                    stored = storage.count_keys() - before
                    if stored != args.uploads * KEYS_PER_UPLOAD:
                        raise SystemExit(f"{stored} keys stored of {args.uploads * KEYS_PER_UPLOAD} sent")
                finally:
                    _stop(procs)
        storage.close()
    finally:
        if cluster is not None:
            subprocess.run(["sh", str(ROOT / "scripts" / "pg-dev-cluster.sh"), "stop", str(cluster)], capture_output=True)
    base = statistics.median(rates[args.workers[0]])
    result = {
        "backend": "PostgreSQL",
        "mode": "server run --workers W, one port" if args.one_port else "W separate server run processes",
        "uploads": args.uploads,
        "keys_per_upload": KEYS_PER_UPLOAD,
        "clients": args.clients,
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start": load_start,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "uploads_per_second": {str(w): round(statistics.median(r), 1) for w, r in rates.items()},
        "runs": {str(w): [round(x, 1) for x in r] for w, r in rates.items()},
        f"ratio_vs_{args.workers[0]}_worker": {str(w): round(statistics.median(r) / base, 2) for w, r in rates.items()},
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
