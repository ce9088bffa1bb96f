"""``upload`` on a device whose only key is today's says how to send it (issue 14, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
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
