"""Slow-client attack on the key server, before and after issue 14.2, in one run (loopback only).

Each mode runs the key server in a child process with a file-descriptor limit of ``--nofile``
(1024: the attack then needs seconds, not 20,000 connections):

- ``before``: ``uvicorn.run(app, log_level="info", access_log=False)``, as ``server run`` did;
- ``after``: ``bluezone.server.serve.serve`` as ``server run`` does now (request deadline
  ``--request-timeout``, connection caps, flood-limited logs).

One attacker address (127.0.0.1), or ``--addresses N`` of them (127.0.1.1 on: then the per-client cap
meets each apart, and together they fill the total cap), keeps up to ``--connections`` connections open,
each a publish request whose body stops short of its Content-Length, replacing every connection the
server closes (and dropping a tenth of its own each second, as a trickle attack does).  Meanwhile a
health check from 127.0.0.2 asks ``/healthz`` every 0.25 s with a 2 s timeout.  Reported per mode: health
checks answered, their median latency, the longest stretch of them unanswered and why they failed, the
server's CPU seconds and the descriptors it holds at the end of the attack, log bytes written, and how
many stalled requests the server ended with a 408.  ``--modes after`` with ``PYTHONPATH`` set to another
checkout (run from outside this one: ``python -c`` puts the working directory first) compares two versions.

    python benchmarks/slow_clients.py [--seconds 12] [--connections 1500] [--addresses 1] [--keep-logs DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

SERVER = r"""
import sys, resource
mode, port, root, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
from pathlib import Path
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey
from bluezone.server.signing import keygen
from bluezone.server.storage import SQLiteStorage
keygen(Path(root) / "k")
storage = SQLiteStorage(Path(root) / "s.db")
app = create_app(storage, code_key=CodeKey.load(Path(root) / "k"), export_dir=Path(root) / "e")
if mode == "before":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", access_log=False)
else:
    import logging
    from bluezone.server.serve import ServeSettings, serve
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(app, ServeSettings("127.0.0.1", port, request_timeout=timeout), "benchmark")
"""

STALLED = b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _limit(nofile: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return apply


def attacker_address(i: int, addresses: int) -> str:
    """The ``i``-th connection's source: one of ``addresses`` loopback addresses from 127.0.1.1 (Linux routes all
    of 127/8 to lo), so the per-client cap meets each of them apart."""
    return f"127.0.1.{1 + i % addresses}" if addresses > 1 else "127.0.0.1"


def _open_one(port: int, source: str) -> socket.socket | None:
    s = socket.socket()
    s.setblocking(False)
    try:
        s.bind((source, 0))
        s.connect_ex(("127.0.0.1", port))
        return s
    except OSError:
        s.close()
        return None


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process ``pid`` has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_mode(
    mode: str, seconds: float, connections: int, nofile: int, timeout: float, seed: int, keep_logs: Path | None = None,
    addresses: int = 1,
) -> dict:
    rng = random.Random(seed)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bluezone-slow-") as root:
        log_path = Path(root) / "server.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-c", SERVER, mode, str(port), root, str(timeout)],
                stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_limit(nofile),
            )
        try:
            health = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=2)
            deadline = time.monotonic() + 60
            while True:
                try:
                    health.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.HTTPError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{mode} server did not start: {log_path.read_text()[-2000:]}")
                    time.sleep(0.1)
            log_before_attack = log_path.stat().st_size
            cpu_before_attack = _cpu_seconds(proc.pid)
            sel = selectors.DefaultSelector()  # epoll: select() stops at descriptor 1024
            open_socks: set[socket.socket] = set()

            def drop(s: socket.socket) -> None:
                sel.unregister(s)
                s.close()
                open_socks.discard(s)

            timeouts = 0
            latencies: list[float] = []
            checks = answered = 0
            opened = 0
            down_since: float | None = None  # the first of the health checks failed since the last answered
            longest_down = 0.0
            failures: Counter[str] = Counter()  # the health checks' errors by kind
            t_end = time.monotonic() + seconds
            next_check = next_drop = time.monotonic()
            while time.monotonic() < t_end:
                while len(open_socks) < connections:  # keep the pressure up
                    s = _open_one(port, attacker_address(opened, addresses))
                    if s is None:
                        break
                    opened += 1
                    open_socks.add(s)
                    sel.register(s, selectors.EVENT_WRITE)
                for key, events in sel.select(0.05):
                    s = key.fileobj  # type: ignore[assignment]
                    if events & selectors.EVENT_WRITE:
                        try:
                            s.send(STALLED)
                            sel.modify(s, selectors.EVENT_READ)
                        except OSError:
                            drop(s)
                        continue
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if data.startswith(b"HTTP/1.1 408"):
                        timeouts += 1
                    drop(s)  # an answer or a close: either way this connection is done
                now = time.monotonic()
                if now >= next_drop:  # the attacker drops a tenth of its connections each second
                    for s in rng.sample(sorted(open_socks, key=lambda x: x.fileno()), len(open_socks) // 10):
                        drop(s)
                    next_drop = now + 1
                if now >= next_check:
                    checks += 1
                    t0 = time.perf_counter()
                    try:
                        status = health.get(f"http://127.0.0.1:{port}/healthz").status_code
                        ok = status == 200
                        if not ok:
                            failures[f"HTTP {status}"] += 1
                    except httpx.HTTPError as exc:
                        ok = False
                        failures[type(exc).__name__] += 1
                    if ok:
                        answered += 1
                        latencies.append(time.perf_counter() - t0)
                        down_since = None
                    else:
                        down_since = now if down_since is None else down_since
                        longest_down = max(longest_down, time.monotonic() - down_since)
                    next_check = time.monotonic() + 0.25
            server_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            server_cpu = _cpu_seconds(proc.pid) - cpu_before_attack
            for s in list(open_socks):
                drop(s)
            time.sleep(1.0)  # the server notices the disconnects (and logs them)
            log_bytes = log_path.stat().st_size - log_before_attack
            tracebacks = log_path.read_text(errors="replace").count("Traceback")
            if keep_logs is not None:
                (keep_logs / f"server-{mode}.log").write_bytes(log_path.read_bytes())
            health.close()
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {
        "mode": mode,
        "health_checks": checks,
        "health_answered": answered,
        "health_median_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "server_fds_at_end": server_fds,
        "server_cpu_s": round(server_cpu, 1),
        "log_bytes": log_bytes,
        "log_tracebacks": tracebacks,
        "stalled_requests_ended_408": timeouts,
        "health_longest_outage_s": round(longest_down, 1),
        "health_failures": dict(failures),
    }



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--connections", type=int, default=1500)
    parser.add_argument("--nofile", type=int, default=1024, help="the server's descriptor limit")
    parser.add_argument("--request-timeout", type=float, default=5.0, help="'after' mode's deadline")
    parser.add_argument("--addresses", type=int, default=1, help="loopback addresses the attacker spreads over")
    parser.add_argument("--modes", default="before,after", help="which of before, after to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy each server's log into this directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 256)), hard))
    results = [
        run_mode(mode, args.seconds, args.connections, args.nofile, args.request_timeout, args.seed, args.keep_logs,
                 args.addresses)
        for mode in args.modes.split(",")
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.connections} stalled connections from {args.addresses} address(es) for {args.seconds:.0f} s;"
          f" server descriptor limit {args.nofile}; /healthz from another address every 0.25 s")
    print("mode    health answered  median ms  longest outage s  server fds  log bytes  tracebacks  ended with 408")
    for r in results:
        print(f"{r['mode']:7} {r['health_answered']:>6}/{r['health_checks']:<8} {r['health_median_ms']!s:>9}"
              f"  {r['health_longest_outage_s']:>16}  {r['server_fds_at_end']:>10} {r['log_bytes']:>10}"
              f" {r['log_tracebacks']:>11} {r['stalled_requests_ended_408']:>15}")


if __name__ == "__main__":
    main()
