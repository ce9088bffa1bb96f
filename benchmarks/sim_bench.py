"""Simulator figures for docs/benchmarks.md: the vectorised engine beside real daemons, same run.

    .venv/bin/python benchmarks/sim_bench.py [--scenario simulations/classroom.toml]
        [--minutes 10] [--repeat 3] [--seed 1] [--engine-store sqlite|memory] [--json]
    .venv/bin/python benchmarks/sim_bench.py --aem-baseline --scenario simulations/market.toml
        [--minutes 30] [--repeat 5] [--json]

Both sides simulate the same crowd (the engine's own mobility and device draw for the
seed) for the same minutes, and report phone-minutes per wall second and sightings per
wall second (medians of ``--repeat`` alternating runs; the machine is shared):

- engine: ``bluezone.sim.engine.run`` with a real SQLite store per phone (``--engine-store
  memory``: the numpy stores big crowds use), every phone an uploader so that every
  advert heard is stored, and scanning made continuous so it hears what the daemons hear.
- baseline: one real asyncio ``Daemon`` and SQLite store per phone on the per-advert
  emulated ``Air`` (``bluezone.proximity.emulation``) with the simulator's radio model
  (``bluezone.sim.airchannel.ScenarioChannel``); positions are the engine's, computed
  before the timing (which favours the baseline), sampled at the Air's 1 s ticks.  Then,
  as the engine does, every phone matches its store against every other phone's keys and
  every registered scorer scores each window.

Two ratios: end to end (both sides through matching and scoring) and the radio phase
alone (the engine's steps loop, i.e. its time minus its check, timed by wrapping
``engine._check`` in this process; the daemons' run).

``--aem-baseline`` times the engine's check phase alone on the scenario as written (its own
uploaders and scanning; e.g. the 1,000-person market), no daemons: one run, whose check is
repeated on the same stores alternately as the code stands and with one ``aem()`` (an AES-CTR
context) per matched sighting in place of ``decrypt_aems`` (issue 17's baseline, the matcher
before ef00082), wall and CPU seconds, and checks that both give every pair the same score.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from bluezone.crypto.derivation import aem
from bluezone.crypto.keys import aem_key
from bluezone.keyformat.keys import keys_from_daily
from bluezone.matching import matcher
from bluezone.matching.matcher import find_exposures
from bluezone.matching.scoring import get_scorer, scorer_names
from bluezone.progress import terminal_progress
from bluezone.proximity.emulation import run_emulated
from bluezone.proximity.store import SightingStore
from bluezone.sim import engine
from bluezone.sim.airchannel import ScenarioChannel
from bluezone.sim.scenario import CARRIAGES, Scanning, Scenario, load_scenario
from bluezone.sim.streams import streams

FAR_M = 1e6  # absent phones are parked this far apart: out of everyone's range, each other's too

ROOT = Path(__file__).resolve().parent.parent


def bench_scenario(path: Path, minutes: float) -> Scenario:
    """The scenario with every phone uploading and continuous scanning, for ``minutes``."""
    s = load_scenario(path)
    return s.with_overrides(
        duration_min=minutes,
        devices=replace(s.devices, positives="all"),
        scanning=Scanning(s.scanning.interval_s, s.scanning.interval_s),
    )


def crowd_tracks(scenario: Scenario, seed: int) -> tuple[dict[str, Callable[[float], tuple[float, float]]], list[str]]:
    """Per phone, its position as a function of Unix time (the engine's crowd), and its carriage."""
    crowd, devices = engine.people(scenario, streams(seed))  # engine.run's crowd and phones for the seed
    steps, dt = scenario.steps, scenario.step_s
    n = len(devices.person)
    parked = np.c_[FAR_M * (1 + np.arange(n)), np.zeros(n)]
    table = np.empty((steps, n, 2))
    for i in range(steps):
        pos, _, present = crowd.step(i * dt)
        p = pos[devices.person].copy()
        away = ~present[devices.person]
        p[away] = parked[away]
        table[i] = p

    def track(j: int) -> Callable[[float], tuple[float, float]]:
        def at(t: float) -> tuple[float, float]:
            i = min(max(int((t - scenario.start) / dt), 0), steps - 1)
            return (float(table[i, j, 0]), float(table[i, j, 1]))

        return at

    names = [f"p{j:03d}" for j in range(len(devices.person))]
    carriage = [CARRIAGES[c] for c in devices.carriage.tolist()]
    return {name: track(j) for j, name in enumerate(names)}, carriage


Timing = tuple[float, float, int, int]  # (total seconds, check seconds, phones, sightings)


def run_engine(scenario: Scenario, seed: int, store: str = "sqlite") -> Timing:
    """One engine run, its check (matching + scoring) timed apart."""
    check_seconds: list[float] = []
    original = engine._check

    def timed_check(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            check_seconds.append(time.perf_counter() - t)

    engine._check = timed_check  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        result = engine.run(scenario, seed, store=store)
        total = time.perf_counter() - t0
    finally:
        engine._check = original  # type: ignore[assignment]
    return total, sum(check_seconds), len(result.devices.person), result.sightings


def check_stores(paths: dict[str, Path]) -> int:
    """Every phone against every other phone's keys, every scorer on each window (as the engine)."""
    stores = {name: SightingStore.open(p) for name, p in paths.items()}
    try:
        own = {name: keys_from_daily(s.daily_keys()) for name, s in stores.items()}
        judges = [get_scorer(n) for n in scorer_names()]
        windows = 0
        for name, store in stores.items():
            keys = np.concatenate([k for other, k in own.items() if other != name])
            for w in find_exposures(keys, store.sightings()):
                windows += 1
                for judge in judges:
                    judge.score(w)
        return windows
    finally:
        for s in stores.values():
            s.close()


def run_daemons(scenario: Scenario, seed: int, db_dir: Path) -> Timing:
    """The same crowd through real daemons on the emulated air, then the same check."""
    tracks, carriage = crowd_tracks(scenario, seed)
    channel = ScenarioChannel(scenario.radio, carriage=carriage, walls=scenario.space.walls, seed=seed)
    t0 = time.perf_counter()
    paths = run_emulated(tracks, db_dir, scenario.start, scenario.duration_min * 60.0, seed=seed, channel=channel)
    t1 = time.perf_counter()
    check_stores(paths)
    t2 = time.perf_counter()
    total = 0
    for p in paths.values():
        with SightingStore.open(p) as store:
            total += store.count_sightings()
    return t2 - t0, t2 - t1, len(tracks), total


def aem_per_sighting(teks: np.ndarray, key_rows: np.ndarray, rpis: np.ndarray, aems: np.ndarray) -> np.ndarray:
    """``decrypt_aems``'s answer the way the matcher found it before ef00082: an AES-CTR context
    (``aem()``) per matched sighting, each key's AEMK derived once."""
    teks = np.asarray(teks, np.uint8).reshape(-1, 16)
    rpi_bytes, aem_bytes = np.ascontiguousarray(rpis, np.uint8).tobytes(), np.ascontiguousarray(aems, np.uint8).tobytes()
    out = bytearray()
    aemks: dict[int, bytes] = {}
    for i, k in enumerate(np.asarray(key_rows).tolist()):
        if k not in aemks:
            aemks[k] = aem_key(teks[k].tobytes())
        out += aem(aemks[k], rpi_bytes[16 * i : 16 * i + 16], aem_bytes[4 * i : 4 * i + 4])
    return np.frombuffer(bytes(out), np.uint8).reshape(-1, 4)


def check_vs_aem(scenario: Scenario, seed: int, repeat: int) -> dict[str, object]:
    """One engine run; its check phase run ``repeat`` times each way on the same stores, alternating."""
    timings: dict[str, list[tuple[float, float]]] = {"bulk": [], "aem": []}
    scores: dict[str, object] = {}
    matched: list[int] = []
    original_check, bulk = engine._check, matcher.decrypt_aems

    def counting(teks: np.ndarray, key_rows: np.ndarray, rpis: np.ndarray, aems: np.ndarray) -> np.ndarray:
        matched.append(len(key_rows))
        return aem_per_sighting(teks, key_rows, rpis, aems)

    def both_ways(*args, **kwargs):  # type: ignore[no-untyped-def]
        for _ in range(repeat):
            for way, decrypt in (("bulk", bulk), ("aem", counting)):
                matcher.decrypt_aems = decrypt  # type: ignore[assignment]
                t, c = time.perf_counter(), time.process_time()
                try:
                    scores[way] = original_check(*args, **kwargs)
                finally:
                    timings[way].append((time.perf_counter() - t, time.process_time() - c))
                    matcher.decrypt_aems = bulk  # type: ignore[assignment]
        return scores["bulk"]

    engine._check = both_ways  # type: ignore[assignment]
    try:
        result = engine.run(scenario, seed)
    finally:
        engine._check = original_check  # type: ignore[assignment]

    def med(way: str, part: int) -> float:
        return statistics.median(r[part] for r in timings[way])

    return {
        "scenario": scenario.name,
        "people": scenario.people,
        "phones": len(result.devices.person),
        "uploaders": len(result.senders),
        "minutes": scenario.duration_min,
        "seed": seed,
        "repeat": repeat,
        "sightings": result.sightings,
        "matched_sightings": sum(matched) // repeat,
        "pair_scores": sum(len(v) for v in result.scores.values()),  # pairs x scorers
        "same_scores": scores["bulk"] == scores["aem"],
        "check_seconds": [round(r[0], 3) for r in timings["bulk"]],
        "check_cpu_seconds": [round(r[1], 3) for r in timings["bulk"]],
        "aem_check_seconds": [round(r[0], 3) for r in timings["aem"]],
        "aem_check_cpu_seconds": [round(r[1], 3) for r in timings["aem"]],
        "check_speedup_vs_aem_per_sighting": med("aem", 0) / med("bulk", 0),
        "check_cpu_speedup_vs_aem_per_sighting": med("aem", 1) / med("bulk", 1),
    }


def report(res: dict[str, object], as_json: bool) -> dict[str, object]:
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return res


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=ROOT / "simulations" / "classroom.toml")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--engine-store", choices=["sqlite", "memory"], default="sqlite", help="the engine's stores (daemons: SQLite)"
    )
    ap.add_argument("--aem-baseline", action="store_true", help="the check phase of the scenario as written beside aem() per sighting")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.aem_baseline:
        as_written = load_scenario(args.scenario).with_overrides(duration_min=args.minutes)
        return report(check_vs_aem(as_written, args.seed, max(1, args.repeat)), args.json)
    scenario = bench_scenario(args.scenario, args.minutes)
    eng: list[Timing] = []
    base: list[Timing] = []
    runs = max(1, args.repeat)
    start = f"sim_bench: {scenario.name}, {args.minutes:g} min, engine and daemons x {runs} (minutes)"
    with tempfile.TemporaryDirectory() as d, terminal_progress(start) as progress:
        for i in range(runs):  # alternate, so a burst of load hits both
            if progress:
                progress("engine and daemons, alternating", i / runs)
            eng.append(run_engine(scenario, args.seed, args.engine_store))
            base.append(run_daemons(scenario, args.seed, Path(d) / f"run{i}"))
        if progress:
            progress("engine and daemons, alternating", 1.0)
    phones, pm = eng[0][2], eng[0][2] * args.minutes

    def med(runs: list[Timing], radio_only: bool) -> float:
        return statistics.median(r[0] - r[1] if radio_only else r[0] for r in runs)

    res: dict[str, object] = {
        "scenario": scenario.name,
        "people": scenario.people,
        "phones": phones,
        "minutes": args.minutes,
        "seed": args.seed,
        "repeat": len(eng),
        "engine_store": args.engine_store,
        "engine_seconds": [round(r[0], 2) for r in eng],
        "engine_check_seconds": [round(r[1], 2) for r in eng],
        "engine_sightings": eng[0][3],
        "daemons_seconds": [round(r[0], 2) for r in base],
        "daemons_check_seconds": [round(r[1], 2) for r in base],
        "daemons_sightings": base[0][3],
        "daemons_phones": base[0][2],  # the same crowd: equal to phones
        "engine_phone_minutes_per_s": pm / med(eng, False),
        "daemons_phone_minutes_per_s": pm / med(base, False),
        "speedup_end_to_end": med(base, False) / med(eng, False),
        "engine_radio_phone_minutes_per_s": pm / med(eng, True),
        "daemons_radio_phone_minutes_per_s": pm / med(base, True),
        "speedup_radio_phase": med(base, True) / med(eng, True),
        "engine_radio_sightings_per_s": statistics.median(r[3] / (r[0] - r[1]) for r in eng),
        "daemons_radio_sightings_per_s": statistics.median(r[3] / (r[0] - r[1]) for r in base),
    }
    return report(res, args.json)


if __name__ == "__main__":
    main()
