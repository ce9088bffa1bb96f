"""The day's rewrite (VACUUM) as the daemon and a command meet it (docs/benchmarks.md, "Twenty-sixth session:
the daily rewrite off the loop and off a command's path"), for two trees in alternating processes.

    PYTHONPATH=TREE .venv/bin/python benchmarks/daemon_rewrite_bench.py loop [--rows 1000000] [--repeat 2]
    PYTHONPATH=TREE .venv/bin/python benchmarks/daemon_rewrite_bench.py command [--rows 1000000] [--repeat 3]
    PYTHONPATH=TREE .venv/bin/python benchmarks/daemon_rewrite_bench.py during [--rows 1000000] [--repeat 5]

Both use ``purge_rewrite_bench.py``'s store (``--rows`` sightings over 15 days, ``--per-rpi 100``), copied afresh
for each round.

``loop``: ``run_daemon`` on the emulated radio (``--neighbours`` of them, ~4 adverts a second each) on the real
clock shifted to 10 s before the UTC midnight that moves the retention's cutoff to a new day, ``purge_interval``
set to 5 s after the config's checks (they ask for 60): the start's purge deletes and rewrites, the purge at
00:00:xx deletes and rewrites again while the radio is heard.  A task beside it sleeps 5 ms at a time and keeps
how long past that it waited, from the radio's start on: how long the loop did not run.  Reports the longest such
stall, the second longest and the 99th percentile (a loaded machine's scheduling shows in them too), the adverts
heard and stored, and the drops.

``command``: ``bluezone status`` run in this process at 00:10 UTC on a store the daemon purged (and rewrote) at
23:50, so that the day's rewrite is due, with no daemon and with a daemon's lock held (``<db>.lock``, flock'd as a daemon holds it): wall, CPU and whether the
open rewrote the file.

``during``: ``bluezone status`` at 01:00 UTC (an hour of sightings past the retention) while a daemon rewrites the
store (its lock held, the VACUUM of ``rewrite_apart`` running in a thread of this process, begun 0.1 s before): the
status's wall and CPU, and how long the VACUUM ran on after the status ended (negative: the status waited for it)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from purge_bench import DAY, START

from bluezone.config import DaemonConfig

T = TypeVar("T")
FIRST = START // DAY * DAY  # the store's first day (purge_rewrite_bench.py's)


class ShiftedClock:
    """The wall clock moved to ``at`` when made (real seconds pass as they do)."""

    def __init__(self, at: float) -> None:
        self.shift = at - time.time()

    def now(self) -> float:
        return time.time() + self.shift

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)


def _base(workdir: Path, rows: int) -> Path:
    base = workdir / f"store-{rows}-x100.db"
    if not base.exists():
        raise SystemExit(f"{base} missing: run purge_rewrite_bench.py --rows {rows} --workdir {workdir} first")
    return base


async def _stalls(stalls: list[float]) -> None:
    while True:
        began = time.perf_counter()
        await asyncio.sleep(0.005)
        stalls.append(time.perf_counter() - began - 0.005)


def loop_round(base: Path, tmp: Path, neighbours: int) -> dict[str, float]:
    from bluezone.proximity.runner import run_daemon

    path = tmp / "node.db"
    shutil.copy(base, path)
    config = DaemonConfig()
    object.__setattr__(config, "purge_interval", 5.0)  # (its checks ask for 60 s; the bench crosses midnight in 5)
    clock = ShiftedClock(FIRST + 16 * DAY - 10)  # (past the store's newest row, which its open purges at)
    stalls: list[float] = []
    cpu = time.process_time()

    async def main() -> Any:
        watcher = asyncio.create_task(_stalls(stalls))
        try:
            return await run_daemon(f"emulated:{neighbours}", path, config, 25.0, clock=clock,  # type: ignore[arg-type]
                                    handle_signals=False, on_start=lambda _: stalls.clear())
        finally:
            watcher.cancel()

    stats = asyncio.run(main())
    with sqlite3.connect(path) as conn:
        rewritten = conn.execute("SELECT value FROM daemon_state WHERE name = 'purge_rewritten_day'").fetchone()
    conn.close()
    return {
        "loop_longest_stall_s": max(stalls),
        "loop_second_stall_s": sorted(stalls)[-2],
        "loop_p99_stall_s": statistics.quantiles(stalls, n=100)[98],
        "cpu_s": time.process_time() - cpu,
        "adverts_received": stats.adverts_received,
        "sightings_stored": stats.sightings_stored,
        "dropped": stats.dropped_queue_full + stats.dropped_backlog_full,
        "rewritten_day": float(rewritten[0]) if rewritten else -1.0,
    }


def command_round(base: Path, tmp: Path, daemon: bool) -> dict[str, float]:
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock

    from bluezone.proximity.store import SightingStore

    path = tmp / "node.db"
    shutil.copy(base, path)
    with SightingStore.open(path, purge_now=FIRST) as store:
        store.purge(FIRST + 15 * DAY - 600)  # the daemon's 23:50 purge: that day's rewrite done
    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    if daemon:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a daemon running on the store holds it
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(FIRST + 15 * DAY + 600)})
        result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    finally:
        os.close(lock)
    assert done.exit_code == 0, done.output
    with sqlite3.connect(path) as conn:
        result["rewrote"] = float(conn.execute("SELECT 1 FROM daemon_state WHERE name = 'purge_rewrite_owed'").fetchone() is None)
    conn.close()
    return result


def during_round(base: Path, tmp: Path) -> dict[str, float]:
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock
    from bluezone.proximity.store import SightingStore

    path = tmp / "node.db"
    shutil.copy(base, path)
    with SightingStore.open(path, purge_now=FIRST) as store:
        store.purge(FIRST + 15 * DAY - 600)  # the daemon's 23:50 purge: an hour later, an hour's rows are past the 14 days
    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as the daemon running on the store holds it
    daemon_store = SightingStore.open(path, purge_now=FIRST + 15 * DAY - 600, any_thread=True)
    vacuum_end: list[float] = []

    def rewrite() -> None:
        daemon_store.rewrite_apart(str(FIRST // DAY + 1), threading.Event())
        vacuum_end.append(time.perf_counter())

    thread = threading.Thread(target=rewrite)
    try:
        thread.start()
        time.sleep(0.1)  # (the VACUUM under way)
        wall, cpu = time.perf_counter(), time.process_time()
        done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(FIRST + 15 * DAY + 3600)})
        ended = time.perf_counter()
        result = {"wall_s": ended - wall, "cpu_s": time.process_time() - cpu}
        thread.join()
    finally:
        daemon_store.close()
        os.close(lock)
    assert done.exit_code == 0, done.output
    result["vacuum_after_status_s"] = vacuum_end[0] - ended
    result["deleted_by_status"] = float((json.loads(done.output)["purged_on_open"] or {}).get("sightings_deleted", 0))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["loop", "command", "during"])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--neighbours", type=int, default=20)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-purge-rewrite-bench")
    args = ap.parse_args()
    base = _base(args.workdir, args.rows)
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.repeat):
        cases = {"daemon": None} if args.mode == "loop" else {"no_daemon": False, "daemon_runs": True}
        if args.mode == "during":
            cases = {"rewriting": None}
        for name, daemon in cases.items():
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                if args.mode == "during":
                    runs.setdefault(name, []).append(during_round(base, Path(tmp)))
                elif args.mode == "loop":
                    runs.setdefault(name, []).append(loop_round(base, Path(tmp), args.neighbours))
                else:
                    runs.setdefault(name, []).append(command_round(base, Path(tmp), bool(daemon)))
    out: dict[str, Any] = {"mode": args.mode, "rows": args.rows, "load": round(os.getloadavg()[0], 2)}
    for name, rounds in runs.items():
        for key in rounds[0]:
            out[f"{name}_{key}"] = round(statistics.median(r[key] for r in rounds), 4)
        if args.mode == "loop":
            out[f"{name}_stalls_s"] = [round(r["loop_longest_stall_s"], 3) for r in rounds]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
