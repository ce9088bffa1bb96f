"""The store's reads for a check: distinct RPIs from the index by RPI, the intervals heard, usable
counts, and full rows of some RPIs, each the same as what ``sightings()`` gives, on good and on
hand-damaged stores, in UTF-8 and UTF-16 databases, and on a store made before schema 6."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.proximity.store import heardread
from bluezone.proximity.store import schema as store_module
from bluezone.proximity.store import sightings as store_sightings
from bluezone.proximity.store import SCHEMA_VERSION, SightingStore
from tests.proximity.stored_rows_helpers import NOON, SqliteSteps, damage, repeated_rows, utf16_file


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), per_rpi=st.sampled_from([1, 2, 7]), damaged=st.booleans(), utf16=st.booleans())
def test_reads_agree_with_sightings(tmp_path_factory, seed: int, per_rpi: int, damaged: bool, utf16: bool) -> None:
    path = tmp_path_factory.mktemp("s") / "s.db"
    if utf16:
        utf16_file(path)
    rows = repeated_rows(seed, 60, per_rpi)
    with SightingStore.open(path) as store:
        store.add_sightings(rows)
        if damaged:
            damage(store, rows)
        rng = np.random.default_rng(seed)
        since, until = sorted(rng.uniform(NOON - 2 * 86400, NOON + 2 * 86400, 2).tolist())
        usable = store.sightings(since, until)
        everything = store.db.conn.execute(
            "SELECT rpi, time FROM sightings WHERE length(rpi) = 16 AND time < 1e300 AND time >= ? AND time < ?", [since, until]
        ).fetchall()
        every, repeated = store.heard_rpis(since, until, repeated=2)
        for grouped in (True, False):  # SQLite or numpy groups the index: the same arrays, in byte order
            same = store._read_heard_rpis(since, until, 2, grouped=grouped)
            np.testing.assert_array_equal(same[0], every)
            np.testing.assert_array_equal(same[1], repeated)
        assert list(map(bytes, every)) == sorted({bytes(r) for r, _ in everything})
        counts: dict[bytes, int] = {}
        for r, _ in everything:
            counts[bytes(r)] = counts.get(bytes(r), 0) + 1
        assert sorted(map(bytes, repeated)) == sorted(r for r, c in counts.items() if c >= 2)
        assert store.count_usable(since, until) == len(usable)
        heard = set(store.heard_intervals(since, until).tolist())
        assert heard >= {int(np.floor(t)) // INTERVAL_SECONDS for _, t in everything}
        some = every[rng.random(len(every)) < 0.3]
        rows_of, ids = store.sightings_with_rpis(some, since, until)
        wanted = usable[np.isin(usable["rpi"], some.view("V16").ravel())]
        np.testing.assert_array_equal(rows_of, wanted)
        all_rows, all_ids = store.usable_sightings(since, until)
        np.testing.assert_array_equal(all_rows, usable)
        assert set(ids.tolist()) <= set(all_ids.tolist()) and len(set(all_ids.tolist())) == len(all_ids)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), pool=st.integers(1, 40), shuffled=st.booleans())
def test_rpis_grouped_by_numpy_are_np_unique(seed: int, n: int, pool: int, shuffled: bool) -> None:
    rng = np.random.default_rng(seed)
    # RPIs sharing their first 8 bytes too, so that the second word decides
    distinct = np.frombuffer(rng.bytes(16 * pool), np.uint8).reshape(-1, 16).copy()
    distinct[: pool // 2, :8] = distinct[0, :8]
    rpis = distinct[rng.integers(0, pool, n)]
    if not shuffled:  # as the index hands them over
        rpis = rpis[np.lexsort(rpis.T[::-1])]
    got, counts = store_sightings._distinct_sorted(rpis)
    want, want_counts = np.unique(rpis.view("V16").ravel(), return_counts=True)
    assert [bytes(r) for r in got] == [bytes(r) for r in want] == sorted({bytes(r) for r in rpis})
    assert counts.tolist() == want_counts.tolist()


def test_the_store_s_shape_picks_who_groups_the_index(tmp_path) -> None:
    """SQLite groups a store whose RPIs are heard many times each; numpy one of RPIs heard once."""
    for per_rpi, grouped in ((1, False), (3, False), (20, True), (100, True)):
        with SightingStore.open(tmp_path / f"s{per_rpi}.db") as store:
            store.add_sightings(repeated_rows(per_rpi, 6000 // per_rpi, per_rpi))
            assert store._rpis_heard_often() is grouped, per_rpi


def test_rpis_heard_seven_or_eight_times_each_are_grouped_by_sqlite(tmp_path) -> None:
    """Measured on ``rpi_days`` (schema 13, one row per RPI and day): SQLite's grouping costs what numpy's
    does at 7 sightings an RPI and less above (benchmarks/heard_group_bench.py; it was 8 for the index)."""
    rows = repeated_rows(7, 800, 8)  # each RPI's 8 rows together
    rows = np.delete(rows, np.arange(0, len(rows), 16))  # every other RPI heard 7 times: 7.5 on average
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows)
        assert store._rpis_heard_often()


def test_heard_rpis_read_in_ranges_of_the_first_byte_give_the_same(tmp_path, monkeypatch) -> None:
    rows = repeated_rows(3, 500, 2)
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows)
        whole = store.heard_rpis()
        monkeypatch.setattr(heardread, "_HEARD_BLOB_BYTES", 1000)  # about 60 RPIs per query
        parts = store.heard_rpis()
    assert len(whole[0]) == 500 and len(whole[1]) == 500
    assert sorted(map(bytes, parts[0])) == sorted(map(bytes, whole[0]))
    assert sorted(map(bytes, parts[1])) == sorted(map(bytes, whole[1]))


def test_the_check_reads_use_the_indexes_alone(tmp_path) -> None:
    """The distinct RPIs and the counts come from indexes without reading a row."""
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(repeated_rows(1, 50, 3))
        conn = store.db.conn
        heard = (
            f"SELECT rpi, COUNT(*) FROM sightings INDEXED BY sightings_by_rpi WHERE {store_module.RPI_INDEXED}"
            " AND time >= ? AND time < ? GROUP BY rpi"
        )
        unusable = (
            f"SELECT COUNT(*) FROM sightings INDEXED BY sightings_unusable WHERE {store_module.UNUSABLE}"
            " AND time >= ? AND time < ?"
        )
        plans = {q: " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {q}", [0.0, 1e12])) for q in (heard, unusable)}
    assert "COVERING INDEX sightings_by_rpi" in plans[heard] and "TEMP B-TREE" not in plans[heard]
    assert "INDEX sightings_unusable" in plans[unusable]


def test_reads_of_a_few_minutes_cost_a_few_minutes(tmp_path) -> None:
    """A read of a short span seeks to it and stops at its end (SQLite, given two upper bounds on
    time, may pick either one: then every later row is read too)."""
    rows = repeated_rows(5, 2000, 10)
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows)
        steps = SqliteSteps(store.db.conn, 100)
        cost = {}
        for name, read in {
            "usable": lambda a, b: store.usable_sightings(a, b),
            "count": lambda a, b: store.count_usable(a, b),
        }.items():
            for span in ("short", "all"):
                steps.count = 0
                start = float(np.min(rows["time"]))
                read(start, start + 600.0) if span == "short" else read(None, None)
                cost[name, span] = steps.count
    for name in ("usable", "count"):
        assert cost[name, "short"] * 20 < cost[name, "all"], (name, cost)


def test_a_store_made_before_schema_6_gets_the_indexes_and_keeps_its_rows(tmp_path, monkeypatch) -> None:
    path = tmp_path / "old.db"
    rows = repeated_rows(2, 40, 3)
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:5])
        m.setattr(store_module, "SCHEMA_VERSION", 5)
        with SightingStore.open(path) as store:
            store.add_sightings(rows)
            assert store.schema_version == 5
            assert "sightings_by_rpi" not in {ix.name for ix in store.db["sightings"].indexes}
    with SightingStore.open(path, create=False) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert {"sightings_by_rpi", "sightings_unusable"} <= {ix.name for ix in store.db["sightings"].indexes}
        assert len(store.heard_rpis()[0]) == 40 and store.count_usable() == len(rows)
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_indexes_follow_the_retention_purge(tmp_path) -> None:
    rows = repeated_rows(4, 30, 2, spread=40 * 86400.0)
    with SightingStore.open(tmp_path / "s.db", purge_now=0.0) as store:
        store.add_sightings(rows)
        store.purge(NOON + 20 * 86400)
        left = store.sightings()
        assert store.count_usable() == len(left) < len(rows)
        assert sorted(map(bytes, store.heard_rpis()[0])) == sorted({bytes(r) for r in left["rpi"]})
