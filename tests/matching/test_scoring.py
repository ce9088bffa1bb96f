"""The GAEN v2-style attenuation-bucket scorer and the scorer registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.errors import ConfigError
from bluezone.matching import scoring
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.scoring import GaenConfig, GaenScorer, get_scorer, register_scorer, scorer_names, slot_durations

T0 = 1_767_000_000.0 - (1_767_000_000 % 60)  # a minute boundary


def window(attenuations: list[int] | np.ndarray, times: list[float] | np.ndarray | None = None) -> ExposureWindow:
    """A window of one sighting per time given, or else of one minute per attenuation: six sightings in
    it 10 s apart (each in the middle of the scorer's default 10-s sampling interval: a whole minute)."""
    att = np.asarray(attenuations, np.int32)
    if times is None:
        att = np.repeat(att, 6)
        times = T0 + 5.0 + 10.0 * np.arange(len(att))
    t = np.asarray(times, np.float64)
    return ExposureWindow(
        key_index=0, day=int(T0 // 86400 * 86400), times=t, rssi=-att, attenuation=att, tx_power_estimated=False
    )


@pytest.mark.parametrize(
    ("attenuation", "bucket"), [(0, "immediate"), (55, "immediate"), (56, "near"), (63, "near"), (64, "medium"), (73, "medium"), (74, "other")]
)
def test_bucket_edges(attenuation: int, bucket: str) -> None:
    score = GaenScorer().score(window([attenuation]))
    assert score.minutes_by_bucket[bucket] == 1.0 and score.minutes == 1.0


@pytest.mark.parametrize(("minutes", "f1"), [(14, False), (15, True), (16, True)])
def test_close_contact_boundary_immediate(minutes: int, f1: bool) -> None:
    score = GaenScorer().score(window([50] * minutes))
    assert score.weighted_minutes == minutes and score.close_contact is f1


@pytest.mark.parametrize(("minutes", "f1"), [(29, False), (30, True)])
def test_close_contact_boundary_near_counts_half(minutes: int, f1: bool) -> None:
    score = GaenScorer().score(window([60] * minutes))
    assert score.weighted_minutes == minutes / 2 and score.close_contact is f1


def test_far_never_counts() -> None:
    score = GaenScorer().score(window([70] * 60 + [90] * 60))
    assert score.weighted_minutes == 0 and not score.close_contact
    assert score.minutes_by_bucket == {"immediate": 0.0, "near": 0.0, "medium": 60.0, "other": 60.0}


def test_minutes_count_slots_not_packets() -> None:
    # 4 adverts/s for 10 minutes: 2,400 sightings, 10 minutes
    times = T0 + np.arange(0, 600, 0.25)
    score = GaenScorer().score(window(np.full(len(times), 50), times))
    assert score.minutes == 10.0 and score.weighted_minutes == 10.0


def test_slot_attenuation_is_the_slot_mean() -> None:
    # one slot with 50 and 62 dB -> mean 56 -> near
    score = GaenScorer().score(window([50, 62], [T0 + 5, T0 + 55]))
    assert score.minutes_by_bucket["near"] == 1.0
    assert score.closest_attenuation == 50 and score.typical_attenuation == 56.0


def test_typical_is_median_and_distance_band() -> None:
    score = GaenScorer().score(window([40, 50, 52, 80, 90]))
    assert score.typical_attenuation == 52 and score.distance_band == "< 1.5 m"
    assert GaenScorer().score(window([60] * 3)).distance_band == "1.5-3 m"
    assert GaenScorer().score(window([99] * 3)).distance_band == "> 10 m"


def test_gap_credit_for_duty_cycled_scanning() -> None:
    times = T0 + np.array([30.0, 330.0, 630.0])  # one scan every 5 minutes
    # a continuous scanner's default: three moments heard, each credited its 10-s sampling interval
    assert GaenScorer().score(window([50] * 3, times)).minutes == 0.5
    # a scan a minute stands for the minute, and the empty slots before it (GAEN's seconds since the last scan)
    scorer = GaenScorer(GaenConfig(max_gap_slots=5, sampling_seconds=60.0))
    assert scorer.score(window([50] * 3, times)).minutes == 11.0  # 1 + 5 + 5
    _, credit = slot_durations(times, 60.0, 5, 60.0)
    assert credit.tolist() == [1.0, 5.0, 5.0]
    _, whole = slot_durations(times, 60.0, 5, None)  # credit = "slots"
    assert whole.tolist() == [1.0, 5.0, 5.0]


def test_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "bluezone.toml"
    path.write_text("[scoring.gaen]\nimmediate_db = 50\nnear_weight = 1.0\nclose_contact_minutes = 10\n")
    config = GaenConfig.from_toml(path)
    assert (config.immediate_db, config.near_weight, config.close_contact_minutes) == (50, 1.0, 10)
    scorer = get_scorer("gaen", path)
    assert scorer.score(window([60] * 10)).close_contact


@pytest.mark.parametrize(
    "text",
    [
        "[scoring.gaen]\nbogus = 1\n",
        "[scoring.gaen]\nimmediate_db = 70\nnear_db = 60\n",
        "[scoring.gaen]\nnear_weight = 3.0\n",
        "[scoring.gaen]\nclose_contact_minutes = 0\n",
        "not toml [",
    ],
)
def test_bad_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        GaenConfig.from_toml(path)


def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "gaen" in scorer_names()
    with pytest.raises(ConfigError, match="unknown scorer 'nope'"):
        get_scorer("nope")

    class Always:
        name = "always-test"

        def score(self, window: ExposureWindow) -> object:
            return "scored"

    monkeypatch.setattr(scoring, "_SCORERS", dict(scoring._SCORERS))
    register_scorer("always-test", lambda config_path=None: Always())
    assert "always-test" in scorer_names()
    assert get_scorer("always-test").score(window([1])) == "scored"


def test_settings_from_text() -> None:
    from bluezone.matching.scoring import parse_setting

    assert parse_setting("near_weight=1.0") == ("near_weight", 1.0)
    assert parse_setting(" immediate_db = 50 ") == ("immediate_db", 50)
    assert parse_setting('distance_bands=["a", "b", "c", "d"]') == ("distance_bands", ["a", "b", "c", "d"])
    assert parse_setting("name=plain text") == ("name", "plain text")
    for bad in ("novalue", "=3", "two words=1"):
        with pytest.raises(ConfigError):
            parse_setting(bad)
    scorer = get_scorer("gaen", overrides={"near_weight": 1.0})
    assert scorer.score(window([60] * 15)).close_contact


@pytest.mark.parametrize("scorer, setting", [("gaen", "near_weight"), ("bluezone", "threshold_db")])
def test_a_number_too_large_for_a_float_is_a_config_error(scorer: str, setting: str) -> None:
    """`check --set near_weight=999...9` (400 digits; TOML integers have no size limit in tomllib):
    'OverflowError: int too large to convert to float', exit 1, instead of the setting's one line."""
    from bluezone.matching.scoring import parse_setting

    name, value = parse_setting(f"{setting}={'9' * 400}")
    with pytest.raises(ConfigError, match=setting):
        get_scorer(scorer, overrides={name: value})


_MEDIAN_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(-1e308, 1e308),  # large: a mean of two must not overflow differently
    st.integers(-120, 20).map(float),  # attenuations, many equal
    st.sampled_from([0.0, -0.0]),  # np.mean sums from +0.0: a median of -0.0s is +0.0
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1, 4), width=st.integers(1, 12), dtype=st.sampled_from(["f8", "f4", "i8", "u1"]),
    data=st.data(),
)
def test_median_is_numpys_without_numpy_ma(rows: int, width: int, dtype: str, data: st.DataObject) -> None:
    """scoring.median gives np.median's numbers and types, 1-D and per row, NaN and inf included."""
    from bluezone.matching.scoring import median

    if dtype[0] == "f":
        flat = data.draw(st.lists(_MEDIAN_VALUES, min_size=rows * width, max_size=rows * width))
        with np.errstate(over="ignore"):  # large doubles are inf as float32, as a float32 median sees them
            values = np.array(flat, np.float64).astype(dtype).reshape(rows, width)
    else:
        low, high = (0, 255) if dtype == "u1" else (-(2**40), 2**40)
        values = np.array(data.draw(st.lists(st.integers(low, high), min_size=rows * width, max_size=rows * width)), dtype).reshape(rows, width)
    with np.errstate(all="ignore"):
        for got, expected in ((median(values[0]), np.median(values[0])), (median(values, axis=1), np.median(values, axis=1)),
                              (median(values), np.median(values))):
            assert np.asarray(got).dtype == np.asarray(expected).dtype and np.shape(got) == np.shape(expected)
            assert np.array_equal(got, expected, equal_nan=True)
            numbers = ~np.isnan(expected)  # (a NaN's sign is not kept)
            assert np.array_equal(np.signbit(got)[numbers], np.signbit(expected)[numbers])  # -0.0 is not +0.0 here


def test_scoring_an_exposure_leaves_numpy_ma_unimported() -> None:
    """Neither scorer's medians import numpy.ma (np.median did: 0.01-0.03 s, after every key is derived)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from bluezone.matching.matcher import ExposureWindow\n"
        "from bluezone.matching.scoring import get_scorer\n"
        "t = 1_700_000_000 + np.arange(0, 1800, 4.0)\n"
        "a = np.linspace(40, 75, len(t))\n"
        "w = ExposureWindow(key_index=0, day=1_699_920_000, times=t, rssi=-a, attenuation=a, tx_power_estimated=False)\n"
        "[get_scorer(name).score(w) for name in ('bluezone', 'gaen')]\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
