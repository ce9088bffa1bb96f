"""Smoke tests: the benchmark scripts run on tiny inputs and report their same-run baselines.

No timing assertions: only that both sides did the same work and every ratio is there.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def positive(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_proximity_bench_reports_naive_write_and_load(capsys) -> None:  # type: ignore[no-untyped-def]
    res = load("proximity_bench").main(
        ["--rows", "3000", "--repeat", "1", "--naive-rows", "200", "--naive-load-rows", "500", "--emulated-seconds", "5", "--json"]
    )
    assert res["naive_insert_rows"] == 200 and res["naive_load_rows"] == 500
    for k in ("insert_speedup_vs_naive", "load_speedup_vs_naive", "naive_insert_rows_per_s", "naive_load_rows_per_s"):
        assert positive(res[k]), k
    assert '"load_speedup_vs_naive"' in capsys.readouterr().out
    # the daemon's ingest with the RPI budget beside the same without; a flood of 3,000 new RPIs in 30 s
    assert positive(res["ingest_budget_ratio"]) and positive(res["flood_budget_ratio"]) and positive(res["crowd_budget_ratio"])
    assert res["ingest_rows_stored"] == res["ingest_without_budget_rows_stored"] == 3000
    assert res["crowd_rows_stored"] == res["crowd_without_budget_rows_stored"] == 3000
    assert res["flood_without_budget_rows_stored"] == 3000 and res["flood_rows_stored"] == 500  # heard once: half of 1,000


def test_naive_load_reads_what_the_store_holds(tmp_path: Path) -> None:
    bench = load("proximity_bench")
    rows = bench.random_rows(50, seed=3)
    with bench.SightingStore.open(tmp_path / "s.db") as store:
        bench.naive_insert(store, rows)
        objs = bench.naive_load(store, 100)
        back = store.sightings()
    assert len(objs) == 50 and [o.rpi for o in objs] == back["rpi"].tolist()
    assert all(o.tx_power is None for o in objs)  # NO_TX_POWER is stored as NULL, as add_sightings does


def test_sim_bench_same_crowd_both_ways(capsys) -> None:  # type: ignore[no-untyped-def]
    res = load("sim_bench").main(["--minutes", "0.2", "--repeat", "1", "--json"])
    assert res["phones"] > 2 and res["engine_sightings"] > 0 and res["daemons_sightings"] > 0
    for k in ("speedup_end_to_end", "speedup_radio_phase", "engine_phone_minutes_per_s", "daemons_phone_minutes_per_s"):
        assert positive(res[k]), k
    capsys.readouterr()


def test_sim_bench_daemons_walk_the_engines_crowd() -> None:
    """The daemons' phones are engine.run's for the seed, where it puts them: with one random
    generator for the whole run (before the streams of bluezone/sim/streams.py) the benchmark drew
    its own crowd, another one since (25 phones against the engine's 28 at seed 1)."""
    from bluezone.sim import engine

    bench = load("sim_bench")
    scenario = bench.bench_scenario(bench.ROOT / "simulations" / "classroom.toml", 6.0)
    tracks, carriage = bench.crowd_tracks(scenario, 1)
    run = engine.run(scenario, 1, store="memory")
    assert len(tracks) == len(run.devices.person) == len(carriage)
    assert carriage == [bench.CARRIAGES[c] for c in run.devices.carriage.tolist()]
    compared = 0
    for snap in run.scene["snapshots"]:
        where = np.array([track(scenario.start + snap["t"]) for track in tracks.values()])
        here = where[:, 0] < bench.FAR_M  # present; the absent are parked far apart
        np.testing.assert_array_equal(where[here], snap["pos"][snap["device_person"]][here])
        compared += int(here.sum())
    assert compared > len(tracks)


def test_sim_bench_check_phase_beside_aem_per_sighting(capsys) -> None:  # type: ignore[no-untyped-def]
    res = load("sim_bench").main(["--aem-baseline", "--minutes", "1", "--repeat", "1", "--json"])
    assert res["same_scores"] is True and res["matched_sightings"] > 0 and res["pair_scores"] > 0
    assert len(res["check_seconds"]) == len(res["aem_check_seconds"]) == 1
    for k in ("check_speedup_vs_aem_per_sighting", "check_cpu_speedup_vs_aem_per_sighting"):
        assert positive(res[k]), k
    capsys.readouterr()


def test_sim_bench_aem_baseline_decrypts_as_decrypt_aems() -> None:
    from bluezone.crypto.derivation import decrypt_aems

    rng = np.random.default_rng(4)
    teks = rng.integers(0, 256, (5, 16), dtype=np.uint8)
    rows = rng.integers(0, 5, 300)
    rpis = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    rpis[1::3] = rpis[::3][: len(rpis[1::3])]  # the same RPI heard again
    aems = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    want = decrypt_aems(teks, rows, rpis, aems)
    assert np.array_equal(load("sim_bench").aem_per_sighting(teks, rows, rpis, aems), want)


def test_sim_bench_parks_absent_phones_apart() -> None:
    bench = load("sim_bench")
    scenario = bench.bench_scenario(bench.ROOT / "simulations" / "classroom.toml", 0.5)
    tracks, carriage = bench.crowd_tracks(scenario, 1)
    assert len(tracks) == len(carriage) and set(carriage) <= set(bench.CARRIAGES)
    at_start = [f(scenario.start) for f in tracks.values()]
    assert len(set(at_start)) == len(at_start)  # nobody shares a spot, parked or not
    assert scenario.devices.positives == "all" and scenario.scanning.window_s == scenario.scanning.interval_s


def test_server_benchmark_reports_baselines() -> None:
    from bluezone.server.benchmark import run_benchmark

    res = run_benchmark(None, uploads=2, export_keys=300, repeat=1)
    assert len(res["uploads_per_second_new_connection_runs"]) == 1
    assert len(res["uploads_per_second_new_client_runs"]) == 1
    for k in ("keepalive_speedup_vs_new_connection", "keepalive_speedup_vs_new_client", "export_vs_sign_zip_floor"):
        assert positive(res[k]), k
    assert res["export_keys"] == 300


def test_bluezone3_bench_finds_what_the_apps_walk_finds(capsys) -> None:  # type: ignore[no-untyped-def]
    res = load("bluezone3_bench").main(["--entries", "30", "--sightings", "3000", "--naive-entries", "12", "--repeat", "1", "--json"])
    assert res["same_matches_as_naive_on_sample"] and res["matches"] > 0
    for k in ("entries_per_s", "naive_entries_per_s", "speedup_vs_naive"):
        assert positive(res[k]), k
    capsys.readouterr()


def test_the_benchmark_scripts_show_progress_only_on_a_terminal(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    args = ["--rows", "2000", "--repeat", "1", "--naive-rows", "100", "--naive-load-rows", "100", "--emulated-seconds", "5"]
    load("proximity_bench").main(args)
    assert capsys.readouterr().err == ""  # piped: the figures alone
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    load("proximity_bench").main(args)
    shown = terminal.getvalue()
    assert shown.startswith("proximity_bench: 2,000 rows, 1 repeats")
    for stage in ("store writes", "store loads", "ingest", "six emulated nodes"):
        assert stage in shown


def test_keyfile_bench_loads_the_same_keys_on_both_sides(tmp_path: Path) -> None:
    checkout = BENCHMARKS.parent  # its own bluezone/ as the "older version": same keys, both measured
    res = load("keyfile_bench").main(
        ["--keys", "3000", "--repeat", "1", "--workdir", str(tmp_path), "--baseline-src", str(checkout), "--json"]
    )
    (entry,) = res["results"]
    assert entry["keys"] == 3000 and entry["zip_bytes"] > 3000 * 16
    for side in ("now", "baseline"):
        assert positive(entry["median_seconds"][side]) and positive(entry["peak_rss_mb"][side])
    assert positive(entry["speedup_vs_baseline"]) and positive(entry["peak_ratio_vs_baseline"])


def test_export_bench_runs_both_versions_alternating(tmp_path: Path) -> None:
    import json
    import subprocess

    root = BENCHMARKS.parent  # the checkout stands in for an older version: same work on both sides
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "export_bench.py"), "--keys", "500", "--repeat", "2", "--baseline-src",
         str(root), "--workdir", str(tmp_path), "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    res = json.loads(done.stdout)
    for side in ("baseline", "now"):
        assert len(res[side]["export_seconds_runs"]) == 2 and res[side]["files"] == 14
    for k in ("export_vs_floor", "speedup_vs_baseline", "baseline_export_vs_its_floor", "export_vs_baseline_floor"):
        assert positive(res[k]), k


def test_jobs_bench_accounts_serial_and_parallel_cpu(capsys) -> None:  # type: ignore[no-untyped-def]
    res = load("jobs_bench").main(["--keys", "33000", "--sightings", "4000", "--rounds", "1", "--jobs", "2"])  # forks: >= 2 x MIN_KEYS_PER_JOB
    assert positive(res["wall_one"]) and positive(res["wall_many"]) and positive(res["wall_ratio"])
    assert positive(res["serial_cpu_one"]) and positive(res["parallel_cpu_one"])
    assert 1 < res["amdahl_2"] < 2 and res["amdahl_2"] < res["amdahl_4"] < 4
    assert res["steps_many"]["parallel section"][0] > 0 and res["steps_one"]["parallel section"][0] == 0
    assert "Amdahl bound" in capsys.readouterr().out


def test_check_steps_times_each_step_and_compares_the_answers(tmp_path: Path) -> None:
    import numpy as np

    from bluezone.proximity.sightings import SIGHTING_DTYPE
    from bluezone.proximity.store import SightingStore

    rows = np.zeros(600, SIGHTING_DTYPE)
    rows["time"] = 1_780_488_000.0 + np.arange(600)
    rows["rpi"] = np.repeat(np.frombuffer(np.random.default_rng(0).bytes(16 * 200), "V16"), 3)
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows)
    res = load("check_steps").main(["--db", str(tmp_path / "s.db"), "--repeat", "2", "--json"])
    assert res["rpis"] == [200, 200]
    steps = res["median_seconds"]["now"]
    assert all(positive(float(steps[s])) for s in ("import", "cpu", "wall")), steps
    assert all(0 <= steps[s] < steps["wall"] for s in ("open", "heard_rpis", "intervals_and_count")), steps


