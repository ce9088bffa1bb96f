"""Peak memory and wall time of ``bluezone check --server`` on one day of N keys, as a user runs it.

    .venv/bin/python benchmarks/check_server_memory.py [--keys 6000000] [--days 1] [--replayed]
        [--sightings 1000000] [--repeat 1] [--jobs J] [--baseline-src DIR] [--workdir DIR] [--json]

Makes (untimed, cached in ``--workdir``) a scratch SQLite key server holding ``--keys`` random
diagnosis keys a day for ``--days`` days (a node away that long: ``keys x days`` new keys, their
rolling starts over the 13 days before today: ``check`` keeps 14 x 24 h at the wall clock and the
exporter holds back today's keys), each day's exported by
``export_batches`` into one export directory (files of the server's default size), and a busy
13-day sighting store of ``--sightings`` adverts with 20 planted encounters.  The export directory
is served over loopback HTTP (``http.server`` in a thread, as a static host or CDN would serve it:
``/v1/exports/index.txt`` and the batches; with ``--replayed`` every file is listed again under
another name, as a host replaying the signed files would serve them), and
``bluezone check --server URL --server-key PUB --db STORE --json`` runs as a fresh process on a
fresh copy of the store each time (a check remembers what it processed).  Reports the median
wall time and the check's peak resident memory (``ru_maxrss`` of the child from ``wait4``: the
largest of it and its workers), in MiB and decimal MB, and fails unless every planted exposure
is found, so a fast wrong answer cannot pass.

``--baseline-src DIR`` (a directory holding an older ``bluezone/``, e.g. from ``git archive <commit>
bluezone | tar -x -C DIR``) runs that version's check too, alternating with this one, on its own
fresh copy of the same store.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_bench import NEUTRAL  # noqa: E402  (a directory that is not a checkout)

INSERT_CHUNK = 500_000  # keys per insert: the key server's bulk insert builds a Python row per key


def make_inputs(workdir: Path, n_keys: int, n_sightings: int, seed: int, days: int = 1) -> tuple[Path, Path, Path, int]:
    """(export directory, store, public key file, planted keys), made once per (keys, days, sightings, seed, day)."""
    from bluezone.crypto.intervals import ROLLING_PERIOD, interval_number, rolling_start
    from bluezone.matching.benchmark import synthetic_data
    from bluezone.proximity.store import SCHEMA_VERSION, SightingStore
    from bluezone.server.exports import ExportConfig, export_batches
    from bluezone.server.signing import PUBLIC_FILE, keygen
    from bluezone.server.storage import open_storage

    today = int(time.time()) // 86400 * 86400
    tag = f"{n_keys}-{n_sightings}-{seed}-{today}" + (f"-{days}days" if days > 1 else "")
    exports, db_path = workdir / f"exports-{tag}", workdir / f"store-{tag}-v{SCHEMA_VERSION}.db"
    signing = workdir / f"signing-{tag}"
    # 13 days before today's midnight: check purges the store at the wall clock (14 x 24 h back), and
    # the exporter holds back today's keys, still valid
    keys, sightings, planted = synthetic_data(n_keys * days, n_sightings, seed, planted=20, end_time=today, days=13)
    if not (exports / "index.txt").exists():
        shutil.rmtree(exports, ignore_errors=True)
        server_db = workdir / f"server-{tag}.db"
        server_db.unlink(missing_ok=True)
        signer = keygen(signing, force=True)
        storage = open_storage(str(server_db))
        now = time.time()
        config = ExportConfig(region="VN")
        batches = []
        for day in range(days):  # one export of each day's keys (the exporter runs all day; its files add up)
            for start in range(day * n_keys, (day + 1) * n_keys, INSERT_CHUNK):
                storage.insert_keys_unchecked(keys[start : min(start + INSERT_CHUNK, (day + 1) * n_keys)], now)
            # every key must be exportable now, or the check could not find the planted ones
            oldest = rolling_start(now) - config.retention_days * ROLLING_PERIOD
            pending, _, _ = storage.pending_keys(interval_number(now), oldest)
            if len(pending) != n_keys:
                raise SystemExit(f"only {len(pending)} of {n_keys} keys are exportable")
            del pending
            batches += export_batches(storage, signer, exports, now + day, config)
        storage.close()
        server_db.unlink()
        print(f"exported {sum(b.num_keys for b in batches)} keys in {len(batches)} files", file=sys.stderr)
    if not db_path.exists():
        with SightingStore.open(db_path) as store:
            store.add_sightings(sightings)
    np.save(workdir / f"sightings-{tag}.npy", sightings)  # for an older version's store (store_of)
    return exports, db_path, signing / PUBLIC_FILE, planted


def store_of(baseline: Path, db_path: Path) -> Path:
    """The store of ``db_path``'s sightings made by the bluezone in ``baseline`` (an older one may
    not open a newer schema), once: its sightings were saved beside it by ``make_inputs``."""
    tag = db_path.name.removeprefix("store-").rsplit("-v", 1)[0]
    path = db_path.with_name(f"store-{tag}-{baseline.name}.db")
    if not path.exists():
        make = ("import sys, numpy as np; from bluezone.proximity.store import SightingStore\n"
                "with SightingStore.open(sys.argv[1]) as store: store.add_sightings(np.load(sys.argv[2]))")
        subprocess.run([sys.executable, "-c", make, str(path), str(db_path.with_name(f"sightings-{tag}.npy"))],
                       check=True, cwd=NEUTRAL, env={**os.environ, "PYTHONPATH": str(baseline)})
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
        pass


def serve(exports: Path, root: Path, replayed: bool = False) -> tuple[http.server.ThreadingHTTPServer, str]:
    """``exports`` served as ``/v1/exports/`` on 127.0.0.1 (a free port), in a thread; ``replayed``:
    every file listed again under another name (its stamp one higher), after all of them."""
    served = root / "v1" / "exports"
    if not served.exists():
        served.mkdir(parents=True)
        names = (exports / "index.txt").read_text().split()
        copies = [f"{int(n.split('-', 1)[0]) + 1}-{n.split('-', 1)[1]}" for n in names] if replayed else []
        for name, source in [*zip(names, names), *zip(copies, names)]:
            (served / name).symlink_to((exports / source).resolve())
        (served / "index.txt").write_text("".join(f"{n}\n" for n in names + copies))
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run_check(
    url: str, public_key: Path, store: Path, jobs: int | None, out: Path, baseline: Path | None = None
) -> tuple[float, int, dict]:
    """(wall seconds, peak RSS in KiB, JSON report) of one ``bluezone check --server`` process."""
    cmd = [sys.executable, "-m", "bluezone.cli", "check", "--server", url, "--server-key", str(public_key),
           "--db", str(store), "--json"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
        t0 = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(baseline)} if baseline else None
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=NEUTRAL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    if proc.returncode != 0:
        raise SystemExit(f"bluezone check failed ({proc.returncode}): {out.with_suffix('.err').read_text()[-500:]}")
    return seconds, usage.ru_maxrss, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=6_000_000, help="new keys a day")
    parser.add_argument("--days", type=int, default=1, help="days of keys the node has not checked (1: a daily check)")
    parser.add_argument("--replayed", action="store_true", help="every file served twice, under another name too")
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None, help="bluezone check --jobs (default: its own default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-src", type=Path, default=None, help="a directory holding an older bluezone/")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-check-server-memory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    # in a process of its own: a check's ru_maxrss starts from this process's peak (subprocess starts it
    # with vfork, and exec records the old memory's high-water mark), which making the inputs would raise
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as maker:
        made = maker.submit(make_inputs, args.workdir, args.keys, args.sightings, args.seed, args.days)
        exports, db_path, public_key, planted = made.result()
    files = len((exports / "index.txt").read_text().split()) * (2 if args.replayed else 1)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bluezone-served-") as scratch:
        server, url = serve(exports, Path(scratch) / "root", args.replayed)
        variants = {"this": None, **({f"baseline {args.baseline_src.name}": args.baseline_src.resolve()} if args.baseline_src else {})}
        times: dict[str, list[float]] = {v: [] for v in variants}
        peaks: dict[str, list[int]] = {v: [] for v in variants}
        try:
            for i in range(args.repeat):
                for name, src in variants.items():  # alternating, so load from elsewhere falls on all alike
                    store = Path(scratch) / f"store-{i}.db"
                    shutil.copyfile(db_path if src is None else store_of(src, db_path), store)
                    os.chmod(store, 0o600)
                    seconds, peak_kib, report = run_check(url, public_key, store, args.jobs, Path(scratch) / "out.json", src)
                    store.unlink()
                    found = {e["key_index"] for e in report["exposures"]}
                    if len(found) != planted:
                        raise SystemExit(f"{name}: check found {len(found)} of {planted} planted exposures")
                    if report["rejected_batches"] or len(report["batches"]) != files:
                        raise SystemExit(f"{name}: check used {len(report['batches'])} of {files} files")
                    if report["keys"] != args.keys * args.days:  # a replayed file's keys count once
                        raise SystemExit(f"{name}: check counted {report['keys']} keys, not {args.keys * args.days}")
                    times[name].append(seconds)
                    peaks[name].append(peak_kib)
        finally:
            server.shutdown()
    result = {
        "keys": args.keys,
        "days": args.days,
        "replayed": args.replayed,
        "sightings": args.sightings,
        "files": files,
        "export_bytes": sum(p.stat().st_size for p in exports.glob("*.zip")),
        "jobs": args.jobs,
        "planted_found": planted,
        "runs_seconds": {v: [round(t, 2) for t in ts] for v, ts in times.items()},
        "median_seconds": {v: round(statistics.median(ts), 2) for v, ts in times.items()},
        "peak_rss_mib": {v: round(max(p) / 1024, 1) for v, p in peaks.items()},
        "peak_rss_mb": {v: round(max(p) * 1024 / 1e6, 1) for v, p in peaks.items()},
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start_end": [load_at_start, [round(x, 2) for x in os.getloadavg()]],
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
