"""The sighting store: files and modes, schema versions, round trips, retention, stats."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from bluezone.crypto.intervals import DAY_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import NotAStoreError, StoreError
from bluezone.proximity.store import schema as store_module
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
from bluezone.proximity.store import RETENTION_DAYS, SCHEMA_VERSION, SightingStore, default_db_path

from .conftest import NOON, random_sightings


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_path_follows_xdg(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "bluezone" / "bluezone.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / ".local" / "share" / "bluezone" / "bluezone.db"


def test_default_open_creates_private_file_and_dirs(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    old = os.umask(0o022)
    try:
        with SightingStore.open() as store:
            store.add_sightings(random_sightings(10, NOON, 60))
            path = store.path
            assert path == tmp_path / "xdg" / "bluezone" / "bluezone.db"
            for suffix in ("", "-wal", "-shm"):
                f = str(path) + suffix
                assert os.path.exists(f) and mode(f) == 0o600, f
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700


def test_wal_mode_and_schema_version(db) -> None:
    with SightingStore.open(db) as store:
        assert store.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.schema_version == SCHEMA_VERSION >= 1


def test_tables_are_inspectable_with_sqlite_utils(db) -> None:
    with SightingStore.open(db) as store:
        store.add_sightings(random_sightings(3, NOON, 60), ["AA:BB:CC:DD:EE:FF", None, "11:22:33:44:55:66"])
        store.save_daily_key(DailyKey(bytes(range(16)), rolling_start(NOON)), created_at=NOON)
    plain = sqlite_utils.Database(db)
    assert set(plain.table_names()) >= {"daily_keys", "sightings"}
    assert set(plain["sightings"].columns_dict) == {"time", "rpi", "aem", "rssi", "tx_power", "address", "adapter"}
    assert set(plain["daily_keys"].columns_dict) == {"key", "rolling_start", "rolling_period", "created_at"}
    assert any(ix.columns == ["time"] for ix in plain["sightings"].indexes)
    rows = list(plain["sightings"].rows)
    assert [r["address"] for r in rows] == ["AA:BB:CC:DD:EE:FF", None, "11:22:33:44:55:66"]
    assert plain["daily_keys"].count == 1


def test_newer_schema_is_refused(db) -> None:
    SightingStore.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SightingStore.open(db)


def test_migrations_run_in_order_and_once(db, monkeypatch) -> None:
    SightingStore.open(db).close()
    calls = []
    known = len(store_module.MIGRATIONS)

    def v_next(database: sqlite_utils.Database) -> None:
        calls.append("next")
        database["server_state"].create({"name": str, "value": str}, pk="name")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, v_next])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(store_module.MIGRATIONS))
    with SightingStore.open(db) as store:
        assert store.schema_version == known + 1 and "server_state" in store.db.table_names()
    SightingStore.open(db).close()
    assert calls == ["next"]


def test_foreign_and_corrupt_files_are_store_errors(tmp_path) -> None:
    other = tmp_path / "other.db"
    sqlite_utils.Database(other)["recipes"].insert({"name": "soup"})
    with pytest.raises(StoreError, match="not a bluezone database"):
        SightingStore.open(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable"):
        SightingStore.open(junk)
    with pytest.raises(StoreError, match="directory"):
        SightingStore.open(tmp_path)


def test_a_fifo_or_device_is_no_store_and_an_input_error(tmp_path: Path) -> None:
    # a FIFO was SQLite's 'disk I/O error', exit 1 (an input error is exit 2)
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(NotAStoreError, match="not a regular file"):
            SightingStore.open(path, create=False)
    assert NotAStoreError("x").exit_code == 2


def test_create_false_refuses_missing(db) -> None:
    with pytest.raises(StoreError, match="no sighting database"):
        SightingStore.open(db, create=False)
    assert not db.exists()


def test_missing_store_points_at_the_emulated_one_beside_it(tmp_path) -> None:
    """Someone who ran `bluezone run --backend emulated` and then `bluezone status` is told where
    the sightings went, not 'run `bluezone run` first' (which they just did)."""
    SightingStore.open(tmp_path / "emulated.db").close()
    with pytest.raises(NotAStoreError) as info:
        SightingStore.open(tmp_path / "bluezone.db", create=False)
    assert f"--db {tmp_path / 'emulated.db'}" in str(info.value)
    assert "run `bluezone run` first" not in str(info.value)
    assert not (tmp_path / "bluezone.db").exists()


def test_sightings_round_trip_and_time_filters(db) -> None:
    rows = random_sightings(500, NOON, 3600, seed=3)
    with SightingStore.open(db) as store:
        assert store.add_sightings(rows) == 500
        assert store.add_sightings(np.empty(0, SIGHTING_DTYPE)) == 0
        back = store.sightings()
        assert back.dtype == SIGHTING_DTYPE
        np.testing.assert_array_equal(back, rows)
        # NO_TX_POWER is stored as NULL, so sqlite-utils users see "absent"
        nulls = store.db.conn.execute("SELECT COUNT(*) FROM sightings WHERE tx_power IS NULL").fetchone()[0]
        assert nulls == int((rows["tx_power"] == NO_TX_POWER).sum())
        lo, hi = NOON + 600, NOON + 1200
        part = store.sightings(since=lo, until=hi)
        np.testing.assert_array_equal(part, rows[(rows["time"] >= lo) & (rows["time"] < hi)])
        assert store.count_sightings(since=lo, until=hi) == len(part)
        assert len(store.sightings(since=NOON + 10_000)) == 0
        # counted only as far as asked (a check asks whether a day holds more than so many)
        for at_most in (0, 1, len(part) - 1, len(part), len(part) + 1, 10**9):
            assert store.count_sightings(since=lo, until=hi, at_most=at_most) == min(len(part), at_most)
        assert store.count_sightings(at_most=-5) == 0 and store.count_sightings(at_most=499) == 499


def test_add_sightings_checks_its_input(db) -> None:
    with SightingStore.open(db) as store:
        with pytest.raises(StoreError, match="SIGHTING_DTYPE"):
            store.add_sightings(np.zeros(3))
        with pytest.raises(StoreError, match="addresses"):
            store.add_sightings(random_sightings(3, NOON, 10), ["a"])


def test_hand_inserted_bad_rows_are_skipped_on_load(db) -> None:
    with SightingStore.open(db) as store:
        store.add_sightings(random_sightings(5, NOON, 10))
        store.db["sightings"].insert({"time": NOON, "rpi": b"short", "aem": b"1234", "rssi": -50})
        assert len(store.sightings()) == 5


def test_daily_keys(db) -> None:
    day = rolling_start(NOON)
    keys = [DailyKey(bytes([i + 3]) * 16, day + 144 * i) for i in range(-3, 1)]
    with SightingStore.open(db) as store:
        for k in reversed(keys):
            store.save_daily_key(k, created_at=NOON)
        assert store.daily_keys() == keys
        assert store.daily_keys(since_interval=day - 144) == keys[-2:]
        assert store.key_for_day(day) == keys[-1]
        assert store.key_for_day(day + 144) is None
        # saving again (e.g. an early key change shortening the period) updates, never duplicates
        store.save_daily_key(DailyKey(keys[-1].key, day, 40))
        assert store.key_for_day(day) == DailyKey(keys[-1].key, day, 40)
        assert len(store.daily_keys()) == 4


def test_retention_15_days_purged_13_kept(db) -> None:
    now = NOON
    rows = random_sightings(2, now, 1)
    rows["time"] = [now - 15 * DAY_SECONDS, now - 13 * DAY_SECONDS]
    old_key = DailyKey(b"o" * 16, rolling_start(now - 15 * DAY_SECONDS))
    kept_key = DailyKey(b"k" * 16, rolling_start(now - 13 * DAY_SECONDS))
    with SightingStore.open(db) as store:
        store.add_sightings(rows)
        store.save_daily_key(old_key)
        store.save_daily_key(kept_key)
        result = store.purge(now)
        assert result["sightings_deleted"] == 1 and result["daily_keys_deleted"] == 1
        assert result["retention_days"] == RETENTION_DAYS
        assert store.sightings()["time"].tolist() == [now - 13 * DAY_SECONDS]
        assert store.daily_keys() == [kept_key]
        assert store.purge(now)["sightings_deleted"] == 0


def test_purge_deletes_rows_of_unknown_age_in_every_table(db) -> None:
    """A time that is no number (NULL, text, a blob) or past any real date cannot be shown to be
    within the retention: the purge deletes it with the expired rows, and keeps the rest."""
    now = NOON
    with SightingStore.open(db) as store:
        rows = random_sightings(2, now, 1)
        rows["time"] = [now - 15 * DAY_SECONDS, now - 13 * DAY_SECONDS]
        store.add_sightings(rows)
        with store.db.conn as conn:  # rows the daemon never writes: a hand edit, damage
            for bad in (None, "abc", b"\x01", 1e300, float("inf")):
                conn.execute("INSERT INTO sightings (time, rpi, aem, rssi) VALUES (?, zeroblob(16), zeroblob(4), -50)", (bad,))
                conn.execute("INSERT INTO bluezone3_sightings (time, bzid, rssi) VALUES (?, zeroblob(12), -50)", (bad,))
                conn.execute("INSERT INTO checkins (location_id, start_time, end_time) VALUES (zeroblob(32), ?, ?)", (now, bad))
            conn.execute("INSERT INTO bluezone3_sightings (time, bzid, rssi) VALUES (?, zeroblob(12), -50)", (now - DAY_SECONDS,))
            conn.execute("INSERT INTO checkins (location_id, start_time, end_time) VALUES (zeroblob(32), ?, ?)", (now - 60, now))
        assert store.count_sightings() == 7
        result = store.purge(now)
        assert (result["sightings_deleted"], result["bluezone3_sightings_deleted"], result["checkins_deleted"]) == (6, 5, 5)
        assert store.sightings()["time"].tolist() == [now - 13 * DAY_SECONDS] and store.count_sightings() == 1
        assert store.bluezone3_sightings()["time"].tolist() == [now - DAY_SECONDS]
        assert [row[5] for row in store.checkin_rows()] == [now]


def test_a_purge_with_nothing_to_delete_reads_no_rows(db) -> None:
    """Every check and status opens, so purges, the store: with nothing expired that costs a few
    index pages, not a pass over a million rows (the purge's deletes are ranges of the time index)."""
    with SightingStore.open(db) as store:
        store.add_sightings(random_sightings(20_000, NOON - DAY_SECONDS, 3 * 3600))
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        store.db.conn.set_progress_handler(count, 100)  # called every 100 SQLite instructions
        assert store.purge(NOON)["sightings_deleted"] == 0
        store.db.conn.set_progress_handler(None, 0)
    assert steps[0] < 30, f"{steps[0] * 100} SQLite instructions: the purge reads the table"


def test_open_purges_what_is_older_than_the_newest_record_by_14_days(db) -> None:
    rows = random_sightings(3, NOON, 1)
    rows["time"] = [NOON - 20 * DAY_SECONDS, NOON - 1 * DAY_SECONDS, NOON]
    with SightingStore.open(db) as store:
        store.add_sightings(rows)
    with SightingStore.open(db) as store:
        assert len(store.sightings()) == 2
    with SightingStore.open(db, purge_now=NOON + 14 * DAY_SECONDS) as store:
        assert store.sightings()["time"].tolist() == [NOON]


@pytest.mark.wall_clock
def test_rows_from_a_clock_that_ran_ahead_do_not_erase_the_rest_on_open(db) -> None:
    """A bad RTC or an NTP step stamped a few rows 30 days ahead of the wall clock; the next open
    must not take them as "now" and delete every real sighting and daily key."""
    import time

    wall = time.time()
    rows = random_sightings(2, wall, 1)
    rows["time"] = [wall - DAY_SECONDS, wall + 30 * DAY_SECONDS]
    key = DailyKey(b"k" * 16, rolling_start(wall - DAY_SECONDS))
    with SightingStore.open(db) as store:
        store.add_sightings(rows)
        store.save_daily_key(key)
    with SightingStore.open(db) as store:
        assert len(store.sightings()) == 2 and store.daily_keys() == [key]


def test_stats(db) -> None:
    rows = random_sightings(100, NOON, 1)
    rows["time"][:50] = NOON - DAY_SECONDS
    rows = np.sort(rows, order="time")
    with SightingStore.open(db) as store:
        empty = store.stats()
        assert empty["sightings"] == 0 and empty["days_covered"] == 0 and empty["first_sighting"] is None
        store.add_sightings(rows)
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(NOON)))
        info = store.stats()
    assert info["sightings"] == 100 and info["days_covered"] == 2 and info["daily_keys"] == 1
    assert info["first_sighting"] == rows["time"][0] and info["last_sighting"] == rows["time"][-1]
    assert info["db_path"] == str(db) and info["db_bytes"] > 0


