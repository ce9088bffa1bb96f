"""The vectorised matcher against hand-built cases and the naive loop."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_helpers import advert_sightings, interval_time, make_keys, noise_sightings

import bluezone.matching.matcher as matcher_module
from bluezone.crypto import rpi, rpi_key
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.matching.benchmark import naive_match_count, synthetic_data
from bluezone.matching.matcher import (
    DEFAULT_TX_POWER,
    SightingIndex,
    exposure_windows,
    find_exposures,
    match,
)
from bluezone.proximity.sightings import SIGHTING_DTYPE, empty_sightings

GOOGLE_TEK = bytes.fromhex("2b714d3ec93c14e5d345003e59027aea")
GOOGLE_START, GOOGLE_PERIOD = 2646801, 89
GOOGLE_RPI = bytes.fromhex("3d37caf51d1bf4ba54e758e0ac74c892")
DATA = Path(__file__).parents[1] / "data" / "vectors"


def random_keys(n: int, start: int, seed: int = 3) -> list[tuple[bytes, int, int]]:
    rng = np.random.default_rng(seed)
    return [(rng.bytes(16), start + int(rng.integers(-200, 200)), int(rng.integers(1, 145))) for _ in range(n)]


def test_google_round_trip_case_constructed() -> None:
    """Google's own case: a sighting of 3d37caf5... at 2646801 matches exactly key 2b714d3e..."""
    assert rpi(rpi_key(GOOGLE_TEK), GOOGLE_START) == GOOGLE_RPI
    rows = random_keys(150, GOOGLE_START)
    rows.insert(77, (GOOGLE_TEK, GOOGLE_START, GOOGLE_PERIOD))
    keys = make_keys(rows)
    seen = advert_sightings(GOOGLE_TEK, GOOGLE_START, [interval_time(GOOGLE_START)])
    assert seen["rpi"][0].tobytes() == GOOGLE_RPI
    store = np.concatenate([noise_sightings(5000, (GOOGLE_START - 300) * 600, (GOOGLE_START + 300) * 600), seen])
    found = match(keys, store)
    assert found["key_index"].tolist() == [77]
    assert found["sighting_index"].tolist() == [len(store) - 1]
    assert found["rpi_interval"].tolist() == [GOOGLE_START]


def test_google_round_trip_case_from_export_file() -> None:
    """The same case through the real export file."""
    from bluezone.keyformat.keyfile import load_keys

    keys = load_keys(DATA / "gaen_export_google_app.bin")
    assert len(keys) == 110
    seen = advert_sightings(GOOGLE_TEK, GOOGLE_START, [interval_time(GOOGLE_START)])
    found = match(keys, seen)
    assert len(found) == 1
    assert keys["key"][found["key_index"][0]].tobytes() == GOOGLE_TEK


@pytest.mark.parametrize(
    ("offset_seconds", "expected"),
    [
        (12 * INTERVAL_SECONDS + 599.9, True),  # last moment of interval i + 12
        (13 * INTERVAL_SECONDS, False),  # first moment of i + 13
        (-12 * INTERVAL_SECONDS, True),  # first moment of i - 12
        (-12 * INTERVAL_SECONDS - 0.1, False),  # last moment of i - 13
        (0, True),
    ],
)
def test_two_hour_tolerance_edges(offset_seconds: float, expected: bool) -> None:
    tek = bytes(range(16))
    start = 2_900_016 + 50  # not at midnight
    i = start + 40
    keys = make_keys([(tek, start, 100)])
    seen = advert_sightings(tek, i, [i * INTERVAL_SECONDS + offset_seconds])
    assert (len(match(keys, seen)) == 1) is expected


@pytest.mark.parametrize(("step", "expected"), [(0, True), (9, True), (10, False), (143, False)])
def test_short_rolling_period(step: int, expected: bool) -> None:
    """A key replaced early (period 10) never sent the RPIs of its later intervals."""
    tek = b"\x11" * 16
    start = 2_900_016 + 7
    keys = make_keys([(tek, start, 10)])
    seen = advert_sightings(tek, start + step, [interval_time(start + step)])
    assert (len(match(keys, seen)) == 1) is expected


