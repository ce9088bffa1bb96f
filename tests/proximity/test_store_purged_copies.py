"""A purged row must leave no copy in the store's files (docs/proximity.md, "What a deletion leaves in the file").
``secure_delete`` zeroes a cell where it is deleted, but not the stale copies SQLite's page balancing leaves in the
unallocated gap of a live page (``rebuildPage`` moves cells to a sibling without clearing the space they held):
RPIs interleaved in time, as a real store's are, split the index by RPI's leaves (and ``rpi_days``'s) while the
daemon writes, and copies of cells purged later stayed (attack24: 3-10 of 1,800 purged RPIs).  The purge now
rewrites the file (VACUUM) at the first purge of each UTC day (of the retention's cutoff) that finds rows deleted
since the last rewrite: what one purge deletes has no copy left after the first purge of the next day."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

DAY = 86_400
START = 1_780_000_000 // DAY * DAY


def _stored_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _copies(data: bytes, needles: set[bytes]) -> list[int]:
    """Offsets in ``data`` where one of ``needles`` (all of one length, 4 bytes or more) starts: a sieve by first
    two bytes (a table), then by first four, then the whole."""
    if not needles:
        return []
    size = len(next(iter(needles)))
    buf = np.frombuffer(data, np.uint8)
    table = np.zeros(1 << 16, bool)
    table[[int.from_bytes(n[:2], "big") for n in needles]] = True
    at = np.flatnonzero(table[(buf[:-3].astype(np.uint16) << 8) | buf[1:-2]])
    four = (buf[at].astype(np.uint32) << 24) | (buf[at + 1].astype(np.uint32) << 16) | (buf[at + 2].astype(np.uint32) << 8) | buf[at + 3]
    at = at[np.isin(four, np.array([int.from_bytes(n[:4], "big") for n in needles], np.uint32))]
    return [int(o) for o in at if data[o : o + size] in needles]


def _interleaved_day(rng: np.random.Generator, start: float, rpis: int = 300) -> np.ndarray:
    """A day of sightings as the daemon writes them: ``rpis`` RPIs, each heard 1-39 times at random times."""
    ids = rng.integers(0, 256, (rpis, 16), dtype=np.uint8)
    heard = np.repeat(np.arange(rpis), rng.integers(1, 40, rpis))
    rows = np.zeros(len(heard), SIGHTING_DTYPE)
    rows["rpi"] = ids[heard].view("V16").ravel()
    rows["time"] = start + rng.uniform(0, DAY, len(heard))
    rows["rssi"] = -60
    return rows


def test_no_copy_of_a_purged_rpi_stays_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    rng = np.random.default_rng(3)
    with SightingStore.open(path, purge_now=float(START)) as store:
        for day in range(20):  # a day at a time, as the daemon writes: 300 RPIs, each heard 1-39 times
            store.add_sightings(_interleaved_day(rng, START + day * DAY))
        conn = store.db.conn
        before = {bytes(r) for (r,) in conn.execute("SELECT DISTINCT rpi FROM sightings")}
        assert store.purge(float(START + 20 * DAY + 3600))["sightings_deleted"] > 0
        purged = before - {bytes(r) for (r,) in conn.execute("SELECT DISTINCT rpi FROM sightings")}
        assert len(purged) == 6 * 300 and _copies(_stored_bytes(path), purged) == []


class _Written:
    """What a randomized run wrote, by kind (each kind's needles of one length), with the time that purges it."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, float]] = []

    def expired(self, cutoff: float) -> dict[str, set[bytes]]:
        """Each kind's values none of whose rows is kept at ``cutoff`` (an RPI heard again later is still kept)."""
        last: dict[tuple[str, bytes], float] = {}
        for kind, value, until in self.items:
            last[kind, value] = max(until, last.get((kind, value), until))
        out: dict[str, set[bytes]] = {}
        for (kind, value), until in last.items():
            if until < cutoff:
                out.setdefault(kind, set()).add(value)
        return out


def _write_day(store: SightingStore, written: _Written, rng: np.random.Generator, r: random.Random, day: float) -> None:
    """A day of each kind the purge deletes: GAEN sightings (a few flushes), Bluezone v3 sightings, check-ins
    and this device's daily key, in a random pattern."""
    for part in range(r.randint(1, 4)):
        rows = _interleaved_day(rng, day, r.randint(20, 200))
        rows = rows[(rows["time"] - day) * 4 // DAY == part % 4] if r.random() < 0.5 else rows
        store.add_sightings(rows)
        written.items += [("rpi", bytes(x), float(t)) for x, t in zip(rows["rpi"], rows["time"])]
    v3 = np.zeros(r.randint(10, 300), BLUEZONE3_SIGHTING_DTYPE)
    v3["time"] = day + rng.uniform(0, DAY, len(v3))
    v3["bzid"] = np.frombuffer(rng.bytes(12 * len(v3)), "V12")
    v3["rssi"] = -70
    store.add_bluezone3_sightings(v3)
    written.items += [("bzid", bytes(x), float(t)) for x, t in zip(v3["bzid"], v3["time"])]
    for _ in range(r.randint(0, 3)):
        begin = day + r.uniform(0, DAY - 7200)
        payload = rng.bytes(24)
        store.add_checkin(rng.bytes(16), payload, "a venue", "", begin, begin + 3600, True, "qr", begin)
        written.items.append(("payload", payload, begin + 3600))
    key = rng.bytes(16)
    store.save_daily_key(DailyKey(key, rolling_start(day)), created_at=day)
    written.items.append(("key", key, day + DAY))


@pytest.mark.parametrize("seed", [1, 2])
def test_after_the_first_purge_of_a_day_nothing_purged_before_has_a_copy(
    tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Random patterns of writes (every kind the purge deletes) and purges (1-5 a day, at random hours): after
    the first purge of each UTC day of the cutoff, no copy of anything any purge deleted is in the files, the
    live rows read the same (their rowids kept: a check's early read compares them), and no more than one
    rewrite a day was paid."""
    path = tmp_path / "s.db"
    rng, r = np.random.default_rng(seed), random.Random(seed)
    written = _Written()
    with SightingStore.open(path, purge_now=float(START)) as store:
        conn = store.db.conn
        for day in range(18):
            _write_day(store, written, rng, r, START + day * DAY)
            if day < 14:
                continue
            hours = sorted(r.sample(range(24), r.randint(1, 5)))
            for i, hour in enumerate(hours):
                now = START + (day + 1) * DAY + hour * 3600 + r.uniform(0, 3600)
                live = conn.execute("SELECT rowid, rpi, time FROM sightings WHERE time >= ? ORDER BY rowid",
                                    (now - 14 * DAY,)).fetchall()
                with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
                    store.purge(now)
                assert conn.execute("SELECT rowid, rpi, time FROM sightings ORDER BY rowid").fetchall() == live
                if i == 0:
                    data = _stored_bytes(path)
                    for kind, needles in written.expired(now - 14 * DAY).items():
                        assert _copies(data, needles) == [], (kind, day, hour)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert caplog.text.count("rewrote") == 4  # one a day, each day's first purge


def test_a_reader_in_a_transaction_reads_on_through_the_rewrite(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A check reading while the daemon's purge rewrites the file: its snapshot reads the same rows before and
    after; the rewritten file is whole; the WAL the reader kept is emptied by the next purge, copies and all."""
    path = tmp_path / "s.db"
    rng = np.random.default_rng(5)
    with SightingStore.open(path, purge_now=float(START)) as store:
        for day in range(16):
            store.add_sightings(_interleaved_day(rng, START + day * DAY))
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        seen = reader.execute("SELECT rpi, time FROM sightings ORDER BY rpi, time").fetchall()
        old = {bytes(rpi) for rpi, t in seen if t < START + 2 * DAY}
        with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
            assert store.purge(float(START + 16 * DAY))["sightings_deleted"] > 0
        assert "rewrote" in caplog.text and "a reader was in it" in caplog.text
        assert reader.execute("SELECT rpi, time FROM sightings ORDER BY rpi, time").fetchall() == seen
        with SightingStore.open(path, create=False, purge_now=float(START + 16 * DAY)) as check:  # a check opened now
            heard = {bytes(r) for r in check.heard_rpis()[0]}  # (its read: from rpi_days, rewritten too)
        assert heard == {bytes(r) for (r,) in store.db.conn.execute("SELECT DISTINCT rpi FROM sightings")} != set()
        reader.execute("COMMIT")
        assert reader.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert reader.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == store.count_sightings() > 0
        reader.close()
        store.purge(float(START + 16 * DAY))  # nothing to delete: the WAL emptied
        gone = old - {bytes(r) for (r,) in store.db.conn.execute("SELECT DISTINCT rpi FROM sightings")}
        assert len(gone) > 500 and _copies(_stored_bytes(path), gone) == []


def test_a_running_daemon_s_hourly_purge_leaves_no_copy_past_the_next_utc_day(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon on the virtual clock, from 23:30 UTC for two hours, purging hourly: its purges delete the
    sightings and its own daily key as they pass 14 days, and rewrite the file at its first purge (rows
    deleted, none rewritten yet) and at its first purge of the next UTC day (of the cutoff), not at the one
    after; after the rewrite at 00:30, nothing purged by then has a copy in the files, and the store reads whole."""
    path = tmp_path / "me.db"
    begin = START + 15 * DAY - 1800
    rng = np.random.default_rng(7)
    store = SightingStore.open(path, purge_now=float(START))
    for day in range(-1, 3):
        store.add_sightings(_interleaved_day(rng, START + day * DAY))
    own = DailyKey(rng.bytes(16), rolling_start(START))
    store.save_daily_key(own, created_at=START)
    clock = VirtualClock(begin)
    daemon = Daemon(Air(clock, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)
    with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
        clock.run(daemon.run(2 * 3600 + 60))
    assert caplog.text.count("rewrote") == 2  # at 23:30 (the first), 00:30; not at 01:30
    conn = store.db.conn
    cutoff = begin + 3600 - 14 * DAY  # the last rewrite's purge
    assert store.count_sightings(until=cutoff + 3600) == 0  # (and the 01:30 purge's)
    again = np.random.default_rng(7)
    rows = np.concatenate([_interleaved_day(again, START + day * DAY) for day in range(-1, 3)])
    expected = {bytes(x) for x in rows["rpi"][rows["time"] < cutoff]} - {bytes(x) for x in rows["rpi"][rows["time"] >= cutoff]}
    data = _stored_bytes(path)
    assert len(expected) >= 500 and _copies(data, expected) == [] and own.key not in data
    assert daemon.stats.purged_sightings > 0 and conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store.close()


def test_a_rewrite_with_no_room_for_its_copy_is_said_in_one_line_and_stays_owed(tmp_path: Path) -> None:
    """VACUUM copies a database larger than its page cache into SQLite's temporary directory: where no file can
    be made there (/proc), the purge's deletions stand, one warning says where room is needed, the store reads
    as it is, and the next purge that can rewrites it."""
    path = tmp_path / "s.db"
    rng = np.random.default_rng(9)
    with SightingStore.open(path, purge_now=float(START)) as store:
        old = _interleaved_day(rng, START, 3)[:3]  # purged below: a few rows, whose statement journal stays in memory
        store.add_sightings(old)
        recent = np.concatenate([_interleaved_day(rng, START + 15 * DAY) for _ in range(4)])  # ~4 MB: past the cache
        store.add_sightings(recent)
    env = {**os.environ, "SQLITE_TMPDIR": "/proc"}
    script = (f"from bluezone.proximity.store import SightingStore\n"
              f"with SightingStore.open({str(path)!r}, create=False, purge_now={START + 15 * DAY + 3600.0}) as s:\n"
              f"    print(s.purged_on_open['sightings_deleted'], s.count_sightings())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(old)), str(len(recent))]
    warnings = [line for line in done.stderr.splitlines() if "could not rewrite" in line]
    assert len(warnings) == 1 and "in SQLite's temporary directory (/proc: SQLITE_TMPDIR" in warnings[0], done.stderr
    owed = "SELECT name FROM daemon_state WHERE name LIKE 'purge_rewr%' ORDER BY name"
    with sqlite3.connect(path) as conn:
        assert conn.execute(owed).fetchall() == [("purge_rewrite_owed",)]  # still owed
    conn.close()
    script += (f"\n    s.purge({START + 15 * DAY + 7200.0})"  # a daemon's next purges: retried, said once
               f"\n    s.purge({START + 15 * DAY + 10800.0})")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and sum("could not rewrite" in line for line in done.stderr.splitlines()) == 1, done.stderr
    with SightingStore.open(path, create=False, purge_now=START + 15 * DAY + 3600.0) as store:  # (room again)
        assert store.count_sightings() == len(recent)
        assert store.db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert store.db.conn.execute(owed).fetchall() == [("purge_rewritten_day",)]  # paid


def test_a_rewrite_at_a_clock_a_year_ahead_does_not_hold_off_the_next(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The day of the last rewrite holds off another only on that same day: a purge at a clock that ran a year
    ahead (deleting everything) must not leave the purges after the clock is put right without a rewrite."""
    path = tmp_path / "s.db"
    rng = np.random.default_rng(11)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(_interleaved_day(rng, START))
        store.purge(START + 400 * DAY)  # the clock a year ahead: everything purged, the file rewritten
        rows = np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(1, 17)])
        store.add_sightings(rows)
        with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
            assert store.purge(START + 16 * DAY)["sightings_deleted"] > 0  # put right
        assert "rewrote" in caplog.text
        gone = {bytes(r) for r in rows["rpi"][rows["time"] < START + 2 * DAY]} - {bytes(r) for r in rows["rpi"][rows["time"] >= START + 2 * DAY]}
        assert len(gone) > 200 and _copies(_stored_bytes(path), gone) == []


def test_bluezone_purge_rewrites_at_once_what_the_day_s_purges_left(tmp_path: Path) -> None:
    """The daemon's later purges of a day leave their rows' copies to the first purge of the next day; a user who
    runs `bluezone purge` asks for the deletion now: it rewrites whatever is owed, and says so in --json."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    path = tmp_path / "s.db"
    rng = np.random.default_rng(13)
    days = [_interleaved_day(rng, START + day * DAY) for day in range(17)]
    rows = np.concatenate(days)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(np.concatenate(days[:15]))
        store.purge(START + 15 * DAY + 1800)  # the day's first: rewritten
        for day in days[15:]:  # what the daemon writes meanwhile moves cells about
            store.add_sightings(day)
        now = START + 15 * DAY + 20 * 3600
        assert store.purge(now)["sightings_deleted"] > 0  # 20:00, the same day: owed to tomorrow's first purge
        owed = "SELECT 1 FROM daemon_state WHERE name = 'purge_rewrite_owed'"
        assert store.db.conn.execute(owed).fetchone() == (1,)
    cutoff = now - 14 * DAY
    gone = {bytes(r) for r in rows["rpi"][rows["time"] < cutoff]} - {bytes(r) for r in rows["rpi"][rows["time"] >= cutoff]}
    done = CliRunner().invoke(cli, ["purge", "--db", str(path), "--json"], obj={"clock": VirtualClock(now)})
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["rewrite_owed"] is False
    with sqlite3.connect(path) as conn:
        assert conn.execute(owed).fetchone() is None
    conn.close()
    assert len(gone) > 200 and _copies(_stored_bytes(path), gone) == []


def test_a_check_s_early_read_stands_through_its_own_open_s_rewrite(tmp_path: Path) -> None:
    """A check reads the store's RPIs early, then opens it, and that open's purge is the day's first: it rewrites
    the file, which moves the schema cookie on as a restore over the file would.  The early read still stands
    (the rewrite kept every row), a superset of what the purged store holds; a cookie moved by another does not."""
    from bluezone.proximity.store.heardread import EarlyRead

    path = tmp_path / "s.db"
    rng = np.random.default_rng(17)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(16)]))
    with EarlyRead(path, 2) as early:
        read = early.result()
    assert read is not None
    with SightingStore.open(path, create=False, purge_now=float(START + 16 * DAY)) as store:
        assert store.purged_on_open is not None and store.purged_on_open["sightings_deleted"] > 0
        assert store._rewritten_cookies is not None  # (rewritten by this open)
        arrays = store.heard_rpis_read_before(read, 2)
        every = {bytes(r) for r in store.heard_rpis()[0]}
        assert arrays is not None and {bytes(r) for r in arrays[0]} > every
        other = sqlite3.connect(path)  # the cookie moved on by another than this store's rewrite
        other.execute("CREATE TABLE moved (x)")
        other.close()
        assert store.heard_rpis_read_before(read, 2) is None


def _rewrite_rows(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT name, value FROM daemon_state WHERE name LIKE 'purge_rewr%'").fetchall())
    conn.close()
    return rows


def test_a_command_leaves_the_day_s_rewrite_to_the_daemon_running_on_the_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`bluezone status` at 00:10 UTC, before the running daemon's first purge of the day (hourly, at xx:50): its open
    leaves the purge (since the twenty-seventh session the deletion too, which reads hide meanwhile) and the day's
    rewrite to the daemon (which holds the store's lock), whose 00:50 purge does both, within a purge interval: no
    copy of what aged out is left then.  Once no daemon
    runs, a command's open rewrites again (a device without a daemon keeps no copies)."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.proximity.runner import run_daemon

    path = tmp_path / "me.db"
    rng = np.random.default_rng(19)
    rows = np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(-1, 3)])
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(rows)
    begin = START + 15 * DAY - 600  # 23:50
    clock = VirtualClock(begin)
    seen: list[tuple[int, dict[str, str]]] = []

    async def status_at_00_10() -> None:
        await asyncio.sleep(1200)
        done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(clock.now())})
        seen.append((done.exit_code, _rewrite_rows(path)))

    async def both() -> None:
        await asyncio.gather(run_daemon("emulated:0", path, DaemonConfig(), 3600 + 60, clock=clock, handle_signals=False),
                             status_at_00_10())

    with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
        clock.run(both())
    day0 = str((begin - 14 * DAY) // DAY)
    assert seen == [(0, {"purge_rewritten_day": day0})]  # nothing deleted: left to the daemon
    assert caplog.text.count("rewrote") == 2 and "left to the daemon running on it" in caplog.text  # 23:50, 00:50
    cutoff = begin + 3600 - 14 * DAY  # the daemon's 00:50 purge
    gone = {bytes(x) for x in rows["rpi"][rows["time"] < cutoff]} - {bytes(x) for x in rows["rpi"][rows["time"] >= cutoff]}
    assert _rewrite_rows(path) == {"purge_rewritten_day": str(int(cutoff // DAY))}
    assert len(gone) > 300 and _copies(_stored_bytes(path), gone) == []
    later = CliRunner().invoke(cli, ["status", "--db", str(path)], obj={"clock": VirtualClock(begin + DAY + 3600)})  # no daemon
    assert later.exit_code == 0 and _rewrite_rows(path) == {"purge_rewritten_day": str(int(cutoff // DAY) + 1)}


def _daemon_with_neighbours(store: SightingStore, clock: VirtualClock, neighbours: int = 3) -> tuple[Daemon, list[Daemon]]:
    air = Air(clock, 1)
    config = DaemonConfig()
    others = [Daemon(air.radio(f"n{i}", (1.0 + i, 0.0)), SightingStore.open(":memory:"), clock, config,
                     on_status=lambda _: None) for i in range(neighbours)]
    return Daemon(air.radio("me", (0.0, 0.0)), store, clock, config, on_status=lambda _: None), others


def _stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        count = int(conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0])
    conn.close()
    return count


def test_adverts_heard_while_the_daemon_rewrites_the_store_are_all_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The rewrite runs in a thread (given 2 minutes of virtual time here, as on a slow card): the loop hears on,
    the writer keeps what it gets and writes none of it while the VACUUM holds the store's lock (the store's count
    stands still), then writes it all: every advert heard is stored, none dropped, the store whole and rewritten,
    no copy of what the start's purge deleted."""
    path = tmp_path / "me.db"
    rng = np.random.default_rng(23)
    rows = np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(-1, 3)])
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(rows)
    begin = START + 15 * DAY - 600  # 23:50
    clock = VirtualClock(begin, thread_seconds=120.0)
    store = SightingStore.open(path, purge_now=float(START))  # (the daemon's start purges)
    daemon, others = _daemon_with_neighbours(store, clock)
    during: list[tuple[int, int]] = []  # (adverts heard, sightings in the file) during the start's rewrite

    async def look_during_the_rewrite() -> None:
        for at in (5.0, 60.0, 115.0):
            await asyncio.sleep(at - (clock.now() - begin))
            during.append((daemon.stats.adverts_received, _stored(path)))

    async def main() -> None:
        tasks = [asyncio.create_task(d.run(300)) for d in others]
        await asyncio.gather(daemon.run(300), look_during_the_rewrite())
        for d in others:
            d.stop()
        await asyncio.gather(*tasks)

    with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
        clock.run(main())
    heard = [h for h, _ in during]
    assert heard[0] < heard[1] < heard[2] and len({n for _, n in during}) == 1  # heard on, nothing written
    s = daemon.stats
    assert s.adverts_received > heard[2] and s.sightings_stored == s.adverts_received
    assert s.dropped_queue_full == s.dropped_backlog_full == s.malformed == s.write_failures == 0
    assert caplog.text.count("rewrote") == 1
    cutoff = begin - 14 * DAY  # the start's purge
    assert store.count_sightings(until=cutoff) == 0
    gone = {bytes(x) for x in rows["rpi"][rows["time"] < cutoff]} - {bytes(x) for x in rows["rpi"][rows["time"] >= cutoff]}
    assert len(gone) > 300 and _copies(_stored_bytes(path), gone) == []
    assert store.db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store.close()


def test_a_stop_during_the_rewrite_stores_every_advert_and_leaves_the_store_whole(tmp_path: Path) -> None:
    """Ctrl-C (``stop``) a minute into the rewrite: the daemon stops the VACUUM (rolled back, still owed) or finds
    it done, waits for its thread, then writes everything it kept: every advert heard stored, the store whole."""
    path = tmp_path / "me.db"
    rng = np.random.default_rng(29)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(-1, 3)]))
    begin = START + 15 * DAY - 600
    clock = VirtualClock(begin, thread_seconds=120.0)
    store = SightingStore.open(path, purge_now=float(START))
    daemon, others = _daemon_with_neighbours(store, clock)
    before = store.count_sightings()

    async def main() -> None:
        tasks = [asyncio.create_task(d.run(600)) for d in others]
        clock_stop = asyncio.get_running_loop().call_later(60.0, daemon.stop)
        await daemon.run()
        clock_stop.cancel()
        for d in others:
            d.stop()
        await asyncio.gather(*tasks)

    clock.run(main())
    assert clock.now() == begin + 120.0  # (the stop waited for the rewrite's thread, as long as it took)
    s = daemon.stats
    assert s.adverts_received > 0 and s.sightings_stored == s.adverts_received and s.dropped_backlog_full == 0
    assert store.count_sightings() == before - s.purged_sightings + s.sightings_stored
    assert store.db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert set(_rewrite_rows(path)) in ({"purge_rewritten_day"}, {"purge_rewrite_owed"})  # done, or owed
    store.close()


