"""A peer baseline: DP-3T's Python reference matcher, run from its own source, beside bluezone's.

    git clone https://github.com/DP-3T/reference_implementation /some/where
    pip install pycryptodomex
    .venv/bin/python benchmarks/dp3t_reference_bench.py --dp3t-src /some/where [--observations 1000000]

DP-3T's reference implementation (EPFL, Apache 2.0) is not vendored: this script imports its
``dp3t.protocols.lowcost.ContactTracer`` from the checkout you name.  Both matchers get a
store of ``--observations`` random identifiers spread over 14 days (DP-3T's observations
go straight into the tracer's per-batch lists, as ``add_observation`` would leave them
minus the shuffle), and both are asked about keys that match nothing: the work every
check does for nearly every published key.  DP-3T's matcher is timed on ``--dp3t-keys``
keys (it is linear in the store per key), bluezone's on ``--keys``; the rates are keys/s.
DP-3T's low-cost design is not GAEN (a 32-byte day key, hash-chained days, AES-CTR EphIDs,
96 epochs a day), so this compares two reasonable Python matchers for the same job, not
byte-identical work.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.matcher import SightingIndex, match
from bluezone.progress import terminal_progress

DAY = 86400


def dp3t_rate(src: Path, n_observations: int, n_keys: int, seed: int) -> float:
    """Keys/s of DP-3T's ``ContactTracer.matches_with_key`` against ``n_observations``."""
    sys.path.insert(0, str(src))
    try:
        from dp3t.protocols import lowcost  # type: ignore[import-not-found]
    except ImportError as exc:
        raise SystemExit(f"cannot import DP-3T's reference implementation from {src}: {exc}") from None
    # Its secure_shuffle calls random.shuffle(x, random), a form Python 3.11 removed; the same
    # shuffle the 3.11 way.  Only key generation uses it, never the timed matching.
    lowcost.secure_shuffle = lambda items: secrets.SystemRandom().shuffle(items)
    SECONDS_PER_BATCH, ContactTracer = lowcost.SECONDS_PER_BATCH, lowcost.ContactTracer
    rng = np.random.default_rng(seed)
    tracer = ContactTracer()
    today = tracer.start_of_today
    batches = np.arange(today - 13 * DAY, today + DAY, SECONDS_PER_BATCH)
    which = rng.integers(0, len(batches), n_observations)
    ephids = rng.bytes(16 * n_observations)
    observations: dict[int, list[bytes]] = {}
    for i, b in enumerate(which.tolist()):
        observations.setdefault(int(batches[b]), []).append(ephids[16 * i : 16 * i + 16])
    tracer.observations = observations
    times = []
    for _ in range(n_keys):
        key = rng.bytes(32)
        t = time.perf_counter()
        tracer.matches_with_key(key, today - 13 * DAY, today + DAY)
        times.append(time.perf_counter() - t)
    return 1.0 / statistics.median(times)


def bluezone_rate(n_observations: int, n_keys: int, seed: int, jobs: int) -> float:
    """Keys/s of bluezone's matcher (index built outside the timing, as for DP-3T's lists)."""
    keys, sightings, _ = synthetic_data(n_keys, n_observations, seed, planted=0)
    index = SightingIndex(sightings)
    t = time.perf_counter()
    match(keys, index, jobs=jobs)
    return n_keys / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dp3t-src", type=Path, default=os.environ.get("DP3T_SRC"), help="DP-3T reference checkout")
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--dp3t-keys", type=int, default=3)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    if args.dp3t_src is None or not (args.dp3t_src / "dp3t").is_dir():
        parser.error("--dp3t-src must name a checkout of DP-3T/reference_implementation (it holds dp3t/)")
    with terminal_progress(f"dp3t_reference_bench: {args.observations:,} observations") as progress:
        say = progress or (lambda stage, fraction: None)
        say("DP-3T's reference matcher", 0.0)
        peer = dp3t_rate(args.dp3t_src, args.observations, args.dp3t_keys, args.seed)
        say("bluezone's matcher", 0.0)
        ours = bluezone_rate(args.observations, args.keys, args.seed, args.jobs)
        say("bluezone's matcher", 1.0)
    print(json.dumps({
        "observations": args.observations,
        "dp3t_reference_keys_per_second": round(peer, 2),
        "bluezone_keys_per_second": round(ours, 1),
        "bluezone_jobs": args.jobs,
        "speedup_vs_dp3t_reference": round(ours / peer, 1),
    }))


if __name__ == "__main__":
    main()