def test_period_zero_means_whole_day() -> None:
    tek = b"\x22" * 16
    keys = make_keys([(tek, 2_900_016, 0)])
    seen = advert_sightings(tek, 2_900_016 + 143, [interval_time(2_900_016 + 143)])
    assert len(match(keys, seen)) == 1


def test_keys_whose_window_has_no_sighting_need_no_aes(monkeypatch: pytest.MonkeyPatch) -> None:
    derived: list[int] = []
    real = matcher_module.rpis_passing

    def counting(teks: np.ndarray, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        derived.append(len(teks))
        return real(teks, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matcher_module, "rpis_passing", counting)
    tek = b"\x33" * 16
    far = [(bytes([k]) * 16, 2_900_016 + 144 * k, 144) for k in range(2, 6)]  # days later, no sightings
    keys = make_keys([(tek, 2_900_016, 144), *far])
    seen = advert_sightings(tek, 2_900_020, [interval_time(2_900_020)])
    assert len(match(keys, seen)) == 1
    assert derived == [1]
    derived.clear()
    assert len(match(make_keys(far), seen)) == 0 and derived == []


def test_tx_power_from_aem_and_attenuation() -> None:
    tek = b"\x44" * 16
    i = 2_900_100
    seen = advert_sightings(tek, i, [interval_time(i, s) for s in (0, 61, 122)], rssi=[-70, -75, -80], tx_power=-14)
    keys = make_keys([(tek, 2_900_016, 144)], risk=4)
    found = match(keys, seen)
    assert found["tx_power"].tolist() == [-14] * 3 and found["metadata_ok"].all()
    (window,) = exposure_windows(keys, found, rssi_correction=3)
    assert window.attenuation.tolist() == [-14 - (-70 + 3), -14 - (-75 + 3), -14 - (-80 + 3)]
    assert window.rssi.tolist() == [-70, -75, -80]
    assert not window.tx_power_estimated and window.transmission_risk == 4
    assert window.day == (i * INTERVAL_SECONDS) // DAY_SECONDS * DAY_SECONDS


@pytest.mark.parametrize("metadata", ["40400000", "80f00000", "00f00000", "40c00000"])  # +64 dBm, v2, v0, -64 dBm
def test_implausible_metadata_uses_default_and_flags(metadata: str) -> None:
    tek = b"\x55" * 16
    i = 2_900_100
    seen = advert_sightings(tek, i, [interval_time(i)], rssi=-60, metadata=bytes.fromhex(metadata))
    keys = make_keys([(tek, 2_900_016, 144)])
    found = match(keys, seen)
    assert found["tx_power"].tolist() == [DEFAULT_TX_POWER] and not found["metadata_ok"][0]
    (window,) = exposure_windows(keys, found)
    assert window.tx_power_estimated and window.attenuation.tolist() == [DEFAULT_TX_POWER + 60]


def test_windows_split_per_key_and_utc_day() -> None:
    a, b = b"\x66" * 16, b"\x77" * 16
    day = 2_900_016  # a UTC midnight interval
    last = day + 143
    # key a: seen in its last interval and, within the 2 h tolerance, just after midnight
    seen_a = advert_sightings(a, last, [interval_time(last), (day + 144) * INTERVAL_SECONDS + 100])
    seen_b = advert_sightings(b, day + 5, [interval_time(day + 5)])
    keys = make_keys([(a, day, 144), (b, day, 144)])
    store = np.concatenate([seen_b, seen_a, noise_sightings(300, day * 600, (day + 150) * 600)])
    windows = find_exposures(keys, store)
    assert [(w.key_index, w.day // DAY_SECONDS, len(w)) for w in windows] == [
        (0, day // 144, 1),
        (0, day // 144 + 1, 1),
        (1, day // 144, 1),
    ]


def test_empty_inputs() -> None:
    keys = make_keys([(b"\x01" * 16, 2_900_016, 144)])
    assert len(match(keys, empty_sightings())) == 0
    assert len(match(make_keys([]), noise_sightings(10, 0, 1e9))) == 0
    assert find_exposures(make_keys([]), empty_sightings()) == []
    assert match(keys, empty_sightings()).dtype == matcher_module.MATCH_DTYPE


def test_same_as_naive_loop_on_synthetic_store() -> None:
    keys, sightings, planted = synthetic_data(300, 20_000, seed=5)
    found = match(keys, sightings)
    assert planted > 0 and len(found) == naive_match_count(keys, sightings) == planted * 15
    assert (found["tx_power"] == -20).all() and found["metadata_ok"].all()


def test_duplicate_diagnosis_keys_each_match() -> None:
    tek = b"\x88" * 16
    keys = make_keys([(tek, 2_900_016, 144), (tek, 2_900_016, 144)])
    seen = advert_sightings(tek, 2_900_020, [interval_time(2_900_020)])
    assert sorted(match(keys, seen)["key_index"].tolist()) == [0, 1]


@settings(max_examples=int(os.environ.get("BLUEZONE_HYPOTHESIS_EXAMPLES", "25")))
@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=300))
def test_prefilter_never_drops_a_stored_rpi(rpis: list[bytes]) -> None:
    store = np.zeros(len(rpis), SIGHTING_DTYPE)
    store["rpi"] = np.frombuffer(b"".join(rpis), "V16")
    index = SightingIndex(store)
    arr = np.frombuffer(b"".join(rpis), np.uint8).reshape(-1, 16)
    assert set(index.prefilter(arr).tolist()) == set(range(len(rpis)))


@settings(max_examples=15)
@given(st.integers(0, 2**31), st.integers(1, 40), st.integers(0, 3000))
def test_matches_equal_naive_for_random_stores(seed: int, n_keys: int, n_sightings: int) -> None:
    keys, sightings, _ = synthetic_data(n_keys, n_sightings, seed, planted=3, per_plant=4)
    assert len(match(keys, sightings)) == naive_match_count(keys, sightings)


def test_many_keys_across_batches() -> None:
    keys, sightings, planted = synthetic_data(1300, 30_000, seed=9, planted=25)
    found = match(keys, sightings)
    assert len(found) == planted * 15
    assert len(np.unique(found["key_index"])) == planted and found["key_index"].max() > 1024


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_give_the_same_matches_as_one_process(monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)  # small data, still split
    monkeypatch.setattr(matcher_module, "available_cores", lambda: jobs)  # as many processes on any machine
    keys, sightings, planted = synthetic_data(700, 20_000, seed=11, planted=30)
    one = match(keys, sightings)
    several = match(keys, sightings, jobs=jobs)
    assert len(one) == planted * 15
    assert np.array_equal(one, several)


def test_jobs_fall_back_to_one_process_when_too_few_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork(*args: object, **kwargs: object) -> None:
        raise AssertionError("forked for a handful of keys")

    monkeypatch.setattr(matcher_module, "_in_parallel", no_fork)
    keys, sightings, planted = synthetic_data(50, 5_000, seed=2, planted=5)
    assert len(match(keys, sightings, jobs=8)) == planted * 15
    with pytest.raises(ValueError):
        match(keys, sightings, jobs=0)


def test_jobs_are_capped_at_the_cores(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """match(jobs=64) on two cores forked 63 workers, which derive no faster: now two processes, and
    the log says so."""
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 1)  # enough keys for any number of jobs
    monkeypatch.setattr(matcher_module, "available_cores", lambda: 2)
    started: list[int] = []
    in_parallel = matcher_module._in_parallel

    def counted(table: object, index: object, tolerance: int, jobs: int) -> object:
        started.append(jobs)
        return in_parallel(table, index, tolerance, jobs)  # type: ignore[arg-type]

    monkeypatch.setattr(matcher_module, "_in_parallel", counted)
    keys, sightings, planted = synthetic_data(200, 5_000, seed=4, planted=6)
    with caplog.at_level("INFO", logger="bluezone.matching.matcher"):
        assert np.array_equal(match(keys, sightings, jobs=64), match(keys, sightings))
    assert started == [2]
    assert "matching in 2 processes, the cores this process may use, not the 64 asked" in caplog.text


@settings(max_examples=50)
@given(st.lists(st.integers(0, 60), max_size=40), st.integers(-3, 12), st.booleans())
def test_window_counts_equal_binary_search(intervals: list[int], width: int, table: bool) -> None:
    """The running count per interval gives what binary search over the sorted intervals gives, for
    windows starting at every interval in and around the stored span (and with the table turned off)."""
    index = SightingIndex(empty_sightings(0))
    index.sorted_intervals = np.sort(np.array(intervals, np.int64))
    if not table:
        index._running_counts = None  # as for a store spanning more than the table's limit
    first = np.arange(-5, 70, dtype=np.int64)
    last = first + width
    expected = np.searchsorted(index.sorted_intervals, last, "right") - np.searchsorted(index.sorted_intervals, first, "left")
    assert index.count_in_windows(first, last).tolist() == expected.tolist()


def test_a_store_spanning_centuries_uses_binary_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "_COUNT_TABLE_LIMIT", 1000)
    keys, sightings, planted = synthetic_data(300, 4000, seed=5, planted=4)
    sightings["time"][0] = 0.0  # a sighting stamped 1970 (a clock that was never set)
    index = SightingIndex(sightings)
    assert len(match(keys, index)) == planted * 15 and index._running_counts is None


def test_shared_blocks_hand_out_every_chunk_once() -> None:
    """Two consumers taking turns (as two processes would) get each chunk of rows exactly once."""
    n = 10 * matcher_module._CHUNK + 7
    blocks = matcher_module._SharedBlocks(n)
    first, second = iter(blocks), iter(blocks)
    taken = []
    for chunk in first:
        taken.append(chunk)
        taken.extend(c for c in (next(second, None), next(second, None)) if c is not None)
    rows = np.concatenate([np.arange(lo, hi) for lo, hi in taken])
    assert np.array_equal(np.sort(rows), np.arange(n)) and len(taken) == 11
    assert next(iter(blocks), None) is None


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 4))
def test_any_jobs_give_identical_matches_in_a_fixed_order(seed: int, jobs: int) -> None:
    """Whatever the split between processes, the matches (and their order: key, time, sighting)
    are the same as with one process."""
    keys, sightings, planted = synthetic_data(900, 6000, seed, planted=12, per_plant=5)
    sightings["time"][1::2] = sightings["time"][::2][: len(sightings) // 2]  # ties in time
    sightings.sort(order="time", kind="stable")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 10)
        patch.setattr(matcher_module, "available_cores", lambda: jobs)
        several = match(keys, sightings, jobs=jobs)
    one = match(keys, sightings)
    assert np.array_equal(one, several)
    order = np.lexsort((one["sighting_index"], one["time"], one["key_index"]))
    assert np.array_equal(order, np.arange(len(one)))


@pytest.mark.parametrize("prefilter", ["numpy", "helper", "python"])
def test_the_same_matches_whoever_derives_and_filters(prefilter: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled helper's pre-filter, numpy's over the helper's RPIs, and the pure-Python path
    (BLUEZONE_NATIVE=0) find the same matches, with one process and with two."""
    from tests.crypto.conftest import require_native

    from bluezone.crypto import derivation as rpi_module

    if prefilter == "helper":
        require_native()
        assert rpi_module._native_passing() is not None
    elif prefilter == "numpy":
        monkeypatch.setattr(rpi_module, "_native_passing", lambda: None)
    else:
        monkeypatch.setattr(rpi_module, "_native_rpis", lambda: None)
        assert rpi_module._native_passing() is None
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)
    keys, sightings, planted = synthetic_data(2500, 20_000, seed=13, planted=20)
    one = match(keys, sightings)
    assert len(one) == planted * 15 and np.array_equal(one, match(keys, sightings, jobs=2))
    assert len(one) == naive_match_count(keys, sightings)