def test_a_rewrite_stopped_in_its_thread_is_rolled_back_and_still_owed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``rewrite_apart`` with its stop already asked for: SQLite's progress handler ends the VACUUM at once, the file
    reads as before (rows, rowids), the rewrite stays owed, and the next one pays it."""
    path = tmp_path / "s.db"
    rng = np.random.default_rng(31)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(20)]))
        now = float(START + 20 * DAY)
        assert store.purge(now, rewrite="apart")["sightings_deleted"] > 0
        day = store.rewrite_due(now)
        rows = store.db.conn.execute("SELECT rowid, * FROM sightings ORDER BY rowid").fetchall()
        stopping = threading.Event()
        stopping.set()
        with caplog.at_level(logging.INFO, logger="bluezone.proximity.store"):
            assert day is not None and store.rewrite_apart(day, stopping) is False
        assert "stopped with the daemon; still owed" in caplog.text and "could not rewrite" not in caplog.text
        assert store.db.conn.execute("SELECT rowid, * FROM sightings ORDER BY rowid").fetchall() == rows
        assert store.rewrite_due(now) == day and _rewrite_rows(path) == {"purge_rewrite_owed": ""}
        assert store.rewrite_apart(day, threading.Event()) is True and store.rewrite_due(now) is None
        assert store.db.conn.execute("SELECT rowid, * FROM sightings ORDER BY rowid").fetchall() == rows
        assert store.db.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_daily_key_made_while_the_daemon_rewrites_is_saved_after_it(tmp_path: Path) -> None:
    """The rewrite begun at 23:59 runs past midnight (two virtual minutes): the new day's key goes on air at 00:00
    but waits for the store's lock to be free (it is not in the file at 00:00:30), and is saved once it is."""
    path = tmp_path / "me.db"
    rng = np.random.default_rng(37)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(-1, 2)]))
    midnight = START + 15 * DAY
    clock = VirtualClock(midnight - 60, thread_seconds=120.0)
    store = SightingStore.open(path, purge_now=float(START))
    daemon, _ = _daemon_with_neighbours(store, clock, 0)
    seen: list[int] = []

    async def look_at_00_00_30() -> None:
        await asyncio.sleep(90)
        with sqlite3.connect(path) as conn:
            seen.append(conn.execute("SELECT COUNT(*) FROM daily_keys WHERE rolling_start = ?",
                                     (rolling_start(midnight),)).fetchone()[0])
        conn.close()

    async def main() -> None:
        await asyncio.gather(daemon.run(300), look_at_00_00_30())

    clock.run(main())
    assert seen == [0] and daemon.key is not None and daemon.key.rolling_start == rolling_start(midnight)
    assert store.key_for_day(rolling_start(midnight)) == daemon.key
    store.close()


