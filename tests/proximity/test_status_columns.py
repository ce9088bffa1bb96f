"""``status`` on an 80-column terminal: its warnings were single lines of 110-430 characters; each field is wrapped
under the column of values now, nothing of it lost.  ``--json`` is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.proximity.store import SightingStore

from .conftest import NOON, random_sightings

STATE = {
    "backend": "bluez:hci0", "rotates_address": False,
    "radio": {"restarts": 2, "adapter_gone": 1, "scan_stalls": 3, "advertise_failures": 4},
    "counters": {"dropped_over_budget": 123456},
    "backlog": {"waiting": 1234, "limit": 100000, "dropped": 7, "failures": 7, "failing_since": NOON,
                "error": "cannot write to me.db now: database or disk is full"},
}


def test_every_field_fits_80_columns_and_says_all_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "me.db"
    with SightingStore.open(db, purge_now=NOON) as store:
        store.add_sightings(random_sightings(50, NOON + 3 * 3600, 600))  # dated ahead of the status below
        store.save_daemon_state(STATE, NOON + 60)
    monkeypatch.setattr("bluezone.proximity.cli.LOW_DISK_BYTES", 1 << 62)
    obj = {"clock": VirtualClock(NOON + 120), "clock_synced": False}
    text = CliRunner().invoke(cli, ["status", "--db", str(db)], obj=obj)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()[1:]  # (the first names the database: a path as long as it is)
    labels = [line.split()[0] for line in lines if not line.startswith(" ")]
    for label in ("ahead", "daemon", "address", "clock", "counters", "flood", "writes", "disk"):
        assert label in labels, text.stdout
    assert max(map(len, lines)) <= 80, text.stdout
    said = " ".join(text.stdout.split())
    assert "the daemon keeps 1234 sightings in memory (at most 100000) and retries; 7 dropped" in said
    assert "could link your rotating IDs (`sudo btmon` shows it: docs/bluetooth.md)" in said and "`bluezone purge --dated-ahead` deletes" in said
    assert "(free some space)" in said and "advertise_failures 4, restarts 2, scan_stalls 3" in said
    data = json.loads(CliRunner().invoke(cli, ["status", "--db", str(db), "--json"], obj=obj).stdout)
    assert data["daemon"]["backlog"]["waiting"] == 1234 and data["dated_ahead"] == 50
