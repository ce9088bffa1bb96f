"""A store that can be read but not written (its file or folder read-only, a read-only mount): every
command, `status` included, said "... is not a usable sighting database: attempt to write a readonly
database", exit 1, as for a damaged file (whose advice, move it away, is wrong here).  Now commands that
only read it work (the purge on open is postponed, as on a full disk), and a write says it is read-only."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import INTERVAL_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.keyformat.keyfile import write_keys_json
from bluezone.keyformat.keys import empty_keys
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, SIGHTING_DTYPE
from bluezone.errors import StoreReadOnlyError
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.failures import unusable

from .conftest import NOON, bluezone_without_write_access as _bluezone, random_sightings, without_write_access as _without_write_access


READ_ONLY = ("it is read-only (attempt to write a readonly database); check the owner and permissions of the file, its"
             " -wal and -shm files and its folder, or whether its file system is mounted read-only")


def _refusal(store: Path) -> str:
    """The one line for a store that cannot be written: the file read-only, or its folder too (then even a
    read fails, for want of the WAL's -shm file)."""
    if store.parent.stat().st_mode & 0o200:
        return f"Error: cannot write to {store}: {READ_ONLY}"
    return (
        f"Error: cannot open {store}: to read or write a WAL store SQLite makes its s.db-wal and -shm files beside it,"
        f" and its folder {store.parent} is read-only (to this user, or a read-only file system): run as the store's"
        " owner, make the folder writable, or copy the store into a writable folder and give the copy with --db"
    )


@pytest.fixture(params=["file", "file and folder"])
def read_only_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    db = tmp_path / "store" / "s.db"
    now = time.time()
    with SightingStore.open(db) as store:
        store.add_sightings(random_sightings(20, now - 3600, 1))
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(now)))
    db.chmod(0o400)
    if request.param == "file and folder":
        db.parent.chmod(0o500)
    yield db
    db.parent.chmod(0o700)


def test_status_reads_a_read_only_store_or_says_why_it_cannot(read_only_store: Path) -> None:
    """A read-only file in a folder it may write (SQLite's -shm there) is read; in a read-only folder
    SQLite cannot read a WAL store at all (SQLITE_READONLY_DIRECTORY): then that is said, and why (it said
    "cannot write to" the file, for a status that writes nothing, and not that the folder was the trouble)."""
    done = _bluezone("status", "--db", str(read_only_store))
    assert "not a usable" not in done.stderr
    if read_only_store.parent.stat().st_mode & 0o200:  # the folder writable
        assert done.returncode == 0, done.stderr
        assert "sightings  20" in done.stdout
        assert "WARNING" not in done.stderr  # nothing past the 14 days: nothing a purge would delete, nothing to say
    else:
        assert done.returncode == 1 and done.stderr.splitlines()[-1] == _refusal(read_only_store)


def test_a_write_to_a_read_only_store_says_so_in_one_line(read_only_store: Path) -> None:
    before = read_only_store.read_bytes()
    done = _bluezone("purge", "--db", str(read_only_store))
    assert done.returncode == 1, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert error == [_refusal(read_only_store)], done.stderr
    assert read_only_store.read_bytes() == before


@pytest.mark.parametrize("name", ["SQLITE_READONLY", "SQLITE_READONLY_DIRECTORY", "SQLITE_READONLY_CANTINIT"])
def test_sqlites_read_only_errors_are_said_as_read_only(tmp_path: Path, name: str) -> None:
    exc = sqlite3.OperationalError("attempt to write a readonly database")
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    error = unusable(tmp_path / "s.db", exc)
    assert isinstance(error, StoreReadOnlyError) and "is read-only" in str(error) and "not a usable" not in str(error)


#: The CLI in a child process (under ``_without_write_access``) on a virtual clock at argv[1].
CLI_AT = """
import sys
from click.testing import CliRunner
from bluezone.cli import cli
from bluezone.clock import VirtualClock
done = CliRunner().invoke(cli, sys.argv[2:], obj={"clock": VirtualClock(float(sys.argv[1]))})
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
sys.exit(done.exit_code)
"""