def test_check_start_steps_notes_each_step_of_a_check_s_start_in_its_order() -> None:
    """Every step's code still runs (a module renamed or moved breaks it here, not in a session's figures)."""
    steps = load("check_start_steps")
    res = steps.main(["--repeat", "1", "--json"])
    (only,) = res["cpu_ms_median"].values()
    assert list(only) == [steps.FIRST, *(what for what, _ in steps.STEPS)]
    assert all(math.isfinite(ms) and ms >= 0 for ms in only.values()), only
    assert positive(float(only[steps.FIRST])) and positive(float(only["numpy"]))
    assert math.isclose(res["to_the_fork_ms_median"]["this checkout"], sum(list(only.values())[:-1]), abs_tol=0.05)
    assert positive(float(res["interpreter_start_without_site_ms_median"]))


def test_check_timeline_notes_each_step_of_a_check_and_the_floor(tmp_path: Path) -> None:
    zip_path, db_path, _ = load("check_bench").make_inputs(tmp_path, 3000, 5000, seed=1)
    res = load("check_timeline").main(["--keys", str(zip_path), "--db", str(db_path), "--jobs", "1", "2", "--repeat", "1", "--json"])
    for variant in ("jobs=1", "jobs=2"):
        steps = res["timeline_median_seconds"][variant]
        assert 0 < steps["imported"] < steps["key file read"] < steps["exposures"] <= steps["end"], steps
        assert 0 < steps["store read"] < steps["end"], steps
    # one job: the store is read after the file; more: beside it, in a thread
    assert res["timeline_median_seconds"]["jobs=1"]["store read"] > res["timeline_median_seconds"]["jobs=1"]["key file read"]
    floor = res["floor_median_seconds"]
    assert 0 < floor["python -c pass"] < floor["import bluezone.cli, bluezone.matching.check"], floor
    assert "cores_by_step_median" not in res  # sampled only when asked
    # CPU: two jobs start a store thread; the one-thread steps are the start, the tail and the exit
    one, two = res["cpu_ms_by_step_median"]["jobs=1"], res["cpu_ms_by_step_median"]["jobs=2"]
    assert "one thread" not in one and "store thread started" not in one, one
    assert 0 < two["start (to the store thread)"] < two["one thread"] < two["total"], two
    assert two["one thread"] == pytest.approx(
        two["start (to the store thread)"] + two["tail (last key derived to end)"] + two["exit (main thread)"], abs=0.2
    )
    assert 0 < one["exit (main thread)"] and 0 < one["exit wall"], one
    assert 0 < res["speedup_bound_from_cpu"]["jobs=2 over jobs=1"] < 2, res["speedup_bound_from_cpu"]
    # the main thread's own CPU, mark by mark (the early reader's beside it not counted), and the whole wall
    main = res["main_thread_cpu_ms_at_mark_median"]["jobs=1"]
    assert 0 < main["cli imported"] < main["early read started"] < main["imported"] < main["end"] <= one["total"], main
    assert res["wall_median_seconds"]["jobs=1"] > res["timeline_median_seconds"]["jobs=1"]["end"]


