"""Reading a signed export zip: time and peak memory of ``load_keys``, beside an older version.

    .venv/bin/python benchmarks/keyfile_bench.py [--keys 358105 6000000] [--repeat 3]
        [--baseline-src DIR] [--json]

Makes (untimed, cached in ``--workdir``) a signed GAEN export zip of each ``--keys`` count of
random diagnosis keys over 14 days, a tenth of them with a short rolling period (358,105 is the
largest real daily package, a CWA day; 6,000,000 a hypothetical national day).  Then loads each
zip with ``load_keys`` in a fresh process per run, the variants alternating, ``--repeat``
times, and reports the median seconds of the load and the peak resident memory of the process
(``VmHWM``, which includes the interpreter and imports: see ``import_rss_mb``).  Every run
must give the same keys (their SHA-256), so a fast wrong answer cannot pass.

``--baseline-src DIR`` (a directory holding an older ``bluezone/`` package, e.g. from
``git archive <commit> bluezone | tar -x -C DIR``) adds that version to the alternation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Where the loads run: ``-c`` puts the working directory first on sys.path, so from a checkout
#: it would import its bluezone/ ahead of --baseline-src's.
NEUTRAL = tempfile.gettempdir()

_CHILD = """
import hashlib, json, resource, sys, time

def high_water_kb():
    # VmHWM: this process's peak RSS since its exec.  ru_maxrss would carry over the peak of the
    # parent it was forked from (Linux records the pre-exec high-water mark), i.e. the benchmark's.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

from bluezone.keyformat.keyfile import load_keys
before = high_water_kb()
t0 = time.perf_counter()
keys = load_keys(sys.argv[1])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_kb": high_water_kb(), "import_kb": before, "keys": len(keys),
                  "sha256": hashlib.sha256(keys.tobytes()).hexdigest()}))
"""


def make_zip(workdir: Path, n_keys: int, seed: int) -> Path:
    """A signed export zip of ``n_keys`` random keys, made once per (keys, seed)."""
    path = workdir / f"keys-{n_keys}-{seed}.zip"
    if not path.exists():
        import numpy as np

        from bluezone.crypto.intervals import ROLLING_PERIOD
        from bluezone.keyformat.export import signed_export_zip
        from bluezone.keyformat.keys import empty_keys
        from bluezone.server.signing import keygen

        rng = np.random.default_rng(seed)
        keys = empty_keys(n_keys)
        keys["key"] = np.frombuffer(rng.bytes(16 * n_keys), "V16")
        keys["rolling_start"] = (2_940_000 // ROLLING_PERIOD + rng.integers(0, 14, n_keys)) * ROLLING_PERIOD
        short = rng.random(n_keys) < 0.1  # some keys were replaced early in the day
        keys["rolling_period"][short] = rng.integers(1, ROLLING_PERIOD, short.sum())
        keys["transmission_risk"] = rng.integers(0, 9, n_keys)
        keys["report_type"] = 1
        signer = keygen(workdir / "signing", force=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(signed_export_zip(keys, signer.private_key, signer.info, region="VN"))
        tmp.rename(path)
    return path


def load_once(path: Path, baseline: Path | None) -> dict:
    """One ``load_keys`` in a fresh process (the baseline's code if ``baseline`` is given)."""
    env = {**os.environ, "PYTHONPATH": str(baseline)} if baseline else dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, env=env, cwd=NEUTRAL
    )
    if out.returncode != 0:
        raise SystemExit(f"load_keys failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[358_105, 6_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-keyfile-bench")
    parser.add_argument("--baseline-src", type=Path, default=None, help="directory holding an older bluezone/")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    baseline = args.baseline_src.resolve() if args.baseline_src else None
    variants = {"now": None, **({"baseline": baseline} if baseline else {})}
    results = []
    for n in args.keys:
        path = make_zip(args.workdir, n, args.seed)
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, src in variants.items():  # alternating, so load from elsewhere falls on all alike
                runs[name].append(load_once(path, src))
        digests = {r["sha256"] for rs in runs.values() for r in rs}
        if len(digests) != 1:
            raise SystemExit(f"{n} keys: the variants loaded different keys")
        medians = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
        peaks = {name: max(r["peak_kb"] for r in rs) / 1024 for name, rs in runs.items()}
        entry: dict[str, object] = {
            "keys": n,
            "zip_bytes": path.stat().st_size,
            "runs_seconds": {name: [round(r["seconds"], 3) for r in rs] for name, rs in runs.items()},
            "median_seconds": {name: round(m, 3) for name, m in medians.items()},
            "peak_rss_mb": {name: round(p, 1) for name, p in peaks.items()},
            "import_rss_mb": {name: round(max(r["import_kb"] for r in rs) / 1024, 1) for name, rs in runs.items()},
            "keys_array_mb": round(n * 33 / 2**20, 1),  # KEY_DTYPE is 33 bytes a key
        }
        if baseline:
            entry["speedup_vs_baseline"] = round(medians["baseline"] / medians["now"], 2)
            entry["peak_ratio_vs_baseline"] = round(peaks["baseline"] / peaks["now"], 2)
        results.append(entry)
    report = {
        "baseline": str(args.baseline_src) if args.baseline_src else None,
        "results": results,
        "cores": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=None if args.json else 2))
    return report


if __name__ == "__main__":
    main()
