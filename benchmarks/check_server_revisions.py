"""Peak memory and time of ``check --server`` as the revisions in the new files grow (spooled past
``revisions.IN_MEMORY``: the check's memory should not grow with them).

    .venv/bin/python benchmarks/check_server_revisions.py all KEYS R1 [R2 ...] [--repeat N] [--baseline-src DIR]

KEYS random keys and R revisions (of other keys, revoked: an earlier check's keys withdrawn, which are
matched against the store) are signed into 20 export files (more where R is above 20 x ``--per-file``:
a server's files hold a bounded number, and a file is parsed whole) with a store of 20,000 sightings,
once per R (in ``--workdir``, or a temporary directory), in a process of their own (a child's
``ru_maxrss`` starts at its parent's).  Each run is a process of its own (``ru_maxrss`` is its
peak, ``peak_rss_mib``): the files served from disk by an in-process mock transport, checked with
``buffer_keys`` 65,536 (so KEYS above it stream, below it are joined) against a fresh copy of the store.
Prints one JSON line per run: seconds of the check (wall, and CPU of its process: less moved by other
work on a shared machine; workers forked by a multi-job check are not counted), the peak before the
check (imports) and after, and
the check's own peak above the memory it started with (``check_peak_above_start_mib``: the peak reset
just before it, Linux).
``--baseline-src DIR`` (a tree holding an older ``bluezone/``, e.g. ``git archive f50097a bluezone |
tar -x -C DIR``) runs that version too, alternating with this one, each ``--repeat`` times per R, and
prints a summary line per R: the medians of both and the ratios of the check's seconds (this / baseline).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.keyformat.export import SignatureInfo

END = 1_760_000_000 // DAY_SECONDS * DAY_SECONDS
NOW = END + 3 * 3600
SIGNER = ec.derive_private_key(12345, ec.SECP256R1())
INFO = SignatureInfo("b", "v1")


def make(n_keys: int, n_rev: int, files: int, where: Path) -> None:
    """``files`` export files of ``n_keys`` keys and ``n_rev`` revoked revisions of other keys in all, and a
    store of 20,000 sightings, written into ``where`` (once: a directory already made is used as it is)."""
    from bluezone.keyformat.export import signed_export_zip
    from bluezone.keyformat.keys import REPORT_TYPE_REVOKED
    from bluezone.matching.benchmark import synthetic_data
    from bluezone.proximity.store import SightingStore

    if (where / "done").exists():
        return
    where.mkdir(parents=True, exist_ok=True)
    keys, sightings, _ = synthetic_data(n_keys + n_rev, 20000, 7, end_time=END)
    keys["report_type"] = 1
    per = -(-n_keys // files)
    rper = -(-n_rev // files) if n_rev else 0
    for i in range(files):
        plain = keys[i * per:min((i + 1) * per, n_keys)]
        rev = keys[n_keys + i * rper: n_keys + min((i + 1) * rper, n_rev)].copy()
        rev["report_type"] = REPORT_TYPE_REVOKED
        (where / f"f{i}.zip").write_bytes(signed_export_zip(plain, SIGNER, INFO, region="VN", revised_keys=rev))
    with SightingStore.open(where / "store.db", purge_now=NOW) as store:
        store.add_sightings(sightings)
    (where / "done").touch()


class _FileStream(httpx.SyncByteStream):
    """A file's bytes as a socket gives them, a piece at a time, none kept once given."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __iter__(self) -> Iterator[bytes]:
        with self._path.open("rb") as file:
            while piece := file.read(1 << 16):
                yield piece


def served(where: Path) -> httpx.MockTransport:
    """The files in ``where`` as a static host serves them, streamed from disk as each is asked for.
    Not ``Response(content=...)``: httpx binds a response and its stream in a reference cycle, so each
    answer's whole bytes stayed until the cyclic GC ran, rarely in a download loop (up to ~16 MiB of old
    files at 3M revisions: ru_maxrss rose with the number of files, as a network stream never makes it)."""
    names = sorted(p.name for p in where.glob("f*.zip"))

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "index.txt":
            return httpx.Response(200, text="".join(f"{n}\n" for n in names))
        if name not in names:
            return httpx.Response(404)
        return httpx.Response(200, stream=_FileStream(where / name))

    return httpx.MockTransport(handler)