def test_the_main_thread_cpu_is_read_once_the_process_has_ended_before_it_is_reaped() -> None:
    timeline = load("check_timeline")
    spin = "import time\nend = time.thread_time() + 0.3\nwhile time.thread_time() < end: pass\n"
    run = timeline._run(["-c", spin])
    # its main thread ran 0.3 s and a little more (the interpreter's start and end), all of it counted
    assert 0.3 <= run.main_thread_cpu <= run.cpu + 1e-5 < 1.0, run  # (getrusage counts whole microseconds)
    assert run.exited > 0 and run.seconds >= run.main_thread_cpu * 0.5, run


def test_check_timeline_samples_how_many_cores_each_step_of_a_check_wants(tmp_path: Path) -> None:
    zip_path, db_path, _ = load("check_bench").make_inputs(tmp_path, 3000, 5000, seed=1)
    args = ["--keys", str(zip_path), "--db", str(db_path), "--jobs", "1", "--repeat", "1", "--sample-ms", "1", "--json"]
    res = load("check_timeline").main(args)
    steps = res["cores_by_step_median"]["jobs=1"]
    assert "imported" in steps and steps["whole check"]["idle_core_seconds"] > 0, steps
    # one job, OpenBLAS held to one thread as the console script holds it: one thread runnable, and a second
    # only beside the imports, while the store's early reader reads (numpy's own OpenBLAS threads spun during
    # the imports before; a third then, or a second later, is a regression)
    # (a step of a few milliseconds, the exit after the end, may sample its one thread only while it waits
    # (on the disk, on a busy machine): 0 runnable then, seen twice at load ~7; the imports always run)
    assert steps["imported"]["wanted_cores"] > 0, steps
    in_order = list(res["timeline_median_seconds"]["jobs=1"])  # one run: each step in the order it ended
    # the steps that may overlap the early read: to its mark, and the next, in which its thread ends (the mark is
    # made as its work returns, before the thread is gone: a sample may still find it runnable)
    read_early = in_order[: in_order.index("early read done") + 2]
    assert all(
        0 <= step["wanted_cores"] <= (2.0 if name in read_early else 1.0) for name, step in steps.items() if name != "whole check"
    ), steps


