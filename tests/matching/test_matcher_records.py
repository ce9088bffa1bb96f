"""The matcher's records copied as bytes give what copying them field by field gave (db09ff3).

``gather`` and the faster ``exposure_windows`` (columns taken out once, each window's flags and key
fields read in one pass) change no window: compared here with the first form, kept below as the
reference, on random matches out of order, over several keys and days, with implausible metadata.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.matching.matcher import MATCH_DTYPE, ExposureWindow, exposure_windows, gather
from bluezone.proximity.sightings import SIGHTING_DTYPE

T0 = 1_700_000_000.0


def reference_exposure_windows(keys: np.ndarray, matches: np.ndarray, *, rssi_correction: int = 0) -> list[ExposureWindow]:
    """``exposure_windows`` as db09ff3 wrote it: records gathered field by field, columns read per window."""
    if len(matches) == 0:
        return []
    days = (np.floor_divide(matches["time"], DAY_SECONDS) * DAY_SECONDS).astype(np.int64)
    order = np.lexsort((matches["time"], days, matches["key_index"]))
    m, days = matches[order], days[order]
    group = np.r_[True, (np.diff(m["key_index"]) != 0) | (np.diff(days) != 0)]
    bounds = np.r_[np.flatnonzero(group), len(m)]
    attenuation = m["tx_power"].astype(np.int32) - (m["rssi"].astype(np.int32) + rssi_correction)
    windows = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        k = int(m["key_index"][a])
        windows.append(
            ExposureWindow(
                key_index=k,
                day=int(days[a]),
                times=m["time"][a:b].copy(),
                rssi=m["rssi"][a:b].astype(np.int32),
                attenuation=attenuation[a:b],
                tx_power_estimated=not bool(m["metadata_ok"][a:b].all()),
                transmission_risk=int(keys["transmission_risk"][k]),
                report_type=int(keys["report_type"][k]),
                sighting_index=m["sighting_index"][a:b].copy(),
            )
        )
    return windows


def random_keys(rng: np.random.Generator, n: int) -> np.ndarray:
    keys = np.zeros(n, KEY_DTYPE)
    keys["transmission_risk"] = rng.integers(0, 9, n)
    keys["report_type"] = rng.integers(0, 6, n)
    return keys


def random_matches(rng: np.random.Generator, n: int, n_keys: int) -> np.ndarray:
    m = np.zeros(n, MATCH_DTYPE)
    m["key_index"] = rng.integers(0, n_keys, n)
    m["sighting_index"] = rng.permutation(n)
    m["rpi_interval"] = rng.integers(0, 1 << 30, n)
    # three days, repeats and midnights likely
    m["time"] = T0 + rng.choice([rng.uniform(0, 3 * DAY_SECONDS), float(DAY_SECONDS) * rng.integers(0, 3)], n)
    m["rssi"] = rng.integers(-128, 20, n)
    m["tx_power"] = rng.integers(-128, 128, n)
    m["metadata_ok"] = rng.random(n) < 0.9
    return m


def same_windows(got: list[ExposureWindow], want: list[ExposureWindow]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.key_index, g.day, g.tx_power_estimated, g.transmission_risk, g.report_type) == (
            w.key_index, w.day, w.tx_power_estimated, w.transmission_risk, w.report_type)
        assert all(type(getattr(g, f)) is type(getattr(w, f)) for f in ("key_index", "day", "tx_power_estimated"))
        for field in ("times", "rssi", "attenuation", "sighting_index"):
            a, b = getattr(g, field), getattr(w, field)
            assert a.dtype == b.dtype and a.flags.c_contiguous == b.flags.c_contiguous
            np.testing.assert_array_equal(a, b)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(1, 12), st.integers(-20, 20), st.integers(0, 2**32 - 1))
def test_exposure_windows_are_the_field_by_field_ones(n: int, n_keys: int, correction: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys, matches = random_keys(rng, n_keys), random_matches(rng, n, n_keys)
    same_windows(exposure_windows(keys, matches, rssi_correction=correction),
                 reference_exposure_windows(keys, matches, rssi_correction=correction))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 250), st.booleans(), st.integers(0, 2**32 - 1))
def test_gather_is_fancy_indexing(n: int, picks: int, strided: bool, seed: int) -> None:
    """The same records, dtype and fields, from records side by side or not (a strided view)."""
    rng = np.random.default_rng(seed)
    records = np.zeros(2 * n if strided else n, SIGHTING_DTYPE)
    records["time"] = rng.uniform(0, 1e9, len(records))
    records["rssi"] = rng.integers(-128, 20, len(records))
    raw = rng.integers(0, 256, (len(records), 20), dtype=np.uint8)
    records["rpi"] = raw[:, :16].copy().view("V16").ravel()
    records["aem"] = raw[:, 16:].copy().view("V4").ravel()
    if strided:
        records = records[::2]
    rows = rng.integers(0, n, picks if n else 0)
    got, want = gather(records, rows), records[rows]
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
