"""bluezone's own scorer on hand-made exposure windows: robust minutes, gaps, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bluezone.errors import ConfigError
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer, minute_attenuation
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.scoring import get_scorer, scorer_names


def window(minutes: int, attenuation: float, per_minute: int = 30, seed: int = 0, fade_share: float = 0.0) -> ExposureWindow:
    rng = np.random.default_rng(seed)
    n = minutes * per_minute
    times = 1_780_473_600.0 + np.sort(rng.uniform(0, minutes * 60, n))
    att = attenuation + rng.normal(0, 4, n)
    fades = rng.random(n) < fade_share
    att[fades] += 20  # deep fades and bodies only ever add loss
    att = np.round(att).astype(np.int32)
    return ExposureWindow(key_index=0, day=0, times=times, rssi=-24 - att, attenuation=att, tx_power_estimated=False)


def test_registered_by_name() -> None:
    assert "bluezone" in scorer_names()
    assert isinstance(get_scorer("bluezone"), BluezoneScorer)


def test_close_long_contact_is_flagged_far_one_is_not() -> None:
    s = BluezoneScorer()
    near = s.score(window(20, 55.0))
    far = s.score(window(60, 70.0))
    assert near.close_contact and near.minutes_by_bucket["within_2m"] == pytest.approx(20, abs=1)
    assert 0.8 * 20 < near.weighted_minutes <= 20  # the chain's expected near minutes: never quite sure
    assert not far.close_contact and far.minutes_by_bucket["within_2m"] < 3
    assert far.weighted_minutes < 0.25 * 60  # 70 dB (10th percentile ~65): evidence of far, minute after minute
    assert near.distance_band == "< 2 m" and far.distance_band == "> 2 m"


def test_short_contact_is_not_a_close_contact() -> None:
    assert not BluezoneScorer().score(window(10, 50.0)).close_contact


def test_fades_do_not_hide_a_contact() -> None:
    # A third of the packets 20 dB weaker: the low percentile still sees the near phone; a mean would not.
    w = window(20, 55.0, fade_share=0.33)
    assert BluezoneScorer().score(w).close_contact
    assert np.mean(w.attenuation) > 59


def test_sparse_minutes_are_not_judged_and_gaps_are_bridged() -> None:
    s = BluezoneScorer(BluezoneConfig(smooth_slots=1))
    w = window(20, 50.0)
    slots = np.floor(w.times / 60).astype(np.int64)
    keep = slots != slots[0] + 10  # one minute without any sighting
    gap = ExposureWindow(0, 0, w.times[keep], w.rssi[keep], w.attenuation[keep], False)
    assert s.score(gap).minutes_by_bucket["within_2m"] == pytest.approx(20)
    assert s.score(gap).weighted_minutes == pytest.approx(s.score(w).weighted_minutes, abs=1.0)  # the chain bridges it too
    one_each = window(20, 50.0, per_minute=1, seed=3)
    _, _, counts = minute_attenuation(one_each.times, one_each.attenuation, s.config)
    assert (counts >= 2).all()
    assert s.score(one_each).minutes_by_bucket["within_2m"] < 20


def test_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        BluezoneConfig(percentile=120)
    with pytest.raises(ConfigError):
        BluezoneConfig.from_mapping({"treshold_db": 3})
    toml = tmp_path / "s.toml"
    toml.write_text("[scoring.bluezone]\nthreshold_db = 45.0\nsoft_width_db = 2.0\n")
    scorer = get_scorer("bluezone", config_path=toml)
    assert scorer.config.threshold_db == 45.0
    assert not scorer.score(window(20, 55.0)).close_contact  # stricter threshold
