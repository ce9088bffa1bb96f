"""``rpi_days`` (schema 13): how many times each RPI was heard per UTC day, kept by triggers.  It equals the
index by RPI grouped by RPI and day (each day worked out here in exact arithmetic) after any mix of the
daemon's writes, hand-made rows, updates, deletes, purges and a purge of rows dated ahead; a store migrated
from schema 12 reads the same; and a check's read of whole days comes from it, not from the index."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import RPI_INDEXED, SCHEMA_VERSION, SightingStore
from bluezone.proximity.store import schema as store_module
from bluezone.proximity.store.retention import CLOCK_FLOOR
from tests.proximity.stored_rows_helpers import NOON, SqliteSteps, repeated_rows, utf16_file

DAY = DAY_SECONDS
MIDNIGHT = int(NOON) // DAY * DAY
NOW = float(MIDNIGHT + 3 * DAY)


def _day(time: float) -> int:
    """The UTC day ``rpi_days`` counts ``time`` in: floor(time / 86400) exactly, beyond 1e9 days the day past it."""
    if time < -DAY * 10**9:
        return -(10**9) - 1
    if time >= DAY * 10**9:
        return 10**9
    return math.floor(Fraction(time) / DAY)


def _index_by_day(conn: sqlite3.Connection) -> Counter:
    """The entries of the index by RPI, counted by (RPI, day) here in Python."""
    entries = conn.execute(f"SELECT rpi, time FROM sightings INDEXED BY sightings_by_rpi WHERE {RPI_INDEXED}")
    return Counter((rpi, _day(time)) for rpi, time in entries)


def _table(conn: sqlite3.Connection) -> Counter:
    rows = conn.execute("SELECT rpi, day, sightings FROM rpi_days").fetchall()
    assert all(n > 0 for _, _, n in rows)  # no row left at zero
    return Counter({(rpi, day): n for rpi, day, n in rows})


RPIS = [bytes([i]) * 16 for i in range(4)]
#: times on both sides of a few midnights (one just before, which a division in floating point rounds up to
#: the next day), of 1970, far away, beyond the limit of the day numbers, and none at all
TIMES = st.one_of(
    st.builds(
        lambda day, offset: float(MIDNIGHT + day * DAY) + offset,
        st.integers(-2, 2), st.sampled_from([0.0, 1e-6, -1e-6, 0.5, -0.5, 43_200.0, 86_399.9]),
    ),
    st.integers(-2, 2).map(lambda day: math.nextafter(float(MIDNIGHT + day * DAY), -math.inf)),
    st.sampled_from([0.0, -1e-300, -0.5, -DAY * 1.0, math.nextafter(-DAY * 1.0, 0.0), 1e299, -1e299, DAY * 1e9,
                     math.nextafter(-DAY * 1e9, 0.0), -math.inf, math.inf, math.nan]),
    st.floats(allow_nan=False),
)
#: what a hand edit may put where an RPI or a time goes
ODD_RPIS = st.sampled_from([b"\x05" * 15, b"\x06" * 17, "sixteen letters!", 1234567890123456, None, 3.5])
ODD_TIMES = st.sampled_from(["noon", b"\x00" * 8, None, "1780488000"])
RPI = st.one_of(st.sampled_from(RPIS), ODD_RPIS)
TIME = st.one_of(TIMES, ODD_TIMES)

OPS = st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(st.sampled_from(RPIS), TIMES.filter(lambda t: t == t)), max_size=8)),
    st.tuples(st.just("insert"), st.lists(st.tuples(RPI, TIME), max_size=4)),
    st.tuples(st.just("update time"), st.integers(2, 4), st.integers(0, 3), TIME),
    st.tuples(st.just("update rpi"), st.integers(2, 4), st.integers(0, 3), RPI),
    st.tuples(st.just("update both"), st.integers(2, 4), st.integers(0, 3), RPI, TIME),
    st.tuples(st.just("update aem"), st.integers(2, 4), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.integers(2, 4), st.integers(0, 3)),
    st.tuples(st.just("purge"), st.integers(-3, 16)),
    st.tuples(st.just("purge ahead"), st.integers(-3, 3)),
    st.tuples(st.just("replace"), st.integers(0, 5), RPI, TIME),
)


def _apply(store: SightingStore, op: tuple[Any, ...]) -> None:
    conn = store.db.conn
    kind, *args = op
    if kind == "add":  # the daemon's writes
        rows = np.zeros(len(args[0]), SIGHTING_DTYPE)
        rows["rpi"] = [np.void(rpi) for rpi, _ in args[0]]
        rows["time"] = [time for _, time in args[0]]
        rows["rssi"] = -60
        store.add_sightings(rows)
    elif kind == "insert":
        with conn:
            conn.executemany("INSERT INTO sightings (rpi, time, aem, rssi) VALUES (?, ?, x'00000000', -60)", args[0])
    elif kind.startswith("update"):
        every, which, *values = args
        column = {"update time": "time = ?", "update rpi": "rpi = ?", "update both": "rpi = ?, time = ?",
                  "update aem": "aem = x'01020304'"}[kind]
        with conn:
            conn.execute(f"UPDATE sightings SET {column} WHERE rowid % ? = ?", [*values, every, which])
    elif kind == "delete":
        with conn:
            conn.execute("DELETE FROM sightings WHERE rowid % ? = ?", args)
    elif kind == "purge":  # as the daemon and every open do: 14 days before now
        store.purge(float(MIDNIGHT + args[0] * DAY))
    elif kind == "purge ahead":
        store.purge_dated_ahead(max(float(MIDNIGHT + args[0] * DAY), CLOCK_FLOOR))
    else:  # a row replaced by rowid would leave its count stale: refused, nothing changed
        rowid, rpi, time = args
        for statement in ("INSERT OR REPLACE", "INSERT OR IGNORE", "REPLACE"):
            taken = conn.execute("SELECT EXISTS (SELECT 1 FROM sightings WHERE rowid = ?)", [rowid]).fetchone()[0]
            try:
                with conn:
                    conn.execute(f"{statement} INTO sightings (rowid, rpi, time, rssi) VALUES (?, ?, ?, -60)", [rowid, rpi, time])
            except sqlite3.IntegrityError as exc:
                assert taken and "rowid exists" in str(exc)
            else:
                assert not taken
        try:
            with conn:
                conn.execute("UPDATE OR REPLACE sightings SET rowid = ? WHERE rowid = ?", [rowid, rowid + 1])
        except sqlite3.IntegrityError as exc:
            assert "rowid exists" in str(exc)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, max_size=12))
def test_the_table_is_the_index_counted_by_day_whatever_writes_the_sightings(tmp_path_factory, ops) -> None:
    path = tmp_path_factory.mktemp("days") / "s.db"
    with SightingStore.open(path) as store:
        for op in ops:
            _apply(store, op)
            assert _table(store.db.conn) == _index_by_day(store.db.conn), op


def _reads(store: SightingStore) -> list[tuple[np.ndarray, np.ndarray]]:
    """``heard_rpis`` of every whole-day range around the rows, and of all of them, both shapes."""
    out = [store._read_heard_rpis(None, None, 2, grouped=grouped) for grouped in (True, False)]
    for first in range(-2, 3):
        for last in range(first, 4):
            for since, until in ((MIDNIGHT + first * DAY, MIDNIGHT + last * DAY), (None, MIDNIGHT + last * DAY),
                                 (MIDNIGHT + first * DAY, None)):
                for grouped in (True, False):
                    out.append(store._read_heard_rpis(since, until, 2, grouped=grouped))
    return out


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(OPS.filter(lambda op: op[0] != "replace"), max_size=10), utf16=st.booleans())
def test_a_store_migrated_from_schema_12_reads_as_before(tmp_path_factory, ops, utf16: bool) -> None:
    """Rows written at schema 12 (any of them), then the migration: the same table as triggers keep, and
    every read of whole days the same arrays as schema 12's read of the index (in either shape).  Both read
    after an open's purge at the same clock (the second deletes nothing more)."""
    path = tmp_path_factory.mktemp("old") / "s.db"
    if utf16:
        utf16_file(path)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:12])
        m.setattr(store_module, "SCHEMA_VERSION", 12)
        with SightingStore.open(path) as store:
            for op in ops:
                _apply(store, op)
            store.add_sightings(repeated_rows(len(ops), 20, 3, spread=4 * DAY))
        with SightingStore.open(path, create=False, purge_now=NOW) as store:  # as the migrating open purges
            assert store.schema_version == 12
            before = _reads(store)
    with SightingStore.open(path, create=False, purge_now=NOW) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert _table(store.db.conn) == _index_by_day(store.db.conn)
        for (every, repeated), (was_every, was_repeated) in zip(_reads(store), before, strict=True):
            np.testing.assert_array_equal(every, was_every)
            np.testing.assert_array_equal(repeated, was_repeated)


