"""Random damage inside a sighting database: the designed one-line error, never a bare DatabaseError."""

from __future__ import annotations

import base64
import json
import random
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import StoreError
from bluezone.proximity.store import SightingStore

from .conftest import NOON, random_sightings

DAMAGED = 24  # damaged copies; each gets 20 random bytes somewhere past the header


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    root = tmp_path_factory.mktemp("healthy")
    now = NOON  # a fixed day: the same store bytes, so the same damage, whatever day the suite runs
    db = root / "good.db"
    with SightingStore.open(db) as store:
        store.add_sightings(random_sightings(20_000, now - 3600, 3000))
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(now)))
        store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    keys = root / "keys.json"
    entry = {"key": base64.b64encode(b"d" * 16).decode(), "rollingStartNumber": rolling_start(now) - 144, "rollingPeriod": 144}
    keys.write_text(json.dumps({"temporaryExposureKeys": [entry]}))
    return db.read_bytes(), keys


def damaged_copy(data: bytes, seed: int, path: Path) -> Path:
    rng = random.Random(seed)
    raw = bytearray(data)
    for _ in range(20):
        raw[rng.randrange(100, len(raw))] = rng.randrange(256)
    path.write_bytes(bytes(raw))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("seed", range(DAMAGED))
def test_damaged_databases_get_the_designed_line(healthy: tuple[bytes, Path], tmp_path: Path, seed: int) -> None:
    data, keys = healthy
    db = damaged_copy(data, seed, tmp_path / "damaged.db")
    for args in (["status"], ["purge"], ["keys", "export", "--out", "-"], ["check", "--keys", str(keys)]):
        result = CliRunner().invoke(cli, [*args, "--db", str(db)], obj={"clock": VirtualClock(NOON)})
        assert "DatabaseError" not in result.output and "--debug" not in result.output, (args, result.output)
        if result.exit_code:
            assert result.output.startswith("Error: ") and "is not a usable sighting database" in result.output


def test_damage_found_after_a_clean_open_is_a_store_error(healthy: tuple[bytes, Path], tmp_path: Path) -> None:
    """Some damage sits in pages that opening never reads: the first read that reaches it says so."""
    data, _ = healthy
    hits = 0
    for seed in range(200):
        db = damaged_copy(data, seed, tmp_path / f"d{seed}.db")
        try:
            store = SightingStore.open(db, purge_now=0.0)
        except StoreError:
            continue
        with store:
            try:
                store.sightings()
                store.stats()
            except StoreError as exc:
                assert "is not a usable sighting database" in str(exc) and "damaged" in str(exc)
                assert isinstance(exc.__cause__, sqlite3.DatabaseError)
                hits += 1
        if hits >= 3:
            break
    assert hits >= 3