def test_idle_by_step_counts_the_cores_each_step_left_idle() -> None:
    timeline = load("check_timeline")
    marks = {"_t0": 0.0, "imported": 0.1, "store read": 0.3}
    # one thread runnable to 0.1 s, two from then on, none once the check's own marks end
    samples = [(t / 100, 1 if t < 10 else 2 if t < 30 else 0) for t in range(0, 40)]
    steps = timeline.idle_by_step(marks, samples, cores=2)
    assert steps["imported"] == {"wanted_cores": 1.0, "idle_core_seconds": 0.1}
    assert steps["store read"] == {"wanted_cores": 2.0, "idle_core_seconds": 0.0}
    assert steps["exit (after end)"]["idle_core_seconds"] == 0.18  # 9 samples of 10 ms, the last one has no next


def test_the_timeline_sampler_sees_each_busy_thread_of_a_child_and_of_its_children() -> None:
    timeline = load("check_timeline")
    busy = "import os, threading, time\ndef spin():\n    end = time.time() + 1.5\n    while time.time() < end: pass\n"
    code = busy + "threading.Thread(target=spin).start()\nif os.fork() == 0:\n    spin(); os._exit(0)\nspin(); os.wait()"
    samples = timeline._run(["-c", code], sample_ms=5).samples
    # the parent's two spinning threads and its child's: 3 runnable at most (fewer when sampled
    # as a thread starts or ends), never more
    assert max(n for _, n in samples) == 3 and all(0 <= n <= 3 for _, n in samples), samples