def test_a_read_of_whole_days_steps_through_the_table_not_the_index(tmp_path: Path) -> None:
    """RPIs heard 100 times each: the read of whole days (and of everything) costs less than a tenth of a
    read of the index (a hundredth of the rows, and SQLite's sort of them), which a range that is not whole
    days still makes."""
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(repeated_rows(7, 100, 100, spread=2 * DAY))
        steps = SqliteSteps(store.db.conn, 10)
        cost = {}
        for name, bounds in {"all": (None, None), "whole days": (MIDNIGHT - DAY, MIDNIGHT + DAY),
                             "not whole days": (MIDNIGHT - DAY + 1.0, MIDNIGHT + DAY)}.items():
            steps.count = 0
            every, repeated = store._read_heard_rpis(*bounds, 2, grouped=True)  # (the shape's sample aside)
            assert len(every) == len(repeated) == 100
            cost[name] = steps.count
    assert cost["all"] * 10 < cost["not whole days"] and cost["whole days"] * 10 < cost["not whole days"], cost


def test_a_store_whose_triggers_were_dropped_is_read_from_the_index(tmp_path: Path) -> None:
    """A trigger dropped by hand leaves the count stale: every read is then the index's, and the same."""
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(repeated_rows(8, 50, 20, spread=2 * DAY))
        conn = store.db.conn
        with conn:
            conn.execute("DROP TRIGGER rpi_days_delete")
            conn.execute("DELETE FROM sightings WHERE rpi IN (SELECT rpi FROM sightings WHERE rowid % 97 = 0)")  # some RPIs
            conn.execute("UPDATE sightings SET rpi = x'00000000000000000000000000000000' WHERE rowid % 7 = 0")
        for bounds in ((None, None), (MIDNIGHT - DAY, MIDNIGHT + DAY), (MIDNIGHT, None)):
            counted = store._read_heard_rpis(*bounds, 2, grouped=True)
            entries = store._read_heard_rpis(*bounds, 2, grouped=False)
            for got, want in zip(counted, entries, strict=True):
                np.testing.assert_array_equal(got, want)


def test_a_store_set_back_to_an_older_version_is_counted_anew(tmp_path: Path) -> None:
    """Its migrations run again (tests make older stores so): the table is counted again from the index, its
    triggers made again, and a stale count (a trigger dropped meanwhile) is gone."""
    path = tmp_path / "s.db"
    with SightingStore.open(path) as store:
        store.add_sightings(repeated_rows(9, 30, 5, spread=2 * DAY))
        conn = store.db.conn
        with conn:
            conn.execute("DROP TRIGGER rpi_days_delete")
            conn.execute("DELETE FROM sightings WHERE rowid % 4 = 0")
            conn.execute("PRAGMA user_version = 7")
    with SightingStore.open(path, create=False) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert _table(store.db.conn) == _index_by_day(store.db.conn)
        store.db.conn.execute("DELETE FROM sightings WHERE rowid % 3 = 0")
        assert _table(store.db.conn) == _index_by_day(store.db.conn)
