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


def _damage_a_page_of(db: Path, table: str) -> int:
    """Overwrite one leaf page of ``table`` (an index or table, by SQLite's dbstat) with random bytes."""
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,))]
    conn.close()
    page = pages[len(pages) // 2]
    raw = bytearray(db.read_bytes())
    raw[(page - 1) * page_size:page * page_size] = random.Random(page).randbytes(page_size)
    db.write_bytes(bytes(raw))
    return page


def _doctor(db: Path) -> dict:
    result = CliRunner().invoke(cli, ["doctor", "--scan-seconds", "0", "--db", str(db), "--json"], obj={"clock": VirtualClock(NOON)})
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "sighting-store"]
    return {**check, "exit_code": result.exit_code}


def test_doctor_reads_every_page_and_finds_damage_that_opening_never_reaches(healthy: tuple[bytes, Path], tmp_path: Path) -> None:
    """The purge follows the time index, so opening (and `status`) never read the pages of the RPI
    index: damage there went unnoticed until some check reached it.  `bluezone doctor` reads every page."""
    data, _ = healthy
    db = tmp_path / "store.db"
    db.write_bytes(data)
    db.chmod(0o600)
    sound = _doctor(db)
    assert sound["status"] == "ok" and "every page read, no damage" in sound["detail"]
    _damage_a_page_of(db, "sightings_by_rpi")
    status = CliRunner().invoke(cli, ["status", "--db", str(db)], obj={"clock": VirtualClock(NOON)})
    assert status.exit_code == 0, status.output  # what opening reads is sound: nothing says otherwise
    found = _doctor(db)
    assert found["status"] == "fail" and found["exit_code"] == 1
    assert found["detail"].startswith(f"{db} is damaged: ") and "move it away" in found["fix"]


def test_doctor_names_a_store_too_damaged_to_open_and_a_missing_one(healthy: tuple[bytes, Path], tmp_path: Path) -> None:
    data, _ = healthy
    db = tmp_path / "store.db"
    db.write_bytes(data[:100] + bytes(len(data) - 100))  # the schema page gone
    db.chmod(0o600)
    broken = _doctor(db)
    assert broken["status"] == "fail" and "is not a usable sighting database" in broken["detail"]
    newer = tmp_path / "newer.db"
    newer.write_bytes(data)
    newer.chmod(0o600)
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    upgrade = _doctor(newer)  # not damage: no advice to move it away
    assert upgrade["status"] == "fail" and "upgrade bluezone" in upgrade["detail"] and upgrade["fix"] == ""
    missing = _doctor(tmp_path / "none.db")
    assert missing["status"] == "warn" and "no sighting database at" in missing["detail"]
    assert not (tmp_path / "none.db").exists()


def test_doctor_purges_the_store_at_the_cli_s_clock_as_status_does(healthy: tuple[bytes, Path], tmp_path: Path) -> None:
    """`doctor` opened the store without a clock, so it purged at the newest record: on a store whose
    daemon stopped 20 days ago it kept what `status` and `check` delete on opening.  Now the same."""
    from bluezone.crypto.intervals import DAY_SECONDS

    data, _ = healthy
    db = tmp_path / "store.db"
    db.write_bytes(data)
    db.chmod(0o600)
    later = VirtualClock(NOON + 20 * DAY_SECONDS)
    result = CliRunner().invoke(cli, ["doctor", "--scan-seconds", "0", "--db", str(db), "--json"], obj={"clock": later})
    [check] = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "sighting-store"]
    assert check["status"] == "ok", check
    with SightingStore.open(db, create=False, purge_now=NOON) as store:
        assert store.count_sightings() == 0 and store.daily_keys() == []


def test_doctor_counts_the_write_ahead_log_in_the_store_size(tmp_path: Path) -> None:
    """A running daemon's store is mostly in its -wal file: `doctor` said '(0.0 MiB ...)' of a store
    `status` called 0.3 MB (walk17, doctor beside `bluezone run --backend emulated`)."""
    db = tmp_path / "store.db"
    with SightingStore.open(db) as store:  # held open, as the daemon holds it: the log is not folded back
        store.add_sightings(random_sightings(3_000, NOON - 3600, 3000))
        detail = _doctor(db)["detail"]
        main, wal = db.stat().st_size, Path(f"{db}-wal").stat().st_size
    assert wal > 100_000 and f"({(main + wal) / 2**20:,.1f} MiB in " in detail, detail
