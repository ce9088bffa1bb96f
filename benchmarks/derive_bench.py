"""Microseconds per key of batched RPI derivation, beside an older version's, in one process.

    git archive <commit> bluezone | tar -x -C DIR
    .venv/bin/python benchmarks/derive_bench.py --baseline-src DIR [--keys 20000] [--repeat 9]

Loads DIR/bluezone/crypto/derivation.py (``rpi.py`` in versions before the rename) beside the
installed ``bluezone.crypto.derivation``, checks that they give the same RPIs, then times
``rpis_for_keys`` on the same keys, alternating: the baseline, the installed code's Python path
("python") and, if the compiled helper bluezone-native is usable, the installed code with it
("native"). Prints the medians and ratios (one core; the per-key cost the matcher pays) and which
path the installed code chose.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np

from bluezone.crypto import derivation as installed
from bluezone.crypto.intervals import ROLLING_PERIOD


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_rpi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _python_path(module: Any) -> Iterator[None]:
    """The installed module with its compiled helper set aside (its Python path)."""
    chosen = module._native_rpis
    module._native_rpis = lambda: None
    try:
        yield
    finally:
        module._native_rpis = chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, required=True, help="directory holding an older bluezone/")
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    crypto = args.baseline_src / "bluezone" / "crypto"
    old = _load(crypto / "derivation.py" if (crypto / "derivation.py").exists() else crypto / "rpi.py")
    rng = np.random.default_rng(0)
    teks = np.frombuffer(rng.bytes(16 * args.keys), np.uint8).reshape(args.keys, 16)
    starts = rng.integers(0, 14, args.keys) * ROLLING_PERIOD + 2_940_000
    variants: dict[str, Any] = {"baseline": old.rpis_for_keys, "python": installed.rpis_for_keys}
    if installed._native_rpis() is not None:
        variants["native"] = installed.rpis_for_keys
    reference = old.rpis_for_keys(teks, starts)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeat):
        for name, derive in variants.items():
            with _python_path(installed) if name == "python" else contextlib.nullcontext():
                t = time.perf_counter()
                got = derive(teks, starts)
                times[name].append((time.perf_counter() - t) / args.keys * 1e6)
            if repeat == 0 and not np.array_equal(got, reference):
                raise SystemExit(f"{name} gives different RPIs from the baseline")
    medians = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "keys": args.keys,
        "repeat": args.repeat,
        "derivation": installed.derivation_path(),
        "us_per_key": {k: round(v, 2) for k, v in medians.items()},
        "speedup_vs_baseline": {k: round(medians["baseline"] / v, 2) for k, v in medians.items() if k != "baseline"},
    }
    if "native" in medians:
        result["native_vs_python"] = round(medians["python"] / medians["native"], 2)
    print(json.dumps(result))

if __name__ == "__main__":
    main()
