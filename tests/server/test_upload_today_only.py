"""``upload`` on a device whose only key is today's says how to send it (issue 14, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from server_helpers import NOW

from bluezone.cli import cli
from bluezone.client.uploading import plan_upload
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import InputError
from bluezone.proximity.store import SightingStore


@pytest.fixture
def first_day(tmp_path: Path) -> Path:
    db = tmp_path / "node.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daily_key(DailyKey(b"t" * 16, rolling_start(NOW)), created_at=NOW - 3600)
    return db


def test_only_todays_key_says_to_add_include_today(first_day: Path) -> None:
    with SightingStore.open(first_day, create=False) as store:
        with pytest.raises(InputError, match="add --include-today"):
            plan_upload(store, NOW, include_today=False)
        assert len(plan_upload(store, NOW, include_today=True).keys) == 1


def test_the_command_says_so_in_one_line(first_day: Path) -> None:
    result = CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", str(first_day), "--yes"],
        obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "add --include-today" in result.output


def test_no_keys_at_all_is_still_nothing_to_upload(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    SightingStore.open(db).close()
    with SightingStore.open(db, create=False) as store:
        with pytest.raises(InputError, match="no daily keys and no check-ins of the last 14 days"):
            plan_upload(store, NOW, include_today=False)
        with pytest.raises(InputError, match="no daily keys of the last 14 days"):
            plan_upload(store, NOW, include_today=False, checkins=False)


def test_checkins_beside_todays_key_still_say_to_add_include_today(first_day: Path) -> None:
    """Check-ins alone go only from a device with no daily key at all: one whose key is still on air
    is told how to send it, not sent without it."""
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.location import Venue

    with SightingStore.open(first_day, create=False) as store:
        record_visit(store, Venue.create("Quán Phở", "Chợ Lớn"), NOW - 7200, NOW - 3600, NOW)
        with pytest.raises(InputError, match="add --include-today"):
            plan_upload(store, NOW, include_today=False)
        plan = plan_upload(store, NOW, include_today=True)
        assert len(plan.keys) == 1 and len(plan.checkins) == 1


def test_checkins_alone_from_a_device_without_keys(tmp_path: Path) -> None:
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.location import Venue

    db = tmp_path / "visitor.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        record_visit(store, Venue.create("Quán Phở", "Chợ Lớn"), NOW - 3 * 86400, NOW - 3 * 86400 + 3600, NOW)
        plan = plan_upload(store, NOW, include_today=False)
    assert len(plan.keys) == 0 and [r.visit.description for r in plan.checkins] == ["Quán Phở"]


def _report(start_interval: int, period: int):  # type: ignore[no-untyped-def]
    from bluezone.venues.upload import OutgoingReport

    return OutgoingReport(None, start_interval, period, None)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 143), st.integers(1, 6)), max_size=60), st.integers(1, 12))
def test_longest_of_each_day_keeps_a_days_longest_in_order(parts: list[tuple[int, int, int]], cap: int) -> None:
    from bluezone.client.uploading import longest_of_each_day

    reports = [_report(day * 144 + offset, period) for day, offset, period in parts]
    kept, left_out = longest_of_each_day(reports, cap)
    assert left_out == len(reports) - len(kept)
    assert [r for r in reports if any(r is k for k in kept)] == kept  # a subsequence: order kept
    for day in {r.day for r in reports}:
        of_day = [r for r in reports if r.day == day]
        kept_of_day = [r for r in kept if r.day == day]
        assert len(kept_of_day) == min(cap, len(of_day))
        if len(kept_of_day) < len(of_day):  # nothing left out is longer than what went
            shortest_kept = min(r.period for r in kept_of_day)
            assert all(r.period <= shortest_kept for r in of_day if not any(r is k for k in kept_of_day))