def test_check_workers_times_every_batch_once_in_whichever_process(tmp_path: Path) -> None:
    """Every batch timed once, in whichever process took it.  ``--store-first``: a file this small could be
    read whole before the store (then checked as an array, no batch: the test failed so under load), and
    which process takes which batch is the scheduler's, so only what holds either way is asserted."""
    zip_path, db_path, _ = load("check_bench").make_inputs(tmp_path, 40_000, 5000, seed=1)
    res = load("check_workers").main(["--keys", str(zip_path), "--db", str(db_path), "--repeat", "1", "--store-first", "--json"])
    run = res["runs"]["now"][0]
    # the keys of the file's first piece (64 kB) as a short first batch, then 16,384 keys a batch
    assert run["keys_derived"] == 40_000 and run["worker_batches"] + run["parent_batches"] == 4, run
    if run["worker_batches"]:
        assert 0 < run["worker_first_start"] < run["worker_last_end"] <= run["finished"], run
    assert run["parent_wait_at_end_ms"] >= 0 and run["worker_idle_between_batches_ms"] >= 0, run


def test_check_bench_refuses_counts_below_one_before_making_inputs(tmp_path: Path) -> None:
    """`--repeat 0` made a 358k-key zip and a 1M-sighting store (a minute), then crashed on the median
    of no times; such counts are one usage line now, exit 2, before anything is made."""
    import subprocess

    for args in (["--repeat", "0"], ["--jobs", "1", "0"], ["--per-rpi", "-1"], ["--keys", "0"], ["--repeat", "x"]):
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / "check_bench.py"), *args, "--workdir", str(tmp_path / "w")],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 2 and done.stdout == "", (args, done.stdout, done.stderr)
        assert f"argument {args[0]}: " in done.stderr.splitlines()[-1] and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "w").exists()


