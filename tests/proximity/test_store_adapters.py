"""Which adapter heard a sighting (schema 14): recorded per sighting by the daemon, read back, migrated into older
stores as 'not recorded', forgotten with the retention, and a correction added to its own adapter's sightings only."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.clock import VirtualClock
from bluezone.config import RETENTION_DAYS, DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store import schema as store_module
from bluezone.proximity.store.adapters import RssiCorrection

START = 1_795_089_600.0
HERE, THERE = "00:1A:7D:DA:71:13", "5C:F3:70:8B:12:01"


def rows(n: int, t0: float, rssi: int = -70, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = t0 + np.arange(n, dtype=float)
    out["rpi"] = np.frombuffer(rng.bytes(16 * n), "V16")
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rssi
    out["tx_power"] = -128
    return out


def test_each_sighting_keeps_the_adapter_that_heard_it(tmp_path: Path) -> None:
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows(3, START), adapter=HERE)
        store.add_sightings(rows(2, START + 10, seed=1), adapter=THERE.lower())  # (as a config may spell it)
        store.add_sightings(rows(2, START + 20, seed=2), adapter="")  # an adapter that could not say its address
        store.add_sightings(rows(1, START + 30, seed=3))  # no adapter named: none recorded
        read, ids = store.usable_sightings(START, START + 100)
        assert store.adapter_addresses(ids) == [HERE] * 3 + [THERE] * 2 + ["", ""] + [None]
        assert len(read) == 8
        # two adapters, one id each, whichever batch named them
        assert store._conn.execute("SELECT address FROM adapters ORDER BY id").fetchall() == [(HERE,), (THERE,)]


def test_a_correction_is_added_to_its_adapters_sightings_and_unrecorded_ones_only(tmp_path: Path) -> None:
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows(2, START, rssi=-80), adapter=HERE)
        store.add_sightings(rows(2, START + 10, rssi=-80, seed=1), adapter=THERE)
        store.add_sightings(rows(1, START + 20, rssi=-80, seed=2), adapter="")
        store.add_sightings(rows(1, START + 30, rssi=-80, seed=3))
        mine = RssiCorrection(6, HERE.lower())
        every = store.usable_sightings(START, START + 100, RssiCorrection(6))[0]["rssi"].tolist()
        assert store.usable_sightings(START, START + 100, mine)[0]["rssi"].tolist() == [-74, -74, -80, -80, -80, -74]
        assert every == [-74] * 6  # a correction of no known adapter: every sighting, as before
        assert store.sightings(START, START + 100, mine)["rssi"].tolist() == [-74, -74, -80, -80, -80, -74]
        rpis = store.sightings(START, START + 100)["rpi"]
        assert store.sightings_with_rpis(rpis, START, START + 100, mine)[0]["rssi"].tolist() == [-74, -74, -80, -80, -80, -74]
        # a calibration of an adapter this store never heard with: only the unrecorded sighting is corrected
        other = RssiCorrection(6, "AA:BB:CC:DD:EE:FF")
        assert store.usable_sightings(START, START + 100, other)[0]["rssi"].tolist() == [-80] * 5 + [-74]


def test_bluezone3_sightings_keep_their_adapter_and_are_corrected_alike(tmp_path: Path) -> None:
    v3 = np.zeros(2, BLUEZONE3_SIGHTING_DTYPE)
    v3["time"], v3["rssi"], v3["tx_power"] = [START, START + 1], -80, -128
    v3["bzid"] = np.frombuffer(bytes(range(24)), "V12")
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_bluezone3_sightings(v3[:1], adapter=HERE)
        store.add_bluezone3_sightings(v3[1:], adapter=THERE)
        read = store.bluezone3_sightings(START, START + 10, RssiCorrection(6, HERE))
        assert read["rssi"].tolist() == [-74, -80]


@pytest.mark.parametrize("version", [5, 6, 12, 13])  # (the oldest this code still writes to; schema 11: below)
def test_an_older_store_migrates_its_sightings_as_unrecorded_and_corrected_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    path = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:version])
        m.setattr(store_module, "SCHEMA_VERSION", version)
        with SightingStore.open(path) as store:
            store.add_sightings(rows(3, START, rssi=-80))
    with SightingStore.open(path) as store:
        assert store.schema_version == store_module.SCHEMA_VERSION
        store.add_sightings(rows(1, START + 10, rssi=-80, seed=1), adapter=THERE)
        read, ids = store.usable_sightings(START, START + 100, RssiCorrection(6, HERE))
        assert store.adapter_addresses(ids) == [None, None, None, THERE]
        assert read["rssi"].tolist() == [-74, -74, -74, -80]


def test_a_schema_11_store_as_an_earlier_bluezone_wrote_it_reads_its_sightings_as_unrecorded(
    schema11_credentials_store: Path,
) -> None:
    raw = sqlite3.connect(schema11_credentials_store)
    with raw:  # sightings as that bluezone wrote them: no adapter column then
        raw.executemany("INSERT INTO sightings (time, rpi, aem, rssi, tx_power, address) VALUES (?, ?, ?, ?, ?, ?)",
                        [(START + i, bytes([i]) * 16, b"\x01" * 4, -80, None, None) for i in range(3)])
    raw.close()
    with SightingStore.open(schema11_credentials_store, purge_now=START + 60) as store:
        assert store.schema_version == store_module.SCHEMA_VERSION
        read, ids = store.usable_sightings(START, START + 100, RssiCorrection(-5, HERE))
        assert store.adapter_addresses(ids) == [None] * 3 and read["rssi"].tolist() == [-85] * 3


def test_a_store_of_this_schema_is_refused_by_an_older_bluezone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new.db"
    with SightingStore.open(path) as store:
        store.add_sightings(rows(2, START), adapter=HERE)
    before = path.read_bytes()
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:13])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 13)
    with pytest.raises(Exception, match="schema version 14, newer than this bluezone knows \\(13\\): upgrade bluezone"):
        SightingStore.open(path, create=False)
    assert path.read_bytes() == before


def test_the_purge_forgets_an_adapter_unused_for_the_retention(tmp_path: Path) -> None:
    with SightingStore.open(tmp_path / "s.db") as store:
        store.add_sightings(rows(2, START), adapter=HERE)
        later = START + 3 * DAY_SECONDS
        store.add_sightings(rows(2, later, seed=1), adapter=THERE)
        store.purge(START + RETENTION_DAYS * DAY_SECONDS + 2 * 3600)  # HERE's sightings and HERE go; THERE stays
        assert store._conn.execute("SELECT address FROM adapters").fetchall() == [(THERE,)]
        store.add_sightings(rows(1, later + 10, seed=2), adapter=HERE)  # back: noted anew
        _, ids = store.usable_sightings(later, later + 100)
        assert store.adapter_addresses(ids) == [THERE, THERE, HERE]


def test_a_write_rolled_back_forgets_the_adapter_it_noted(tmp_path: Path) -> None:
    with SightingStore.open(tmp_path / "s.db") as store:
        bad = rows(2, START)
        bad["rpi"][1] = bad["rpi"][0]
        store._conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON sightings WHEN NEW.rssi = -1 BEGIN"
                            " SELECT RAISE(ABORT, 'refused'); END")
        bad["rssi"][1] = -1
        with pytest.raises(Exception, match="refused"):
            store.add_sightings(bad, adapter=HERE)
        assert store._conn.execute("SELECT COUNT(*) FROM adapters").fetchone()[0] == 0
        store.add_sightings(rows(1, START + 5), adapter=HERE)  # noted again, not taken from the rolled-back note
        _, ids = store.usable_sightings(START, START + 100)
        assert store.adapter_addresses(ids) == [HERE]


def test_the_daemon_records_the_adapter_its_radio_has_and_a_swap_mid_way(tmp_path: Path) -> None:
    """End to end: a node hears a phone for 10 minutes on one adapter, then (a dongle swapped) 10 on another."""
    clock = VirtualClock(START)
    air = Air(clock, seed=1)
    phone_store = SightingStore.open(tmp_path / "phone.db")
    node_store = SightingStore.open(tmp_path / "node.db")
    phone = Daemon(air.radio("phone", (1.0, 0.0)), phone_store, clock, DaemonConfig())

    async def both(node_address: str, label: str) -> None:
        node = Daemon(air.radio(label, (0.0, 0.0), adapter_address=node_address), node_store, clock, DaemonConfig())
        await asyncio.gather(node.run(duration=600), phone_run(600))

    async def phone_run(seconds: float) -> None:
        await phone.run(duration=seconds)

    try:
        clock.run(both(HERE, "dongle"))
        swapped = clock.now()
        clock.run(both(THERE, "builtin"))
        read, ids = node_store.usable_sightings(START, clock.now() + 1)
        heard = node_store.adapter_addresses(ids)
    finally:
        node_store.close()
        phone_store.close()
    assert len(read) > 100
    assert set(heard) == {HERE, THERE}
    assert all((a == HERE) == (t < swapped) for a, t in zip(heard, read["time"].tolist()))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([HERE, THERE, "", None]), st.integers(1, 4), st.integers(-100, -30)),
                min_size=1, max_size=8),
       st.integers(-40, 40), st.sampled_from([HERE, THERE, None]))
def test_each_sighting_is_corrected_exactly_when_its_adapter_is_the_calibrated_one_or_unrecorded(
    tmp_path_factory: pytest.TempPathFactory, batches: list[tuple[str | None, int, int]], db: int, calibrated: str | None
) -> None:
    """Property: every sighting maps to at most one adapter, the one its batch named, and reads back with the
    correction added exactly when ``RssiCorrection.applies_to`` says."""
    path = tmp_path_factory.mktemp("p") / "s.db"
    expected: list[tuple[str | None, int]] = []
    with SightingStore.open(path) as store:
        t = START
        for i, (adapter, n, rssi) in enumerate(batches):
            store.add_sightings(rows(n, t, rssi, seed=i), adapter=adapter)
            expected += [(adapter, rssi)] * n
            t += n + 1
        correction = RssiCorrection(db, calibrated)
        read, ids = store.usable_sightings(START, t, correction)
        heard = store.adapter_addresses(ids)
    assert heard == [a for a, _ in expected]
    assert read["rssi"].tolist() == [r + (db if correction.applies_to(a) else 0) for a, r in expected]


def test_an_adapters_row_is_the_only_place_an_address_is_kept(tmp_path: Path) -> None:
    """The sightings hold a small integer, not the address: about a byte a sighting (docs/benchmarks.md)."""
    path = tmp_path / "s.db"
    with SightingStore.open(path) as store:
        store.add_sightings(rows(2, START), adapter=HERE)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT DISTINCT typeof(adapter), adapter FROM sightings").fetchall() == [("integer", 1)]
    raw.close()
