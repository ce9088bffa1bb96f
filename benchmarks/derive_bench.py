"""Microseconds per key of batched RPI derivation, beside an older version's, in one process.

    git archive <commit> bluezone | tar -x -C DIR
    .venv/bin/python benchmarks/derive_bench.py --baseline-src DIR [--keys 20000] [--repeat 9]

Loads DIR/bluezone/crypto/rpi.py beside the installed ``bluezone.crypto.rpi``, checks that both
give the same RPIs, then times ``rpis_for_keys`` of each on the same keys, alternating, and
prints the medians and their ratio (one core; the per-key cost the matcher pays).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_rpi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, required=True, help="directory holding an older bluezone/")
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    new = importlib.import_module("bluezone.crypto.rpi")  # the package exports a function of that name
    old = _load(args.baseline_src / "bluezone" / "crypto" / "rpi.py")
    rng = np.random.default_rng(0)
    teks = np.frombuffer(rng.bytes(16 * args.keys), np.uint8).reshape(args.keys, 16)
    starts = rng.integers(0, 14, args.keys) * ROLLING_PERIOD + 2_940_000
    if not np.array_equal(old.rpis_for_keys(teks, starts), new.rpis_for_keys(teks, starts)):
        raise SystemExit("the two versions give different RPIs")
    times: dict[str, list[float]] = {"baseline": [], "now": []}
    for _ in range(args.repeat):
        for name, module in (("baseline", old), ("now", new)):
            t = time.perf_counter()
            module.rpis_for_keys(teks, starts)
            times[name].append((time.perf_counter() - t) / args.keys * 1e6)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "keys": args.keys,
        "us_per_key": {k: round(v, 2) for k, v in medians.items()},
        "speedup_vs_baseline": round(medians["baseline"] / medians["now"], 2),
    }))


if __name__ == "__main__":
    main()
