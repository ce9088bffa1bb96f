"""A Bluetooth meeting across UTC midnight is matched to two daily keys (every key ends at midnight)
and scored as two exposures, one per UTC day, as GAEN does.  The decision stays per day; `bluezone
check` now says that the two are one meeting and how long it was in all (text and --json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from matching_helpers import advert_sightings, make_keys, neighbours

from bluezone.cli import cli
from bluezone.client.exposures import across_midnight
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD
from bluezone.keyformat.keyfile import write_keys_json
from bluezone.proximity.store import SightingStore

DAY = 20_000  # a UTC day number
MIDNIGHT = (DAY + 1) * 86400.0  # between DAY and DAY + 1
BEFORE, AFTER, LATER = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


def _heard(tek: bytes, start: float, end: float) -> np.ndarray:
    """``tek``'s adverts heard every 10 s from ``start`` to ``end``, close by."""
    times = np.arange(start, end, 10.0)
    intervals = (times // INTERVAL_SECONDS).astype(int)
    return np.concatenate([advert_sightings(tek, i, times[intervals == i], rssi=-70, tx_power=-20)
                           for i in np.unique(intervals).tolist()])


def _check(tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    keys = make_keys([(BEFORE, DAY * ROLLING_PERIOD, 144), (AFTER, (DAY + 1) * ROLLING_PERIOD, 144),
                      (LATER, (DAY + 1) * ROLLING_PERIOD, 144)])
    write_keys_json(keys, tmp_path / "keys.json")
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=MIDNIGHT) as store:
        store.add_sightings(np.concatenate([
            _heard(BEFORE, MIDNIGHT - 12 * 60 + 30, MIDNIGHT),  # 23:48-23:59
            _heard(AFTER, MIDNIGHT + 30, MIDNIGHT + 12 * 60),  # 00:00-00:11, the same person's next key
            _heard(LATER, MIDNIGHT + 5 * 3600, MIDNIGHT + 5 * 3600 + 600),  # somebody else at 05:00
            # other phones around, on both days (the receiver's per-day reference)
            neighbours(np.random.default_rng(3), DAY * ROLLING_PERIOD + 130, 20, 6, 30),
            neighbours(np.random.default_rng(4), (DAY + 1) * ROLLING_PERIOD, 40, 6, 30),
        ]))
    return CliRunner().invoke(cli, ["check", "--keys", str(tmp_path / "keys.json"), "--db", str(db), *args],
                              obj={"clock": VirtualClock(MIDNIGHT + 86400)})


def test_a_meeting_across_midnight_is_said_to_be_one(tmp_path: Path) -> None:
    result = _check(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    exposures = json.loads(result.stdout)["exposures"]
    assert [e["date"] for e in exposures] == ["2024-10-04", "2024-10-05", "2024-10-05"]
    first, second, other = exposures
    assert not first["close_contact"] and not second["close_contact"]  # each day is judged on its own
    together = second["continues_across_midnight"]
    assert together["from_index"] == 0
    assert together["together_minutes"] == round(first["duration_minutes"] + second["duration_minutes"], 3) > 20
    assert "continues_across_midnight" not in first and "continues_across_midnight" not in other
    (tmp_path / "text").mkdir()
    text = _check(tmp_path / "text")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[2].strip().startswith("(continues the 2024-10-04 exposure across UTC midnight: one meeting,")
    assert "min in all; each UTC day is judged on its own)" in lines[2]
    assert sum("continues the" in line for line in lines) == 1


def test_only_parts_next_to_midnight_and_close_in_time_are_paired() -> None:
    from types import SimpleNamespace

    def exposure(date: str, start: float, end: float, protocol: str = "gaen") -> SimpleNamespace:
        return SimpleNamespace(date=date, start=start, end=end, protocol=protocol)

    d0, d1 = "2024-10-04", "2024-10-05"
    cases = [
        ([exposure(d0, MIDNIGHT - 900, MIDNIGHT - 60), exposure(d1, MIDNIGHT + 60, MIDNIGHT + 900)], {1: 0}),
        ([exposure(d0, MIDNIGHT - 3600, MIDNIGHT - 1800), exposure(d1, MIDNIGHT + 60, MIDNIGHT + 900)], {}),  # ended 30 min before
        ([exposure(d0, MIDNIGHT - 900, MIDNIGHT - 60), exposure(d1, MIDNIGHT + 1200, MIDNIGHT + 1800)], {}),  # began 20 min after
        ([exposure(d0, MIDNIGHT - 900, MIDNIGHT - 60), exposure(d1, MIDNIGHT + 60, MIDNIGHT + 900, "bluezone3")], {}),
        # two before midnight: the later part continues the nearer one, and only one
        ([exposure(d0, MIDNIGHT - 900, MIDNIGHT - 500), exposure(d0, MIDNIGHT - 900, MIDNIGHT - 30),
          exposure(d1, MIDNIGHT + 60, MIDNIGHT + 900), exposure(d1, MIDNIGHT + 100, MIDNIGHT + 300)], {2: 1, 3: 0}),
    ]
    for exposures, pairs in cases:
        assert across_midnight(exposures) == pairs  # type: ignore[arg-type]
