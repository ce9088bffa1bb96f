"""``bluezone evaluate`` judges a one-minute window by the share of it the verdict counts (credit14).

With minutes credited by the time present, a recording's last minute heard for 40 s is 0.67 minutes:
judged near all along it must still be detected, as with whole slots.
"""

from __future__ import annotations

import numpy as np

from bluezone.matching.scoring import GaenConfig, GaenScorer
from bluezone.sim.evaluate import minutes_window, verdict_minutes, verdict_share


def test_a_minute_heard_40_s_in_the_near_bucket_is_detected() -> None:
    times = np.arange(5.0, 45.01, 0.25)  # heard for 40 s, at 60 dB: GAEN's near bucket (weight 0.5)
    window = minutes_window(times, np.full(len(times), 60.0))
    score = GaenScorer().score(window)
    assert score.minutes == round(50 / 60, 3)  # 40 s seen plus one 10-s sampling interval
    assert verdict_minutes(score) < 0.5 <= verdict_share(score) == 0.5
    whole = GaenScorer(GaenConfig(credit="slots")).score(window)
    assert verdict_share(whole) == verdict_minutes(whole) == 0.5  # whole slots: as before


def test_a_window_credited_nothing_is_not_detected() -> None:
    far = GaenScorer().score(minutes_window(np.arange(0.0, 60.0), np.full(60, 90.0)))
    assert verdict_share(far) == 0.0