def test_a_daemon_stopped_with_the_store_s_lock_held_leaves_the_rewrite_to_the_command(tmp_path: Path) -> None:
    """Ctrl-Z in the daemon's terminal (SIGSTOP): it holds the store's lock but purges nothing until it is continued,
    which may be never.  A command's open then rewrites the file itself, as without a daemon; the daemon running
    again is left the rewrite again (the same run of the real lock, in another process)."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    path = tmp_path / "me.db"
    rng = np.random.default_rng(23)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(np.concatenate([_interleaved_day(rng, START + day * DAY) for day in range(3)]))
    code = ("import sys\nfrom bluezone.proximity.store.daemonlock import one_daemon_per_store\n"
            "with one_daemon_per_store(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def status_at(now: float) -> dict[str, str]:
        done = CliRunner().invoke(cli, ["status", "--db", str(path), "--json"], obj={"clock": VirtualClock(now)})
        assert done.exit_code == 0, done.output
        return _rewrite_rows(path)

    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert status_at(START + 15 * DAY) == {}  # left to the daemon: nothing deleted, nothing owed
        os.kill(holder.pid, signal.SIGSTOP)
        os.waitpid(holder.pid, os.WUNTRACED)  # (returns once it is stopped)
        day = str((START + 15 * DAY + 3600 - 14 * DAY) // DAY)
        assert status_at(START + 15 * DAY + 3600) == {"purge_rewritten_day": day}  # rewritten here
        os.kill(holder.pid, signal.SIGCONT)
        os.waitpid(holder.pid, os.WCONTINUED)
        assert status_at(START + 16 * DAY) == {"purge_rewritten_day": day}  # left again
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("removed", ["file", "folder"])
def test_a_rewrite_after_the_store_was_deleted_makes_no_file_and_ends_nothing(tmp_path: Path, removed: str) -> None:
    """The store deleted while the daemon runs (its data wiped by hand; the daemon writes on into the file it has
    open): its thread's rewrite must not make an empty SQLite file at the path, which every command then refused,
    nor raise (the folder gone too: the daemon ended with "unable to open database file")."""
    folder = tmp_path / "bluezone"
    path = folder / "me.db"
    rng = np.random.default_rng(37)
    with SightingStore.open(path, purge_now=float(START)) as store:
        store.add_sightings(_interleaved_day(rng, START))
        now = float(START + 15 * DAY)
        assert store.purge(now, rewrite="apart")["sightings_deleted"] > 0
        day = store.rewrite_due(now)
        assert day is not None
        for name in os.listdir(folder):
            os.unlink(folder / name)
        if removed == "folder":
            folder.rmdir()
        assert store.rewrite_apart(day, threading.Event()) is False
        assert not path.exists()
