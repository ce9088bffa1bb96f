"""check_sightings: keys + sightings -> scored exposures, as ``bluezone check`` prints them."""

from __future__ import annotations

import numpy as np
from matching_helpers import advert_sightings, make_keys, noise_sightings

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.check import check_sightings, sightings_span
from bluezone.matching.scoring import GaenConfig, GaenScorer

DAY = 2_900_016  # interval of a UTC midnight
GAEN = GaenScorer(GaenConfig())  # these tests pin the bucket semantics, whatever the default scorer


def encounter(tek: bytes, first_interval: int, minutes: int, rssi: int) -> np.ndarray:
    """Adverts seen every 10 s for ``minutes`` (each in the middle of its 10 s, the scorers' default
    sampling interval, so credited whole minutes), with the RPI of whichever interval they fall in."""
    t0 = first_interval * INTERVAL_SECONDS
    times = t0 + 5.0 + np.arange(0, minutes * 60, 10.0)
    parts = [
        advert_sightings(tek, interval, times[(times // INTERVAL_SECONDS) == interval], rssi=rssi, tx_power=-20)
        for interval in np.unique(times // INTERVAL_SECONDS).astype(int).tolist()
    ]
    return np.concatenate(parts)


def test_close_long_contact_is_f1_far_one_is_not() -> None:
    close, far, other = b"\xa1" * 16, b"\xa2" * 16, b"\xa3" * 16
    store = np.concatenate(
        [
            encounter(close, DAY + 60, 30, rssi=-72),  # attenuation 52: immediate, 30 minutes
            encounter(far, DAY + 70, 40, rssi=-95),  # attenuation 75: other
            noise_sightings(2000, DAY * 600, (DAY + 144) * 600),
        ]
    )
    store.sort(order="time")
    keys = make_keys([(other, DAY, 144), (close, DAY, 144), (far, DAY, 144)])
    exposures = check_sightings(keys, store, GAEN)
    by_key = {e.key_index: e for e in exposures}
    assert set(by_key) == {1, 2}
    assert by_key[1].score.close_contact and by_key[1].score.minutes == 30
    assert by_key[1].score.closest_attenuation == 52 and by_key[1].score.distance_band == "< 1.5 m"
    assert not by_key[2].score.close_contact and by_key[2].score.minutes_by_bucket["other"] == 40
    assert by_key[1].date == "2025-02-20"
    d = by_key[1].as_dict()
    assert d["close_contact"] is True and d["duration_minutes"] == 30 and d["date"] == by_key[1].date


def test_threshold_change_flips_f1() -> None:
    tek = b"\xb1" * 16
    store = encounter(tek, DAY + 10, 10, rssi=-72)
    keys = make_keys([(tek, DAY, 144)])
    assert not check_sightings(keys, store, GAEN)[0].score.close_contact
    assert check_sightings(keys, store, GaenScorer(GaenConfig(close_contact_minutes=10)))[0].score.close_contact


def test_rssi_correction_moves_attenuation() -> None:
    tek = b"\xc1" * 16
    store = encounter(tek, DAY + 10, 20, rssi=-80)  # attenuation 60: near
    keys = make_keys([(tek, DAY, 144)])
    assert check_sightings(keys, store, GAEN)[0].score.minutes_by_bucket["near"] == 20
    corrected = check_sightings(keys, store, GAEN, rssi_correction=10)[0]  # 50 dB: immediate
    assert corrected.score.minutes_by_bucket["immediate"] == 20 and corrected.score.close_contact


def test_sightings_span_covers_tolerance() -> None:
    keys = make_keys([(b"\x01" * 16, DAY, 144), (b"\x02" * 16, DAY + 144, 10)])
    assert sightings_span(keys) == ((DAY - 12) * 600.0, (DAY + 154 + 12) * 600.0)
    assert sightings_span(make_keys([])) is None


def test_default_scorer_means_about_2m_for_15_minutes() -> None:
    """bluezone check's default: 15+ minutes with attenuation under its ~2 m threshold (60 dB) is F1."""
    from bluezone.matching.scoring import DEFAULT_SCORER, get_scorer

    assert DEFAULT_SCORER == "bluezone" and get_scorer().name == "bluezone"
    tek_close, tek_short, tek_far = b"\xd1" * 16, b"\xd2" * 16, b"\xd3" * 16
    store = np.concatenate(
        [
            encounter(tek_close, DAY + 10, 20, rssi=-74),  # 54 dB for 20 minutes: F1
            encounter(tek_short, DAY + 40, 10, rssi=-74),  # as close, 10 minutes: not F1
            encounter(tek_far, DAY + 60, 30, rssi=-92),  # 72 dB for 30 minutes: not F1
        ]
    )
    store.sort(order="time")
    keys = make_keys([(tek_close, DAY, 144), (tek_short, DAY, 144), (tek_far, DAY, 144)])
    verdicts = {e.key_index: e.score.close_contact for e in check_sightings(keys, store)}
    assert verdicts == {0: True, 1: False, 2: False}


def test_revoked_keys_never_match_and_indices_stay_those_of_the_file() -> None:
    revoked, valid = b"\xe1" * 16, b"\xe2" * 16
    store = np.concatenate([encounter(revoked, DAY + 10, 20, rssi=-72), encounter(valid, DAY + 40, 20, rssi=-72)])
    keys = make_keys([(revoked, DAY, 144), (valid, DAY, 144)])
    keys["report_type"][0] = 5  # revoked: the person's positive report was withdrawn
    exposures = check_sightings(keys, store, GAEN)
    assert [e.key_index for e in exposures] == [1]