def _heard(tek: bytes, first_interval: int, minutes: int) -> np.ndarray:
    """A sighting every 10 s for ``minutes``, at -60 dBm, of the adverts ``tek`` sent from ``first_interval``."""
    times = first_interval * INTERVAL_SECONDS + 5.0 + np.arange(0, minutes * 60, 10.0)
    intervals = (times // INTERVAL_SECONDS).astype(int)
    values = {i: rpi(rpi_key(tek), i) for i in set(intervals.tolist())}
    out = np.zeros(len(times), SIGHTING_DTYPE)
    out["time"], out["rssi"], out["tx_power"] = times, -60, -128
    out["rpi"] = [np.void(values[i]) for i in intervals]
    out["aem"] = [np.void(aem(aem_key(tek), values[i], bytes(Metadata(tx_power=-20)))) for i in intervals]
    return out


def test_a_read_only_store_matches_no_sighting_older_than_the_retention(tmp_path: Path) -> None:
    """Its purge is only postponed (it cannot write): a 15-day-old sighting of an F0's key stays in the file,
    and a check matched it.  Reads leave out what the purge at the same clock would have deleted: only the
    13-day-old contact is reported."""
    today = rolling_start(NOON)
    old, recent = b"\x01" * 16, b"\x02" * 16
    db = tmp_path / "store" / "s.db"
    with SightingStore.open(db, purge_now=NOON) as store:
        store.add_sightings(np.concatenate([_heard(old, today - 15 * 144 + 60, 30), _heard(recent, today - 13 * 144 + 60, 30)]))
    keys = empty_keys(2)
    keys["key"] = [np.void(old), np.void(recent)]
    keys["rolling_start"] = [today - 15 * 144, today - 13 * 144]
    keys["rolling_period"] = 144
    write_keys_json(keys, tmp_path / "keys.json")
    db.chmod(0o400)
    try:
        done = _cli_at(NOON, "check", "--keys", str(tmp_path / "keys.json"), "--db", str(db), "--json")
        shown = _cli_at(NOON, "status", "--db", str(db), "--json")
        told = _cli_at(NOON, "check", "--keys", str(tmp_path / "keys.json"), "--db", str(db))  # (its report opens it again)
    finally:
        db.chmod(0o600)
    # the purge could not run: said once a command (the text report's second open said it again), in one line that
    # says what deletes them (it was "retention purge on open postponed: cannot write to ...", as for a full disk)
    for command in (done, shown, told):
        assert [line.partition(" WARNING ")[2] for line in command.stderr.splitlines()] == [
            f"bluezone.proximity.store: {db} holds sightings older than 14 days: no command shows or matches them, but"
            " they stay in the file until an open that can write it deletes them (it is read-only to this user:"
            f" `bluezone purge --db {db}` run by its owner)"
        ], command.stderr
    assert "1 exposure(s)" in told.stdout, told.stdout
    report = json.loads(done.stdout)
    assert [e["date"] for e in report["exposures"]] == [_date(today - 13 * 144)], done.stderr
    assert json.loads(shown.stdout)["sightings"] == 180, shown.stderr  # the recent contact's alone
    with SightingStore.open(db, create=False) as store:  # the old sightings were there all along
        assert store.count_sightings(until=(today - 14 * 144) * INTERVAL_SECONDS) == 180


def _cli_at(now: float, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_without_write_access(), sys.executable, "-c", CLI_AT, str(now), *args],
                          capture_output=True, text=True, timeout=120)


def _date(interval: int) -> str:
    return dt.datetime.fromtimestamp(interval * INTERVAL_SECONDS, dt.UTC).date().isoformat()


