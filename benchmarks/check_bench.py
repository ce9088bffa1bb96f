"""``bluezone check`` end to end on the largest real daily package, as a user runs it.

    .venv/bin/python benchmarks/check_bench.py [--keys 358105] [--sightings 1000000] [--per-rpi 1]
        [--jobs 1 2] [--repeat 3] [--baseline-src DIR] [--json]

Makes (untimed, cached in ``--workdir``) a signed GAEN export zip of ``--keys`` random
diagnosis keys spread over 14 days (358,105 is the largest real daily package, a CWA day)
and a busy 14-day sighting store of ``--sightings`` adverts (a million: about 50 phones
around all day, every day), with a few encounters planted so that matches are found.  With
``--per-rpi 1`` (the default) every sighting has an RPI of its own: the worst case for reading the
store's distinct RPIs and for the pre-filter.  A real store hears each RPI about 100 times (a phone
advertises one for 10-20 minutes): ``--per-rpi 100`` gives each RPI that many sightings, five
phones' RPIs interleaved at a time (about 10 minutes per RPI at a million sightings in 14 days).
Then runs ``bluezone check --keys ZIP --db STORE --json --jobs J`` as a fresh process for
each ``--jobs`` value, alternating, ``--repeat`` times, and reports the median wall time
and the peak resident memory of the check (``ru_maxrss`` of the child).  Each check's
output must report the planted exposures, so a fast wrong answer cannot pass.

``--baseline-src DIR [DIR ...]`` (directories each holding an older ``bluezone/`` package, e.g. from
``git archive <commit> bluezone | tar -x -C DIR``) adds each version's ``bluezone check`` (with its
own default ``--jobs``, if it has one) to the alternation, on a store written by that version.
``--baseline-jobs J [J ...]`` runs each baseline with each ``--jobs J`` instead (a version that has the
option), so that old and new are compared at the same number of jobs.

Every version's modules are compiled to bytecode first (``compileall``), as an installed package's
are: with ``PYTHONDONTWRITEBYTECODE`` set, a ``git archive`` copy (or a file edited since its last
import) would otherwise be compiled again by every check, 0.1-0.2 s that no user pays.
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

ROOT = Path(__file__).resolve().parent.parent


PHONES = 5  # phones heard at once in a --per-rpi store


def make_inputs(workdir: Path, n_keys: int, n_sightings: int, seed: int, per_rpi: int = 1) -> tuple[Path, Path, int]:
    """(export zip, store, planted keys), made once per (keys, sightings, seed, per_rpi)."""
    import numpy as np

    from bluezone.matching.benchmark import synthetic_data
    from bluezone.proximity.store import SCHEMA_VERSION

    # the 14 days up to tomorrow's UTC midnight (today's key and sightings included): `check` purges
    # the store at the wall clock (6d24320), so data from 14 days before today's midnight would lose the
    # hours of its first day already past 14 days, a planted exposure among them, and the first check
    # would delete rows the next runs then miss
    today = int(time.time()) // 86400 * 86400 + 86400
    zip_path = workdir / f"keys-{n_keys}-{seed}-{today}.zip"
    # the schema in the name: opening a store migrates it, and an older bluezone refuses it then
    repeats = f"-x{per_rpi}" if per_rpi > 1 else ""
    db_path = workdir / f"store-{n_sightings}{repeats}-{n_keys}-{seed}-{today}-v{SCHEMA_VERSION}.db"
    keys, sightings, planted = synthetic_data(n_keys, n_sightings, seed, planted=20, end_time=today)
    if per_rpi > 1:
        # every unplanted sighting (each has an RPI of its own) takes the RPI of one of PHONES phones
        # heard in turn, a new one every per_rpi of its sightings
        _, first, counts = np.unique(sightings["rpi"], return_index=True, return_counts=True)
        free = np.sort(first[counts == 1])
        phone_rpi = (np.arange(len(free)) // (per_rpi * PHONES)) * PHONES + np.arange(len(free)) % PHONES
        pool = np.frombuffer(np.random.default_rng(seed + 1).bytes(16 * (int(phone_rpi.max()) + 1)), "V16")
        sightings["rpi"][free] = pool[phone_rpi]
    if not zip_path.exists():
        from bluezone.keyformat.export import signed_export_zip
        from bluezone.server.signing import keygen

        signer = keygen(workdir / "signing", force=True)
        zip_path.write_bytes(signed_export_zip(keys, signer.private_key, signer.info, region="VN"))
    if not db_path.exists():
        from bluezone.proximity.store import SightingStore

        with SightingStore.open(db_path) as store:
            store.add_sightings(sightings)
    return zip_path, db_path, planted


BASELINE = 0  # --jobs values <= BASELINE stand for baseline versions (0: the first, -1: the second, ...)
#: Where the checks run: `python -m` and `-c` put the working directory first on sys.path, so from a
#: checkout they would import its bluezone/ ahead of --baseline-src's.
NEUTRAL = tempfile.gettempdir()


#: ``--jobs`` given to each baseline variant (absent: the version's own default).
BASELINE_JOBS: dict[int, int] = {}


def _command(zip_path: Path, db_path: Path, jobs: int) -> list[str]:
    cmd = [sys.executable, "-m", "bluezone.cli", "check", "--keys", str(zip_path), "--db", str(db_path), "--json"]
    if jobs <= BASELINE:
        return cmd if jobs not in BASELINE_JOBS else [*cmd, "--jobs", str(BASELINE_JOBS[jobs])]
    return [*cmd, "--jobs", str(jobs)]


def _env(jobs: int, baseline: Path | None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(baseline)} if jobs <= BASELINE and baseline else dict(os.environ)


def baseline_store(db_path: Path, baseline: Path) -> Path:
    """The same sightings in a store written by the baseline version (it may refuse newer schemas)."""
    old = db_path.with_name(f"baseline-{baseline.name}-{db_path.name}")
    if not old.exists():
        rows = old.with_suffix(".npy")
        read = (
            "import numpy; from bluezone.proximity.store import SightingStore;"
            f"s = SightingStore.open({str(db_path)!r}); numpy.save({str(rows)!r}, s.sightings()); s.close()"
        )
        write = (
            "import numpy; from bluezone.proximity.store import SightingStore;"
            f"s = SightingStore.open({str(old)!r}); s.add_sightings(numpy.load({str(rows)!r})); s.close()"
        )
        subprocess.run([sys.executable, "-c", read], check=True, cwd=NEUTRAL)
        subprocess.run([sys.executable, "-c", write], check=True, env=_env(BASELINE, baseline), cwd=NEUTRAL)
        rows.unlink()
    return old


def compile_sources(*packages: Path) -> None:
    """Byte-compile each ``bluezone/`` package as installing it would (quietly; written even with
    ``PYTHONDONTWRITEBYTECODE``), so that no timed check compiles a module."""
    import compileall

    for package in packages:
        if not compileall.compile_dir(str(package), quiet=1):
            raise SystemExit(f"could not compile {package}")


def imported_package() -> Path:
    """The ``bluezone/`` a check without ``--baseline-src`` imports (run from ``NEUTRAL``)."""
    out = subprocess.run(
        [sys.executable, "-c", "import bluezone, os; print(os.path.dirname(bluezone.__file__))"],
        capture_output=True, text=True, check=True, cwd=NEUTRAL,
    )
    return Path(out.stdout.strip())


def run_check(zip_path: Path, db_path: Path, jobs: int, baseline: Path | None = None) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds with its workers, JSON report) of one ``bluezone check`` process.
    A one-process check's wall time near its CPU time says a core was free for it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        _command(zip_path, db_path, jobs), capture_output=True, text=True, env=_env(jobs, baseline), cwd=NEUTRAL
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"bluezone check failed ({out.returncode}): {out.stderr.strip()}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu, json.loads(out.stdout)


def _at_least_one(text: str) -> int:
    """An argparse type: a count of 1 or more (--repeat 0 made the inputs, then failed on no times)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=_at_least_one, default=358_105)
    parser.add_argument("--sightings", type=_at_least_one, default=1_000_000)
    parser.add_argument("--per-rpi", type=_at_least_one, default=1, help="sightings per RPI (1: every RPI heard once)")
    parser.add_argument("--jobs", type=_at_least_one, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=_at_least_one, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bluezone-check-bench")
    parser.add_argument("--baseline-src", type=Path, nargs="+", default=[], help="directories each holding an older bluezone/")
    parser.add_argument("--baseline-jobs", type=int, nargs="+", default=[], help="run each baseline with each of these --jobs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    zip_path, db_path, planted = make_inputs(args.workdir, args.keys, args.sightings, args.seed, args.per_rpi)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    pairs = [(src.resolve(), j) for src in args.baseline_src for j in (args.baseline_jobs or [None])]
    baselines = {BASELINE - i: src for i, (src, _) in enumerate(pairs)}
    BASELINE_JOBS.update({BASELINE - i: j for i, (_, j) in enumerate(pairs) if j is not None})
    variants = [*baselines, *args.jobs]
    compile_sources(imported_package(), *(src / "bluezone" for src in set(baselines.values())))
    stores = {j: db_path for j in args.jobs}
    for j, src in baselines.items():
        stores[j] = baseline_store(db_path, src)
    times: dict[int, list[float]] = {j: [] for j in variants}
    cpu: dict[int, list[float]] = {j: [] for j in variants}
    for _ in range(args.repeat):
        for jobs in variants:  # alternating, so load from elsewhere falls on all alike
            seconds, used, report = run_check(zip_path, stores[jobs], jobs, baselines.get(jobs))
            keys_matched = {e["key_index"] for e in report["exposures"]}
            if len(keys_matched) != planted:
                raise SystemExit(f"check found {len(keys_matched)} of {planted} planted exposures")
            times[jobs].append(seconds)
            cpu[jobs].append(used)
    name = {
        j: (f"baseline {baselines[j].name}" + (f" jobs={BASELINE_JOBS[j]}" if j in BASELINE_JOBS else "")) if j in baselines else f"jobs={j}"
        for j in variants
    }
    medians = {j: statistics.median(ts) for j, ts in times.items()}
    result: dict[str, object] = {
        "keys": args.keys,
        "sightings": args.sightings,
        "sightings_per_rpi": args.per_rpi,
        "zip_bytes": zip_path.stat().st_size,
        "baselines": [str(src) for src in baselines.values()],
        "runs": {name[j]: [round(t, 3) for t in ts] for j, ts in times.items()},
        "median_seconds": {name[j]: round(m, 3) for j, m in medians.items()},
        "median_cpu_seconds": {name[j]: round(statistics.median(cpu[j]), 3) for j in variants},
        "peak_rss_mb": {name[j]: round(_peak_of(zip_path, stores[j], j, baselines.get(j)), 1) for j in variants},
        "cores": len(os.sched_getaffinity(0)),
        "load_average_start_end": [load_at_start, [round(x, 2) for x in os.getloadavg()]],
    }
    for reference in [*baselines, variants[len(baselines)]]:
        result[f"speedup_vs_{name[reference]}"] = {name[j]: round(medians[reference] / m, 2) for j, m in medians.items()}
    print(json.dumps(result, indent=None if args.json else 2))


def _peak_of(zip_path: Path, db_path: Path, jobs: int, baseline: Path | None) -> float:
    """Peak RSS (MB) of the largest process of one check with ``jobs`` (ru_maxrss is a running
    maximum over waited-for descendants, so each is measured under a wrapper of its own)."""
    code = (
        "import resource, subprocess;"
        f"subprocess.run({_command(zip_path, db_path, jobs)!r}, capture_output=True, check=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env(jobs, baseline), cwd=NEUTRAL
    )
    return int(out.stdout.strip()) / 1024


if __name__ == "__main__":
    main()