def test_memory_store() -> None:
    with SightingStore.open(":memory:") as store:
        store.add_sightings(random_sightings(4, NOON, 1))
        assert store.stats()["sightings"] == 4 and store.path is None


def _foreign_files(tmp_path) -> dict[str, object]:
    """SQLite files of other programs that an open must refuse without writing to them."""
    files = {}
    plain = tmp_path / "recipes.db"
    sqlite_utils.Database(plain)["recipes"].insert({"name": "soup"})
    files["other tables"] = plain
    versioned = tmp_path / "versioned.db"
    conn = sqlite3.connect(versioned)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # another program's own version number
    conn.commit()
    conn.close()
    files["another program's user_version"] = versioned
    lookalike = tmp_path / "lookalike.db"
    conn = sqlite3.connect(lookalike)
    conn.execute("CREATE TABLE sightings (bird TEXT, place TEXT)")  # same name, other columns
    conn.execute("INSERT INTO sightings VALUES ('heron', 'pond')")
    conn.commit()
    conn.close()
    files["a sightings table of other columns"] = lookalike
    return files


@pytest.mark.parametrize("create", [True, False])
def test_foreign_sqlite_files_are_refused_unchanged(tmp_path, create: bool) -> None:
    for what, path in _foreign_files(tmp_path).items():
        before = path.read_bytes()
        tables = sqlite_utils.Database(path).table_names()
        with pytest.raises(StoreError, match="not a bluezone database"):
            SightingStore.open(path, create=create)
        assert path.read_bytes() == before, what  # not even switched to WAL mode
        assert sqlite_utils.Database(path).table_names() == tables, what
        assert not os.path.exists(f"{path}-wal"), what