def check(where: Path, store_path: Path):  # -> ServerCheckResult (imported late: the baseline tree's)
    """``check_server`` of the files in ``where`` against the store at ``store_path``."""
    from bluezone.client.check import check_server
    from bluezone.client.keyserver import KeyServerClient
    from bluezone.client.pinning import PinnedKey
    from bluezone.client.state import ServerState
    from bluezone.keyformat.export import public_key_base64
    from bluezone.proximity.store import SightingStore

    client = KeyServerClient("http://keys.test", transport=served(where), sleep=lambda s: None)
    with SightingStore.open(store_path, create=False) as store:
        return check_server(client, ServerState(store), None, now=NOW,
                            server_key=PinnedKey(public_key_base64(SIGNER.public_key()), "b"), buffer_keys=1 << 16)


def store_copy(where: Path, tmp: Path) -> Path:
    """A fresh copy of the store in ``where`` (a check remembers what it processed)."""
    path = tmp / "store.db"
    shutil.copyfile(where / "store.db", path)
    path.chmod(0o600)
    return path


def one(where: Path) -> dict:
    """The check of the files in ``where`` against a fresh copy of its store, in this process: the files
    are read from disk as they are served, so this process's peak is the check's own."""
    importlib.import_module("bluezone.client.check")  # imported before the peak is reset and the clock starts

    with tempfile.TemporaryDirectory() as tmp:
        path = store_copy(where, Path(tmp))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = _reset_peak()
        t, cpu = time.perf_counter(), time.process_time()
        r = check(where, path)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"keys": r.key_count, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib_before": base / 1024, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "check_peak_above_start_mib": None if start is None else round(_vm("VmHWM") - start, 1),
            "revised": r.revised, "revoked": r.revoked}


def _vm(field: str) -> float:
    """This process's ``field`` of /proc/self/status (VmRSS, VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> float | None:
    """The resident size now, with the peak (VmHWM) reset to it (Linux): the check's own peak is then
    VmHWM less this, not the making of the files before it.  None where it cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _vm("VmRSS")
    except OSError:
        return None


def _run(tree: Path, where: Path) -> dict:
    """The check of the files in ``where`` in a process of its own importing ``bluezone`` from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "one", str(where)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", type=int)
    parser.add_argument("revisions", type=int, nargs="+")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--per-file", type=int, default=50_000, help="revisions a file at most (default 50,000)")
    parser.add_argument("--workdir", type=Path, help="where the files are made, once (default: a temporary directory)")
    args = parser.parse_args(sys.argv[2:])
    trees = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        for n_rev in args.revisions:
            where = (args.workdir or Path(tmp)) / f"k{args.keys}_r{n_rev}_p{args.per_file}"
            files = max(20, -(-n_rev // args.per_file))
            subprocess.run([sys.executable, __file__, "make", str(args.keys), str(n_rev), str(files), str(where)], check=True)
            runs: dict[str, list[dict]] = {name: [] for name in trees}
            for _ in range(args.repeat):
                for name, tree in trees.items():
                    run = {"tree": name, "revisions": n_rev, **_run(tree, where)}
                    runs[name].append(run)
                    print(json.dumps(run), flush=True)
            summary: dict = {"keys": args.keys, "revisions": n_rev, "runs": args.repeat}
            for name, done in runs.items():
                for field in ("seconds", "cpu_seconds", "check_peak_above_start_mib", "peak_rss_mib"):
                    values = [r[field] for r in done if r[field] is not None]
                    summary[f"{name}_{field}_median"] = round(statistics.median(values), 2) if values else None
            if "baseline" in runs:
                for field in ("seconds", "cpu_seconds"):
                    summary[f"{field}_ratio_this_over_baseline"] = round(summary[f"this_{field}_median"] / summary[f"baseline_{field}_median"], 3)
            print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "one":
        print(json.dumps(one(Path(sys.argv[2]))))
    elif sys.argv[1] == "make":
        make(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
