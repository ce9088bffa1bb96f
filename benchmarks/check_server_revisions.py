"""Peak memory and time of ``check --server`` as the revisions in the new files grow (spooled past
``revisions.IN_MEMORY``: the check's memory should not grow with them).

    .venv/bin/python benchmarks/check_server_revisions.py all KEYS R1 [R2 ...] [--repeat N] [--baseline-src DIR]

Each run is a process of its own (``ru_maxrss`` is its peak): KEYS random keys and R revisions (of other
keys, revoked: an earlier check's keys withdrawn, which are matched against the store) signed into 20
export files, served by an in-process mock transport, checked with ``buffer_keys`` 65,536 (so KEYS above
it stream, below it are joined) against a fresh store of 20,000 sightings.  Prints one JSON line per run:
seconds of the check, the peak before the check (making the files) and after, and the check's own peak
above the memory it started with (``check_peak_above_start_mib``: the peak reset just before it, Linux).
``--baseline-src DIR`` (a tree holding an older ``bluezone/``, e.g. ``git archive f50097a bluezone |
tar -x -C DIR``) runs that version too, alternating with this one, each ``--repeat`` times per R, and
prints a summary line per R: the medians of both and the ratio of the check's seconds (this / baseline).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.crypto.intervals import DAY_SECONDS

END = 1_760_000_000 // DAY_SECONDS * DAY_SECONDS
NOW = END + 3 * 3600


def one(n_keys: int, n_rev: int, files: int, tmp: str) -> dict:
    from bluezone.client.check import check_server
    from bluezone.client.keyserver import KeyServerClient
    from bluezone.client.pinning import PinnedKey
    from bluezone.client.state import ServerState
    from bluezone.keyformat.export import SignatureInfo, public_key_base64, signed_export_zip
    from bluezone.keyformat.keys import REPORT_TYPE_REVOKED
    from bluezone.matching.benchmark import synthetic_data
    from bluezone.proximity.store import SightingStore

    signer = ec.derive_private_key(12345, ec.SECP256R1())
    info = SignatureInfo("b", "v1")
    keys, sightings, _ = synthetic_data(n_keys + n_rev, 20000, 7, end_time=END)
    keys["report_type"] = 1
    blobs = {}
    per = -(-n_keys // files)
    rper = -(-n_rev // files) if n_rev else 0
    for i in range(files):
        plain = keys[i * per:min((i + 1) * per, n_keys)]
        rev = keys[n_keys + i * rper: n_keys + min((i + 1) * rper, n_rev)].copy()
        rev["report_type"] = REPORT_TYPE_REVOKED
        blobs[f"f{i}.zip"] = signed_export_zip(plain, signer, info, region="VN", revised_keys=rev)
    del keys
    names = list(blobs)

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "index.txt":
            return httpx.Response(200, text="".join(f"{n}\n" for n in names))
        if name not in blobs:
            return httpx.Response(404)
        return httpx.Response(200, content=blobs[name])

    path = Path(tmp) / f"s{n_keys}_{n_rev}.db"
    path.unlink(missing_ok=True)
    with SightingStore.open(path, purge_now=NOW) as store:
        store.add_sightings(sightings)
    client = KeyServerClient("http://keys.test", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = _reset_peak()
    t = time.perf_counter()
    with SightingStore.open(path, create=False) as store:
        r = check_server(client, ServerState(store), None, now=NOW,
                         server_key=PinnedKey(public_key_base64(signer.public_key()), "b"), buffer_keys=1 << 16)
    return {"keys": n_keys, "revisions": n_rev, "seconds": round(time.perf_counter() - t, 2),
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


def _run(tree: Path, n_keys: int, n_rev: int, tmp: str) -> dict:
    """One check in a process of its own importing ``bluezone`` from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "one", str(n_keys), str(n_rev), "20", tmp], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", type=int)
    parser.add_argument("revisions", type=int, nargs="+")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline-src", type=Path)
    args = parser.parse_args(sys.argv[2:])
    trees = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        for n_rev in args.revisions:
            runs: dict[str, list[dict]] = {name: [] for name in trees}
            for _ in range(args.repeat):
                for name, tree in trees.items():
                    run = {"tree": name, **_run(tree, args.keys, n_rev, tmp)}
                    runs[name].append(run)
                    print(json.dumps(run), flush=True)
            summary: dict = {"keys": args.keys, "revisions": n_rev, "runs": args.repeat}
            for name, done in runs.items():
                for field in ("seconds", "check_peak_above_start_mib", "peak_rss_mib"):
                    values = [r[field] for r in done if r[field] is not None]
                    summary[f"{name}_{field}_median"] = round(statistics.median(values), 2) if values else None
            if "baseline" in runs:
                summary["seconds_ratio_this_over_baseline"] = round(summary["this_seconds_median"] / summary["baseline_seconds_median"], 3)
            print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "one":
        print(json.dumps(one(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))
    else:
        main()
