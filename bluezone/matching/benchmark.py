"""``bluezone benchmark``: the matcher's speed on synthetic data, beside a naive baseline.

The data: ``n_keys`` random diagnosis keys whose rolling starts fall on the last 14 UTC
days, and a store-like array of ``n_sightings`` sightings spread over the same 14 days
(so every key's window touches sightings and no key is skipped for free), with distinct
random RPIs by default (the worst case for the prefix pre-filter) and a few sightings
planted from some of the keys so that matches, AEM decryption and windows are exercised.

Two baselines, each timed on a sample of keys in the same run and compared by rate:
the naive matcher (per key, HKDF, then one ``Cipher`` per RPI and a dict lookup per RPI)
and the reasonable one anyone would write first (one encryptor per key, 144 ``update``
calls, a dict lookup per RPI).  With ``jobs`` > 1 the matcher is also timed with one
process in the same run, for the speed-up from more cores.  None of this is product path.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD
from bluezone.crypto.keys import aem_key, rpi_key
from bluezone.crypto.payload import Metadata
from bluezone.crypto.derivation import aem, derivation_path, padded_data, rpi, rpis_for_keys
from bluezone.errors import InputError
from bluezone.keyformat.keys import empty_keys
from bluezone.matching.matcher import TOLERANCE_INTERVALS, SightingIndex, available_cores, exposure_windows, match
from bluezone.matching.memory import available_memory
from bluezone.proximity.sightings import SIGHTING_DTYPE

DAYS = 14
#: Fixed end of the synthetic period (2026-01-01 UTC), so a seed gives the same data.
END_TIME = 1767225600


@dataclass(frozen=True)
class BenchmarkResult:
    """Matcher timings beside the naive baseline of the same run (``bluezone benchmark``)."""

    keys: int
    sightings: int
    seed: int
    keys_per_second: float
    seconds: float
    index_seconds: float
    match_seconds: float
    matches: int
    windows: int
    planted_keys: int
    naive_sample_keys: int
    naive_keys_per_second: float
    speedup_vs_naive: float
    reasonable_naive_keys_per_second: float
    speedup_vs_reasonable_naive: float
    jobs: int = 1
    cores: int = 1
    keys_per_second_one_job: float | None = None  # jobs > 1: the same matcher in one process
    speedup_vs_one_job: float | None = None
    repeats: int = 1
    store_loading_included: bool = False
    store_load_seconds: float | None = None  # with_store: reading the M sightings back from SQLite
    keys_per_second_with_store: float | None = None
    derivation: str = ""  # which code derived the RPIs: the compiled helper or Python, and why
    note: str = (
        "keys_per_second = keys / median over repeats of (index build + match + AEM decryption + windows) "
        "over an in-memory sightings array; SQLite loading not included; `jobs` processes"
    )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def synthetic_data(
    n_keys: int,
    n_sightings: int,
    seed: int,
    *,
    planted: int = 20,
    per_plant: int = 15,
    end_time: int = END_TIME,
    days: int = DAYS,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(keys, sightings, keys planted) over the ``days`` days before ``end_time`` (a UTC midnight),
    for a benchmark or a test; deterministic per seed and end.  A store read on the wall clock
    (``bluezone check``) keeps 14 x 24 h: data for the 13 days before today's midnight stays whole
    all day."""
    rng = np.random.default_rng(seed)
    first_day = end_time // DAY_SECONDS - days
    keys = empty_keys(n_keys)
    keys["key"] = np.frombuffer(rng.bytes(16 * n_keys), "V16")
    keys["rolling_start"] = (first_day + rng.integers(0, days, n_keys)) * ROLLING_PERIOD
    short = rng.random(n_keys) < 0.1  # some keys were replaced early in the day
    keys["rolling_period"][short] = rng.integers(1, ROLLING_PERIOD, short.sum())
    keys["transmission_risk"] = rng.integers(0, 9, n_keys)

    sightings = np.zeros(n_sightings, SIGHTING_DTYPE)
    sightings["time"] = np.sort(rng.uniform(first_day * DAY_SECONDS, end_time, n_sightings))
    sightings["rpi"] = np.frombuffer(rng.bytes(16 * n_sightings), "V16")
    sightings["aem"] = np.frombuffer(rng.bytes(4 * n_sightings), "V4")
    sightings["rssi"] = rng.integers(-100, -40, n_sightings)
    sightings["tx_power"] = -128
    planted = min(planted, n_keys, n_sightings // per_plant)
    # Overwrite a few sightings with adverts that planted keys really sent.
    slots = rng.choice(n_sightings // per_plant, planted, replace=False) * per_plant
    for k, slot in zip(rng.choice(n_keys, planted, replace=False).tolist(), slots.tolist()):
        tek = keys["key"][k].tobytes()
        interval = int(keys["rolling_start"][k]) + int(rng.integers(0, keys["rolling_period"][k]))
        value = rpi(rpi_key(tek), interval)
        payload = aem(aem_key(tek), value, bytes(Metadata(tx_power=-20)))
        rows = slice(slot, slot + per_plant)
        sightings["time"][rows] = interval * INTERVAL_SECONDS + np.sort(rng.uniform(0, INTERVAL_SECONDS, per_plant))
        sightings["rpi"][rows] = np.void(value)
        sightings["aem"][rows] = np.void(payload)
        sightings["rssi"][rows] = rng.integers(-80, -60, per_plant)
    sightings.sort(order="time", kind="stable")
    return keys, sightings, planted


#: Bytes per sighting the benchmark holds: the array (32) and the baseline's dict of RPIs with
#: their intervals (Python objects); measured 330 at 1M sightings, so this is a floor.
BYTES_PER_SIGHTING = 300
#: Bytes per key: the array (33) and its random bytes while it is made; measured ~50.
BYTES_PER_KEY = 33 + 16


def check_fits(n_keys: int, n_sightings: int, available: int | None) -> None:
    """Refuse sizes whose arrays cannot fit in ``available`` bytes, before making them (it was
    numpy's one-line MemoryError about one array, exit 1); a floor, so normal sizes are not refused."""
    needed = n_keys * BYTES_PER_KEY + n_sightings * BYTES_PER_SIGHTING
    if available is not None and needed > available:
        raise InputError(
            f"{n_keys:,} keys and {n_sightings:,} sightings need at least {needed / 2**30:,.1f} GiB of memory,"
            f" {available / 2**30:,.1f} GiB is available: give fewer --keys or --sightings"
        )


def naive_match_count(keys: np.ndarray, sightings: np.ndarray) -> int:
    """The straightforward matcher: one Cipher per RPI, a dict lookup per RPI."""
    seen: dict[bytes, list[int]] = {}
    intervals = (sightings["time"] // INTERVAL_SECONDS).astype(np.int64).tolist()
    for row, value in enumerate(sightings["rpi"].tolist()):
        seen.setdefault(value, []).append(intervals[row])
    return _naive_lookup(keys, seen)


def _reasonable_naive_lookup(keys: np.ndarray, seen: dict[bytes, list[int]]) -> int:
    """The loop anyone would write first: one encryptor per key, one ``update`` per RPI."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    blocks: dict[int, bytes] = {}
    found = 0
    for row in keys:
        enc = Cipher(algorithms.AES(rpi_key(row["key"].tobytes())), modes.ECB()).encryptor()
        start, period = int(row["rolling_start"]), int(row["rolling_period"]) or ROLLING_PERIOD
        for interval in range(start, start + period):
            block = blocks.get(interval)
            if block is None:
                block = blocks[interval] = padded_data(interval)
            for j in seen.get(enc.update(block), ()):
                if abs(j - interval) <= TOLERANCE_INTERVALS:
                    found += 1
    return found


def _naive_lookup(keys: np.ndarray, seen: dict[bytes, list[int]]) -> int:
    found = 0
    for row in keys:
        rpik = rpi_key(row["key"].tobytes())
        start, period = int(row["rolling_start"]), int(row["rolling_period"]) or ROLLING_PERIOD
        for interval in range(start, start + period):
            for j in seen.get(rpi(rpik, interval), ()):
                if abs(j - interval) <= TOLERANCE_INTERVALS:
                    found += 1
    return found


def time_store_load(sightings: np.ndarray) -> float:
    """Seconds to read ``sightings`` back from a fresh SQLite sighting store (written untimed)."""
    import tempfile
    from pathlib import Path

    from bluezone.proximity.store import SightingStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "benchmark.db"
        with SightingStore.open(path) as store:
            store.add_sightings(sightings)
        t0 = time.perf_counter()
        with SightingStore.open(path) as store:
            loaded = store.sightings()
        seconds = time.perf_counter() - t0
    if len(loaded) != len(sightings):
        raise RuntimeError(f"store returned {len(loaded)} of {len(sightings)} sightings")
    return seconds


def run_benchmark(
    n_keys: int,
    n_sightings: int,
    seed: int = 0,
    naive_sample: int = 200,
    with_store: bool = False,
    repeats: int = 3,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Time the matcher end to end over an in-memory array; ``with_store`` also times SQLite loading.

    Matcher and baselines are each timed ``repeats`` times, alternating, and the medians are
    reported, so that a burst of load from other processes does not decide the ratio.
    ``progress``, if given, is told what is being timed.
    """
    check_fits(n_keys, n_sightings, available_memory())
    jobs = min(jobs, available_cores())  # as match caps them: the result says how many ran
    say = progress or (lambda _text: None)
    say(f"making {n_keys:,} keys and {n_sightings:,} sightings")
    keys, sightings, planted = synthetic_data(n_keys, n_sightings, seed)
    # Baseline: its sighting dict is built outside the timing (it only favours the baseline).
    seen: dict[bytes, list[int]] = {}
    intervals = (np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS).tolist()
    for row, value in enumerate(sightings["rpi"].tolist()):
        seen.setdefault(value, []).append(intervals[row])
    sample = keys[: max(1, min(naive_sample, n_keys))]

    index_times, match_times, naive_times, reasonable_times, one_job_times = [], [], [], [], []
    for repeat in range(max(1, repeats)):
        say(f"timing, round {repeat + 1} of {max(1, repeats)}")
        t0 = time.perf_counter()
        index = SightingIndex(sightings)
        t1 = time.perf_counter()
        matches = match(keys, index, jobs=jobs)
        windows = exposure_windows(keys, matches)
        t2 = time.perf_counter()
        _naive_lookup(sample, seen)
        t3 = time.perf_counter()
        _reasonable_naive_lookup(sample, seen)
        t4 = time.perf_counter()
        if jobs > 1:
            one = match(keys, index)
            exposure_windows(keys, one)
            one_job_times.append(time.perf_counter() - t4 + (t1 - t0))
            if not np.array_equal(one, matches):
                raise RuntimeError(f"matcher with {jobs} jobs differs from one process")
        del index
        index_times.append(t1 - t0)
        match_times.append(t2 - t1)
        naive_times.append(t3 - t2)
        reasonable_times.append(t4 - t3)

    seconds = statistics.median(i + m for i, m in zip(index_times, match_times))
    rate = n_keys / seconds if seconds > 0 else float("inf")
    naive_rate = len(sample) / statistics.median(naive_times)
    reasonable_rate = len(sample) / statistics.median(reasonable_times)
    one_job_rate = n_keys / statistics.median(one_job_times) if one_job_times else None
    if with_store:
        say("timing the SQLite store")
    load = time_store_load(sightings) if with_store else None
    return BenchmarkResult(
        keys=n_keys,
        sightings=n_sightings,
        seed=seed,
        keys_per_second=round(rate, 1),
        seconds=round(seconds, 4),
        index_seconds=round(statistics.median(index_times), 4),
        match_seconds=round(statistics.median(match_times), 4),
        matches=len(matches),
        windows=len(windows),
        planted_keys=planted,
        naive_sample_keys=len(sample),
        naive_keys_per_second=round(naive_rate, 1),
        speedup_vs_naive=round(rate / naive_rate, 1),
        reasonable_naive_keys_per_second=round(reasonable_rate, 1),
        speedup_vs_reasonable_naive=round(rate / reasonable_rate, 2),
        jobs=jobs,
        cores=available_cores(),
        keys_per_second_one_job=None if one_job_rate is None else round(one_job_rate, 1),
        speedup_vs_one_job=None if one_job_rate is None else round(rate / one_job_rate, 2),
        repeats=max(1, repeats),
        store_load_seconds=None if load is None else round(load, 4),
        keys_per_second_with_store=None if load is None else round(n_keys / (seconds + load), 1),
        derivation=derivation_path(),
    )


def derive_rate(n_keys: int, seed: int = 0) -> float:
    """Keys/s of ``rpis_for_keys`` alone (for docs/benchmarks.md)."""
    rng = np.random.default_rng(seed)
    teks = np.frombuffer(rng.bytes(16 * n_keys), np.uint8).reshape(n_keys, 16)
    starts = rng.integers(0, 14, n_keys) * ROLLING_PERIOD + 2_940_000
    t = time.perf_counter()
    rpis_for_keys(teks, starts)
    return n_keys / (time.perf_counter() - t)