def test_no_read_returns_a_row_before_the_retention_at_the_stores_clock(tmp_path: Path) -> None:
    """Rows before the cutoff of the clock the store was opened with (here written after the open's purge, as
    a read-only store's stay unpurged) are left out by every read of sightings, check-ins and daily keys (keys
    were not: a read-only store's `status` counted a 20-day-old key), and by ``stats``; a purge at a later
    clock moves the cutoff."""
    cutoff = NOON - 14 * 86400
    with SightingStore.open(tmp_path / "s.db", purge_now=NOON) as store:
        assert store.retained_since == cutoff
        rows = random_sightings(200, cutoff - 3600, 7200, seed=3)  # half an hour either side
        store.add_sightings(rows)
        v3 = np.zeros(4, BLUEZONE3_SIGHTING_DTYPE)
        v3["time"] = [cutoff - 60, cutoff - 1, cutoff, cutoff + 60]
        store.add_bluezone3_sightings(v3)
        for end in (cutoff - 1, cutoff + 1):
            store.add_checkin(b"v" * 16, b"p", "cafe", "street", end - 600, end, True, "url", end)
        kept = rows[rows["time"] >= cutoff]
        assert np.array_equal(store.sightings(), kept)
        assert np.array_equal(store.sightings(since=cutoff - 7200), kept)
        assert np.array_equal(store.usable_sightings()[0], kept)
        assert store.count_usable() == store.count_sightings() == len(kept)
        every, _ = store.heard_rpis(repeated=1)
        assert sorted(bytes(r) for r in every) == sorted(bytes(r) for r in kept["rpi"])
        assert np.array_equal(store.sightings_with_rpis(rows["rpi"])[0], kept)
        assert store.heard_intervals()[0] == int(cutoff // INTERVAL_SECONDS)
        assert store.bluezone3_sightings()["time"].tolist() == [cutoff, cutoff + 60]
        assert [row[5] for row in store.checkin_rows()] == [cutoff + 1]
        day0 = rolling_start(cutoff)  # the key of the cutoff's day ends after it: kept; the day before's had
        for day in (-2, -1, 0, 1):  # ended by then, and a purge deletes it
            store.save_daily_key(DailyKey(bytes([day + 3]) * 16, day0 + day * 144))
        assert [k.rolling_start for k in store.daily_keys()] == [day0, day0 + 144]
        assert [k.rolling_start for k in store.daily_keys(since_interval=0)] == [day0, day0 + 144]
        assert store.count_daily_keys() == 2
        stats = store.stats()
        assert (stats["daily_keys"], stats["first_key_rolling_start"]) == (2, day0)
        assert (stats["sightings"], stats["first_sighting"]) == (len(kept), kept["time"].min())
        assert (stats["bluezone3_sightings"], stats["checkins"]) == (2, 1)
        store.purge(NOON + 1800)
        assert store.retained_since == cutoff + 1800 and store.count_sightings() == np.count_nonzero(kept["time"] >= cutoff + 1800)


def test_a_read_only_stores_bluezone3_chain_is_read_as_the_purge_leaves_it(tmp_path: Path) -> None:
    """The purge moves the v3 chain's start to the first day within the retention, or deletes a chain no ID was sent
    from since: on a read-only store it cannot, and `keys export --protocol bluezone3` handed over a chain last used
    20 days ago as this device's F0 list (its key hashed forward to 13 days ago: IDs it never sent).  Reads now give
    what the purge at the same clock leaves."""
    cutoff, day0 = NOON - 14 * 86_400, int((NOON - 20 * 86_400) // 86_400)
    chain = b"c" * 32
    for used_at, expected in ((NOON - 20 * 86_400, None), (NOON - 86_400, "kept")):
        db = tmp_path / f"{expected}.db"
        with SightingStore.open(db, purge_now=NOON) as store:  # written after the open's purge, as a read-only store's stay
            store.save_bluezone3_key(day0, chain, used_at)
            read = store.bluezone3_key()
            store.purge(NOON)
            assert read == store.bluezone3_key() == (None if expected is None else (int(cutoff // 86_400), read[1]))
        with sqlite3.connect(db) as conn:  # what the purge left in the file
            left = conn.execute("SELECT day, key FROM bluezone3_key").fetchall()
        assert left == ([] if expected is None else [read])
    db = tmp_path / "store" / "s.db"
    with SightingStore.open(db, purge_now=NOON) as store:
        store.save_bluezone3_key(day0, chain, NOON - 20 * 86_400)
    db.chmod(0o400)
    try:
        done = _cli_at(NOON, "keys", "export", "--protocol", "bluezone3", "--out", "-", "--db", str(db))
    finally:
        db.chmod(0o600)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert "never sent Bluezone v3 IDs" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("protocol", ["gaen", "bluezone3"])
@pytest.mark.parametrize("to", ["file", "-"])
def test_keys_export_from_a_read_only_store_hands_over_nothing(tmp_path: Path, protocol: str, to: str) -> None:
    """`keys export` wrote the keys, today's included (an F0 list: its chain's key), and only then failed to save
    today's key as cut (to start a new chain): "cannot write to ...", exit 1, after the export had happened, and
    the device went on sending from the key handed over.  The store's write comes first now (00c4ca7, tested there
    under a held lock): on a read-only store it is refused, nothing leaves (standard output too), the store as it
    was."""
    db = tmp_path / "store" / "s.db"
    with SightingStore.open(db, purge_now=NOON) as store:
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(NOON)))
        store.save_bluezone3_key(int(NOON // 86_400) - 2, b"c" * 32, NOON - 2 * 86_400)
    before = db.read_bytes()
    out = tmp_path / "keys.json"
    db.chmod(0o400)
    try:
        done = _cli_at(NOON, "keys", "export", "--protocol", protocol, "--out", str(out) if to == "file" else "-",
                       "--db", str(db))
    finally:
        db.chmod(0o600)
    assert done.returncode == 1 and done.stderr.splitlines() == [_refusal(db)], done.stderr
    assert done.stdout == "" and not out.exists()
    assert db.read_bytes() == before


def test_an_f0_list_that_cannot_be_written_keeps_its_chain(tmp_path: Path) -> None:
    """The new v3 chain is stored before the list is written: a list the folder refuses puts the old chain back,
    whose IDs can then still be exported (the new chain kept, the old one's never could be)."""
    db = tmp_path / "store" / "s.db"
    with SightingStore.open(db, purge_now=NOON) as store:
        store.save_bluezone3_key(int(NOON // 86_400) - 2, b"c" * 32, NOON - 2 * 86_400)
        chain = store.bluezone3_key()
    gone = _cli_at(NOON, "keys", "export", "--protocol", "bluezone3", "--out", str(tmp_path / "nowhere" / "l.json"),
                   "--db", str(db))
    assert gone.returncode == 2 and gone.stderr.startswith("Error: cannot write the keys to"), gone.stderr
    with SightingStore.open(db, purge_now=NOON) as store:
        assert store.bluezone3_key() == chain
    done = _cli_at(NOON, "keys", "export", "--protocol", "bluezone3", "--out", str(tmp_path / "l.json"), "--db", str(db))
    assert done.returncode == 0, done.stderr
    with SightingStore.open(db, purge_now=NOON) as store:
        assert store.bluezone3_key() != chain  # handed over: a new chain


def test_run_in_a_folder_this_user_may_not_write_says_so(tmp_path: Path) -> None:
    """It said "cannot use PATH.lock as the store's lock: Permission denied", exit 2, as for a path mistyped."""
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o500)
    try:
        done = _bluezone("run", "--backend", "emulated:1", "--duration", "0.5", "--db", str(folder / "s.db"))
    finally:
        folder.chmod(0o700)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: cannot run on {folder / 's.db'}: this user may not make or open its lock {folder / 's.db.lock'}"
        " (Permission denied): run as the store's owner, or give --db a store in a writable folder"
    ]
    assert list(folder.iterdir()) == []
