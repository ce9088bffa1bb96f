"""Which of a device's own keys ``keys export`` publishes."""

from __future__ import annotations

from bluezone.crypto import DailyKey
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.keyformat.keyfile import dump_keys_json, parse_keys_json
from bluezone.matching.export_own import export_own_keys

NOW = 1_767_225_600 + 3600.5  # 2026-01-01 01:00 UTC


def day_key(days_ago: int, period: int = 144) -> DailyKey:
    midnight = int(NOW // DAY_SECONDS * DAY_SECONDS) - days_ago * DAY_SECONDS
    return DailyKey(bytes([days_ago % 256]) * 16, midnight // 600, period)


def test_last_days_including_today_oldest_first() -> None:
    daily = [day_key(d) for d in (0, 3, 13, 14, 20)] + [day_key(-1)]  # -1: tomorrow's (clock skew)
    keys = export_own_keys(daily, 14, NOW)
    assert [k.tobytes()[0] for k in keys["key"]] == [13, 3, 0]
    assert list(export_own_keys(daily, 1, NOW)["key"][0].tobytes()) == [0] * 16


def test_short_periods_survive_the_json_round_trip() -> None:
    keys = export_own_keys([day_key(1, 40), day_key(2)], 14, NOW)
    again = parse_keys_json(dump_keys_json(keys))
    assert again["rolling_period"].tolist() == [144, 40]


def test_todays_key_still_on_air_is_cut_to_end_with_the_current_interval() -> None:
    """Whoever has the file could follow the device's adverts until midnight by today's full key (the
    v3 export starts a new chain for the same reason): it ends with the current interval, and the
    daemon, given the cut key, starts a new one then, as after ``upload --include-today``."""
    from bluezone.crypto.intervals import interval_number
    from bluezone.matching.export_own import own_keys_to_export, released_today

    current = interval_number(NOW)  # 01:00 UTC: the 7th interval of the day
    chosen = own_keys_to_export([day_key(0), day_key(1)], 14, NOW)
    assert [(k.rolling_period, k.end) for k in chosen] == [(144, current - 6), (7, current + 1)]
    assert export_own_keys([day_key(0)], 14, NOW)["rolling_period"].tolist() == [7]
    assert released_today(chosen, NOW) == [chosen[1]]
    assert released_today(own_keys_to_export([day_key(0, 3)], 14, NOW), NOW) == []  # cut before: off air already