def test_verdict_bench_gives_both_trees_the_same_scores(tmp_path: Path) -> None:
    """This tree as its own baseline: every credit timed in both, the same Score hash both ways."""
    root = BENCHMARKS.parent
    res = load("verdict_bench").main(["--windows", "6", "--passes", "1", "--repeat", "1", "--baseline-src", str(root), "--json"])
    assert set(res["same_scores"]) == set(res["ratio_baseline_over_now"]) == {"same@15", "present", "ends", "span (default)"}
    assert all(res["same_scores"].values()), res
    assert all(positive(float(v)) for v in res["trees"]["now"]["us_per_window_median"].values()), res
    import subprocess

    for args in (["--passes", "0"], ["--baseline-src", str(tmp_path)]):
        done = subprocess.run([sys.executable, str(BENCHMARKS / "verdict_bench.py"), *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr


def test_day_reference_bench_answers_every_call_as_the_first_form() -> None:
    res = load("day_reference_bench").main(["--minutes", "3", "--repeat", "1", "--json"])
    assert res["reference_calls"] > 0 and res["windows"] > 0 and res["same_answers"], res
    assert all(positive(float(v)) for v in res["cpu_ms_median"].values()), res


def test_stored_context_bench_gives_both_trees_the_same_exposures() -> None:
    """This tree as its own baseline: a check timed in both, the same exposures both ways."""
    root = BENCHMARKS.parent
    res = load("stored_context_bench").main(
        ["--phones", "3", "--contacts", "4", "--passes", "1", "--repeat", "1", "--baseline-src", str(root), "--json"]
    )
    assert res["windows"] > 0 and res["same_exposures"], res
    assert positive(float(res["trees"]["now"]["check_cpu_s_median"])), res


def test_evaluate_bench_gives_both_trees_the_same_report() -> None:
    """This tree as its own baseline, evaluate's own options passed on: the same report both ways."""
    root = BENCHMARKS.parent
    dataset = root / "tests" / "data" / "datasets" / "ng_small"
    res = load("evaluate_bench").main(
        [str(dataset), "--passes", "1", "--baseline-src", str(root), "--json", "--", "--chains", "20", "--bootstrap", "2"]
    )
    assert res["options"] == ["--chains", "20", "--bootstrap", "2"] and res["same_report"], res
    assert positive(float(res["trees"]["now"]["cpu_s_median"])), res


def test_checked_clock_bench_times_both_trees_in_both_states(tmp_path: Path) -> None:
    """This tree beside itself (a copy of its clock.py): both states reached on both sides, every ratio there."""
    (tmp_path / "bluezone").mkdir()
    (tmp_path / "bluezone" / "clock.py").write_text((BENCHMARKS.parent / "bluezone" / "clock.py").read_text())
    res = load("checked_clock_bench").main(["--baseline-src", str(tmp_path), "--rounds", "1", "--calls", "10"])
    for case in ("believed", "not_believed"):
        assert positive(res[case]["baseline_us"]) and positive(res[case]["now_us"]) and positive(res[case]["ratio"])


def test_check_probe_adds_up_each_function_in_every_process(tmp_path: Path) -> None:
    """Every run's total (the parent and the workers it reaped) holds the compiled derivation's calls, and
    each job count and tree gets its figures.  Which process takes which batch, and whether a file this
    small streams at all, is the scheduler's: only what holds either way is asserted."""
    zip_path, db_path, _ = load("check_bench").make_inputs(tmp_path, 40_000, 5000, seed=1)
    res = load("check_probe").main(
        ["--keys", str(zip_path), "--db", str(db_path), "--jobs", "1", "2", "--repeat", "1", "--baseline-src", str(BENCHMARKS.parent), "--json"]
    )
    assert set(res["median"]) == {"now jobs=1", "now jobs=2", f"{BENCHMARKS.parent.name} jobs=1", f"{BENCHMARKS.parent.name} jobs=2"}
    for variant, figures in res["median"].items():
        total, native = figures["total"], figures["native"]
        assert total["cpu_ms"] > native["cpu_ms"] > 0 and total["faults"] > 0 and native["calls"] >= 1, variant
        assert figures["outside_native"]["cpu_ms"] == pytest.approx(total["cpu_ms"] - native["cpu_ms"], abs=0.2), variant


def test_heard_group_bench_reads_a_store_both_ways_alike(tmp_path: Path) -> None:
    """SQLite's grouping of rpi_days and numpy's of the index give the same RPIs (it stops otherwise), each timed."""
    res = load("heard_group_bench").main(
        ["--per-rpi", "1", "8", "--sightings", "3000", "--repeat", "1", "--workdir", str(tmp_path), "--json"]
    )
    rows = res["by_per_rpi"]
    assert set(rows) == {1, 8} and rows[1]["distinct_rpis"] > rows[8]["distinct_rpis"] > 0, res
    assert all(positive(float(row[way])) for row in rows.values() for way in ("sqlite_ms", "numpy_ms")), res

