"""A national key server's index.txt and what its nodes download, simulated with the real exporter.

    .venv/bin/python benchmarks/national_index.py [--days 17] [--every 600] [--keys-per-day 358105]
        [--checkins-per-export 2] [--min-keys-per-file 100] [--workdir /dev/shm/...] [--json]

Each of ``--days`` simulated days the exporter runs every ``--every`` seconds (``export_batches`` on a
SQLite key server, signing real files); before each run ``--keys-per-day`` / (runs a day) random keys
arrive, each on one of the 14 days before (as uploads carry them), and ``--checkins-per-export`` uploads
with one check-in each (through ``publish``, so with the server's 3 fakes each).  The exporter rolls days
up (the default); what the index would list without roll-ups (``rollup_after_days=None``) is every file
the exports wrote whose day is within the 14 days, exactly what such an exporter writes and lists, so both
come from one run.

Reported for each: the index at the end and at its largest (names, bytes; a node reads at most 1 MiB),
files written a day, the time of the exports that roll a day up beside the others (median), and what
nodes fetch -- one checking every 6 hours, one daily, one every 3 days, one checking for the first time
at the end -- per check over the last 7 days (fewer in a shorter run): requests (index.txt and each new file; at most 10,000 new
files a check, as ``check --server``) and bytes.  A node skips what it processed and the roll-ups
``covered_rollups`` says it has.  Time is simulated; files go to ``--workdir`` (tmpfs by default: fsync
is not what is measured here; ``export_bench.py`` measures a 1M-key export).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.client.keyserver import covered_rollups
from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import NO_DAYS_SINCE_ONSET, empty_keys
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.server.codes import CodeKey, issue_code
from bluezone.server.exports import INDEX_FILE, ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import SQLiteStorage

START = 1_793_491_200.0  # 2026-11-01 00:00 UTC
MAX_NEW_FILES_PER_CHECK = 10_000  # bluezone.client.check's cap (not imported: it loads the matcher)
INDEX_LIMIT = 1024 * 1024  # what a node reads of index.txt


@dataclass
class Node:
    """A node checking at ``first`` and every ``every`` seconds after (None: once)."""

    name: str
    first: float
    every: float | None
    processed: set[str] = field(default_factory=set)
    checks: list[dict[str, Any]] = field(default_factory=list)
    next_check: float = 0.0

    def __post_init__(self) -> None:
        self.next_check = self.first

    def check(self, now: float, listed: list[str], sizes: dict[str, int], index_bytes: int) -> None:
        covered = covered_rollups(listed, self.processed)
        new = [n for n in dict.fromkeys(listed) if n not in self.processed and n not in covered]
        fetched, left = new[:MAX_NEW_FILES_PER_CHECK], max(0, len(new) - MAX_NEW_FILES_PER_CHECK)
        self.processed.update(fetched)
        self.checks.append({
            "at": now, "files": len(fetched), "requests": 1 + len(fetched), "left_for_next_check": left,
            "bytes": index_bytes + sum(sizes[n] for n in fetched), "rollups": sum(1 for n in fetched if "-day" in n),
        })
        self.next_check = now + self.every if self.every else float("inf")


def _nodes(start: float, end: float) -> list[Node]:
    return [
        Node("every 6 h", start + 3 * 3600, 6 * 3600),
        Node("daily", start + 9 * 3600, DAY_SECONDS),
        Node("every 3 days", start + 9 * 3600, 3 * DAY_SECONDS),
        Node("first check at the end", end - 1, None),
    ]


def simulate(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    storage = SQLiteStorage(workdir / "keys.db")
    signer = keygen(workdir / "signing")
    code_key = CodeKey.load(workdir / "signing")
    out = workdir / "exports"
    config = ExportConfig(region="VN", min_keys_per_file=args.min_keys_per_file)
    rng = np.random.default_rng(args.seed)
    runs_a_day = DAY_SECONDS // args.every
    keys_per_run = args.keys_per_day // runs_a_day
    end = START + args.days * DAY_SECONDS
    window = min(7, args.days)  # days at the end the nodes' checks are summed over
    week = end - window * DAY_SECONDS
    nodes = {"rollups": _nodes(START, end), "no_rollups": _nodes(START, end)}
    sizes: dict[str, int] = {}
    small: dict[str, int] = {}  # every file an export wrote -> the end of its day (what an index without roll-ups lists)
    largest = {"rollups": (0, 0), "no_rollups": (0, 0)}  # index bytes, names
    files_written = bytes_written = 0  # the exports' new files (not roll-ups): what a node checking daily fetches
    seconds: dict[str, list[float]] = {"rolling_up": [], "other": []}
    now = START
    while now < end:
        now += args.every
        keys = empty_keys(keys_per_run)
        keys["key"] = np.frombuffer(rng.bytes(16 * keys_per_run), "V16")
        keys["rolling_start"] = rolling_start(now) - ROLLING_PERIOD * rng.integers(1, 15, keys_per_run)
        keys["rolling_period"] = ROLLING_PERIOD
        keys["report_type"] = 1
        keys["days_since_onset"] = NO_DAYS_SINCE_ONSET
        storage.insert_keys_unchecked(keys, now)
        today = int(now // DAY_SECONDS)
        for _ in range(args.checkins_per_export):
            day = today - int(rng.integers(0, 14))
            report = ProtectedReport.seal(rng.bytes(32), day * ROLLING_PERIOD + 60, 6, 6)
            code = issue_code(storage, now, key=code_key).code
            body = {"verificationPayload": code, "checkInProtectedReports": [
                {"day": day, "report": base64.b64encode(bytes(report)).decode()}]}
            publish(storage, json.dumps(body).encode(), "203.0.113.9", now, PublishConfig(), code_key=code_key)
        t0 = time.perf_counter()
        written = export_batches(storage, signer, out, now, config, rng)
        took = time.perf_counter() - t0
        seconds["rolling_up" if now % DAY_SECONDS < args.every else "other"].append(took)
        files_written += len(written)
        bytes_written += sum((out / record.name).stat().st_size for record in written if (out / record.name).exists())
        for record in written:
            small[record.name] = record.end_timestamp
        since = now - config.retention_days * DAY_SECONDS
        indexes = {
            "rollups": (out / INDEX_FILE).read_text().split(),
            "no_rollups": [n for n, end_ts in small.items() if end_ts >= since],
        }
        for name in indexes["rollups"]:
            if name not in sizes:
                sizes[name] = (out / name).stat().st_size
        for kind, listed in indexes.items():
            index_bytes = sum(len(n) + 1 for n in listed)
            largest[kind] = max(largest[kind], (index_bytes, len(listed)))
            for node in nodes[kind]:
                if node.next_check <= now:
                    node.check(now, listed, sizes, index_bytes)
        if not args.json and now % DAY_SECONDS == 0:
            print(f"day {int((now - START) // DAY_SECONDS)}: index {len(indexes['rollups'])} names with roll-ups,"
                  f" {len(indexes['no_rollups'])} without", file=sys.stderr)
    storage.close()
    result: dict[str, Any] = {
        "files_written_per_day": files_written / args.days,
        "megabytes_written_per_day": round(bytes_written / args.days / 1e6, 3),
        "export_seconds_median": {k: statistics.median(v) if v else None for k, v in seconds.items()},
    }
    for kind, listed in indexes.items():
        result[kind] = {
            "index_names_at_end": len(listed), "index_bytes_at_end": sum(len(n) + 1 for n in listed),
            "index_names_largest": largest[kind][1], "index_bytes_largest": largest[kind][0],
            "index_fits_1_MiB": largest[kind][0] <= INDEX_LIMIT, "nodes": {},
        }
        result[kind]["nodes"] = _node_summary(nodes[kind], week, window)
    return result


def _node_summary(nodes: list[Node], week: float, window: int) -> dict[str, Any]:
    out = {}
    for node in nodes:
        late = [c for c in node.checks if c["at"] >= week]
        out[node.name] = {
            "checks": len(late),
            "requests_per_check_median": statistics.median(c["requests"] for c in late) if late else None,
            "requests_per_check_max": max((c["requests"] for c in late), default=None),
            "megabytes_per_check_median": round(statistics.median(c["bytes"] for c in late) / 1e6, 3) if late else None,
            "rollups_fetched": sum(c["rollups"] for c in late),
            "left_for_next_check_max": max((c["left_for_next_check"] for c in late), default=None),
            "requests_per_day": round(sum(c["requests"] for c in late) / window, 1) if node.every else None,
            "megabytes_per_day": round(sum(c["bytes"] for c in late) / window / 1e6, 2) if node.every else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=17)
    parser.add_argument("--every", type=int, default=600, help="seconds between exports (divides a day)")
    parser.add_argument("--keys-per-day", type=int, default=358_105, help="the largest real day (a CWA day)")
    parser.add_argument("--checkins-per-export", type=int, default=2)
    parser.add_argument("--min-keys-per-file", type=int, default=ExportConfig().min_keys_per_file,
                        help="pad files with fewer keys with fakes up to this many (0: no padding)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if DAY_SECONDS % args.every or args.days < 1:
        parser.error("--every must divide a day, --days be at least 1")
    base = args.workdir / f"bluezone-national-index-{os.getpid()}"
    try:
        result: dict[str, Any] = {"days": args.days, "export_every": args.every, "keys_per_day": args.keys_per_day,
                                  "checkins_per_export": args.checkins_per_export, "load_average_start": os.getloadavg()}
        result.update(simulate(args, base))
        result["load_average_end"] = os.getloadavg()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