def test_required_columns_follow_the_migrations() -> None:
    db = sqlite_utils.Database(memory=True)
    for version, migration in enumerate(store_module.MIGRATIONS, 1):
        migration(db)
        have = {name: set(db[name].columns_dict) for name in db.table_names()}
        assert have == {t: set(c) for t, c in store_module._required_tables(version).items()}


def test_a_path_that_is_no_store_is_an_input_error(tmp_path: Path) -> None:
    """Exit code 2 is for what the user pointed at (``--db``); other store trouble stays 1."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 1000)
    for path in (tmp_path / "missing.db", tmp_path, junk):
        with pytest.raises(NotAStoreError) as info:
            SightingStore.open(path, create=False)
        assert info.value.exit_code == 2 and isinstance(info.value, StoreError)
    assert StoreError("locked").exit_code == 1


def test_a_migration_failing_halfway_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bluezone.proximity.store import schema as store_module

    first = store_module.MIGRATIONS[0]

    def half_done(db: sqlite_utils.Database) -> None:
        first(db)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_module, "MIGRATIONS", [half_done, *store_module.MIGRATIONS[1:]])
    db = tmp_path / "new.db"
    with pytest.raises(StoreError):
        SightingStore.open(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    conn.close()


def test_hand_edited_rows_are_skipped_and_a_damaged_daemon_report_ignored(tmp_path: Path) -> None:
    """Rows the daemon never writes (text times or RSSI, a non-JSON report) used to stop status and check."""
    db = tmp_path / "b.db"
    now = 1_800_000_000.0
    with SightingStore.open(db) as store:
        rows = np.zeros(2, SIGHTING_DTYPE)
        rows["time"] = [now - 60, now]
        rows["rssi"] = -60
        store.add_sightings(rows)
        store.save_daemon_state({"backend": "emulated"}, now)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO sightings (time, rpi, aem, rssi) VALUES ('abc', zeroblob(16), zeroblob(4), -50)")
    conn.execute("INSERT INTO sightings (time, rpi, aem, rssi) VALUES (?, zeroblob(16), zeroblob(4), 'loud')", (now,))
    conn.execute(
        "INSERT INTO sightings (time, rpi, aem, rssi, tx_power) VALUES (?, zeroblob(16), zeroblob(4), -50, 'x')", (now,)
    )
    conn.execute("UPDATE daemon_state SET value = 'not json'")
    conn.commit()
    conn.close()
    with SightingStore.open(db, create=False, purge_now=now) as store:
        stats = store.stats()
        assert stats["last_sighting"] == now and stats["daemon"] is None
        assert len(store.sightings()) == 2  # the readable rows
        assert store.count_sightings() == 4  # the row of unknown age went with the purge on open; the others are kept unread


def test_purge_forgets_the_f1_f2_levels_told_for_days_past_retention(db) -> None:
    """Which level (F1, F2) a check told for a day says this device met a case or a close contact
    then: the daemon's purge deletes it with the day, as it deletes that day's sightings, even when
    no check runs again (only a check used to delete it, 14 days after it was told)."""
    import datetime as dt

    def day(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat()

    with SightingStore.open(db) as store:
        old, kept = NOON - 15 * DAY_SECONDS, NOON - 13 * DAY_SECONDS
        store.save_warning_levels([(b"a" * 32, day(old), "F2"), (b"b" * 32, day(kept), "F1")], NOON - DAY_SECONDS)
        store.purge(NOON)
        assert store.warning_level(b"a" * 32, day(old)) is None
        assert store.warning_level(b"b" * 32, day(kept)) == "F1"
        store.purge(NOON + 30 * DAY_SECONDS)
        assert store.warning_level(b"b" * 32, day(kept)) is None


def test_processed_batch_names_are_purged_two_days_past_the_retention(tmp_path) -> None:
    """The names of batches a key-server check has processed (what it skips next time) were kept
    for ever: a node checking every hour for a year keeps tens of thousands.  They go with the rest
    of the store's purge, two days past the 14-day window (a server lists a file until 14 days after
    its day, from an index rewritten at each export: a name forgotten while listed is matched again)."""
    now = NOON
    server = "https://keys.example"
    with SightingStore.open(tmp_path / "node.db", purge_now=now) as store:
        for age_days in (20, 16.5, 15.5, 3):
            store.save_keyserver_batches(server, {f"batch-{age_days}": 7}, now - age_days * DAY_SECONDS)
        store.save_keyserver_batches("https://other.example", {"old-elsewhere": 1}, now - 30 * DAY_SECONDS)
        store.purge(now)
        assert store.keyserver_batches(server) == {"batch-15.5", "batch-3"}
        assert store.keyserver_batches("https://other.example") == set()
    with SightingStore.open(tmp_path / "node.db", purge_now=now + 2 * DAY_SECONDS) as store:  # purged on open too
        assert store.keyserver_batches(server) == {"batch-3"}


def test_the_revision_token_of_an_upload_is_purged_after_the_retention(tmp_path) -> None:
    """The token a key server gave with an upload says this device uploaded its keys (a positive
    test): it was deleted only when a later upload asked for it, so a device that uploaded once
    kept it for ever.  The store's purge (daemon, ``bluezone purge``, each open) deletes it with
    the keys it covered, 14 days after it was saved."""
    with SightingStore.open(tmp_path / "node.db", purge_now=NOON) as store:
        store.save_revision_token("https://keys.example", "old-token", NOON - 15 * DAY_SECONDS)
        store.save_revision_token("https://other.example", "new-token", NOON - 13 * DAY_SECONDS)
        store.purge(NOON)
        assert store.revision_token("https://keys.example") is None  # asked without a time: not deleted by asking
        assert store.revision_token("https://other.example") == "new-token"
    with SightingStore.open(tmp_path / "node.db", purge_now=NOON + 2 * DAY_SECONDS) as store:  # purged on open too
        assert store.revision_token("https://other.example") is None


def test_a_link_made_ahead_to_a_store_not_there_yet_gets_a_private_file(tmp_path) -> None:
    """The store kept on a larger disk through a link made before the first run: O_EXCL refused the link and
    SQLite, following it, made the store with the umask's mode (0644: keys and sightings readable by all)."""
    real = tmp_path / "big-disk" / "bluezone.db"
    real.parent.mkdir()
    link = tmp_path / "bluezone.db"
    link.symlink_to(real)
    old = os.umask(0o022)
    try:
        with SightingStore.open(link) as store:
            store.add_sightings(random_sightings(10, NOON, 60))
    finally:
        os.umask(old)
    assert link.is_symlink()  # still the link, the store at the file it names
    for suffix in ("", "-wal", "-shm"):
        f = str(real) + suffix
        assert not os.path.exists(f) or mode(f) == 0o600, f
    assert mode(real) == 0o600
