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
