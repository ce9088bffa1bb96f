"""Bluezone v3 adverts: heard by every backend's parser, stored as their own kind, sent on the
emulated radio end to end (opt-in), kept no longer than GAEN sightings."""

from __future__ import annotations

import random
import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluezone.clock import VirtualClock
from bluezone.crypto import bluezone3 as bz3
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.backends.fd6f import bluezone3_payload, heard_payload
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.ingest import adverts_to_sightings
from bluezone.proximity.radio import Advert
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER
from bluezone.proximity.store import MIGRATIONS, SCHEMA_VERSION, SightingStore

from .conftest import MIDNIGHT, NOON

V3 = bz3.SERVICE_UUID
BATTERY = "0000180f-0000-1000-8000-00805f9b34fb"


def test_the_advert_rule_is_the_apps() -> None:
    bzid = bytes(range(12))
    assert bluezone3_payload([V3.upper()], {0x22B5: bzid}) == bzid
    assert bluezone3_payload([V3], {}) == b""  # listed without an ID: passed on, counted malformed
    assert bluezone3_payload([BATTERY], {0x22B5: bzid}) is None  # the UUID marks the advert
    assert bluezone3_payload([V3], {0x004C: bzid}) == b""  # another company's data is no ID
    assert heard_payload([V3], {}, {0x22B5: bzid}) == (V3, bzid)
    assert heard_payload([SERVICE_UUID], {SERVICE_UUID: b"r" * 20}, {0x22B5: bzid}) == (SERVICE_UUID, b"r" * 20)
    assert heard_payload([BATTERY], {BATTERY: b"d"}, {}) is None


@given(st.lists(st.tuples(st.sampled_from([SERVICE_UUID, V3, BATTERY]), st.binary(max_size=24), st.integers(-140, 30))))
def test_ingest_keeps_exactly_the_valid_adverts_of_each_kind(raw: list[tuple[str, bytes, int]]) -> None:
    adverts = [Advert(NOON + i, data, rssi, uuid, None, f"A{i}") for i, (uuid, data, rssi) in enumerate(raw)]
    ok_rssi = [-127 <= r <= 20 for _, _, r in raw]
    gaen = [i for i, (u, d, _) in enumerate(raw) if u == SERVICE_UUID and len(d) == 20 and ok_rssi[i]]
    v3 = [i for i, (u, d, _) in enumerate(raw) if u == V3 and len(d) == 12 and ok_rssi[i]]
    got = adverts_to_sightings(adverts)
    assert len(got.sightings) == len(gaen) and len(got.bluezone3) == len(v3)
    assert got.malformed == len(raw) - len(gaen) - len(v3)
    assert [bytes(b) for b in got.bluezone3["bzid"]] == [raw[i][1] for i in v3]
    assert got.bluezone3_addresses == [f"A{i}" for i in v3]
    assert (got.bluezone3["tx_power"] == NO_TX_POWER).all()


def test_bluez_parses_bluezone3_adverts() -> None:
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData

    from bluezone.proximity.backends.bluez import BluezRadio

    clock = VirtualClock(NOON)
    radio = BluezRadio("hci0", clock=clock)
    got: list[Advert] = []
    radio._on_advert = got.append
    device = BLEDevice("5A:11:22:33:44:55", None, None)
    bzid = bytes(range(12))

    async def feed() -> None:
        radio._detected(device, AdvertisementData(None, {0x22B5: bzid}, {}, [V3], None, -70, ()))
        radio._detected(device, AdvertisementData(None, {0x22B5: bzid}, {}, [BATTERY], None, -70, ()))

    clock.run(feed())
    assert [(a.service_uuid, a.service_data, a.rssi) for a in got] == [(V3, bzid, -70)]
    assert radio.health()["adverts_ignored"] == 1


def test_emulated_end_to_end_the_opt_in_node_is_heard_with_the_apps_ids(tmp_path) -> None:
    """a sends GAEN and Bluezone v3 across a 15-minute slot change; b stores both kinds;
    a never stores its own; c (no opt-in) sends no v3 at all."""
    start = NOON + 600  # 12:10: the 12:15 slot change falls inside
    clock = VirtualClock(start)
    air = Air(clock, 3)
    stores = {n: SightingStore.open(tmp_path / f"{n}.db") for n in "abc"}
    daemons = {
        "a": Daemon(air.radio("a", (0, 0)), stores["a"], clock, rng=random.Random(1), bluezone3=True),
        "b": Daemon(air.radio("b", (1, 0)), stores["b"], clock, rng=random.Random(2)),
        "c": Daemon(air.radio("c", (0, 1)), stores["c"], clock, rng=random.Random(3)),
    }

    async def main() -> None:
        import asyncio

        async with asyncio.TaskGroup() as tg:
            for d in daemons.values():
                tg.create_task(d.run(600))

    try:
        clock.run(main())
        day, key = stores["a"].bluezone3_key()
        assert day == int(NOON // 86400)
        heard = stores["b"].bluezone3_sightings()
        assert heard.dtype == BLUEZONE3_SIGHTING_DTYPE and len(heard) > 1000
        ids = bz3.ids_for_day(key)
        slot = ((heard["time"] % 86400) // 900).astype(int)
        assert set(slot.tolist()) == {48, 49}
        assert all(bytes(h) == ids[s].tobytes() for h, s in zip(heard["bzid"], slot))
        assert np.median(heard["rssi"]) > -90
        assert len(stores["a"].bluezone3_sightings()) == 0  # a node never hears its own second advert
        assert daemons["a"].stats.bluezone3_ids_sent == 2 and daemons["b"].stats.bluezone3_ids_sent == 0
        # GAEN goes on as before, and only a's adverts carry v3
        assert daemons["b"].stats.sightings_stored > 1000
        assert stores["a"].count_sightings() > 1000
        c_heard = {bytes(x) for x in stores["c"].bluezone3_sightings()["bzid"]}
        assert c_heard and c_heard <= {r.tobytes() for r in ids}  # only a sends v3
    finally:
        for s in stores.values():
            s.close()


def test_the_v3_key_is_hashed_forward_at_midnight_from_the_stored_chain_start(tmp_path) -> None:
    clock = VirtualClock(MIDNIGHT - 1200)
    air = Air(clock, 4)
    with SightingStore.open(tmp_path / "a.db") as store:
        a = Daemon(air.radio("a"), store, clock, rng=random.Random(1), bluezone3=True)
        sent: list[tuple[float, bytes]] = []
        radio = a.radio
        original = radio.advertise_bluezone3

        async def spy(bzid: bytes, tx_power: int) -> None:
            sent.append((clock.now(), bzid))
            await original(bzid, tx_power)

        radio.advertise_bluezone3 = spy  # type: ignore[method-assign]
        clock.run(a.run(2400))
        day, key = store.bluezone3_key()
        assert day == int(MIDNIGHT // 86400) - 1  # the chain starts on the first day it was used
        assert store.db.conn.execute("SELECT COUNT(*) FROM bluezone3_key").fetchone()[0] == 1
        times = [t for t, _ in sent]
        assert [round(t - MIDNIGHT) for t in times] == [-1200, -900, 0, 900]
        assert sent[0][1] == bz3.ids_for_day(key)[94].tobytes()
        today = bz3.next_daily_key(key)
        assert sent[2][1] == bz3.ids_for_day(today)[0].tobytes()
        assert sent[3][1] == bz3.ids_for_day(today)[1].tobytes()


def test_purge_moves_the_chain_start_into_the_retention(tmp_path) -> None:
    with SightingStore.open(tmp_path / "a.db") as store:
        day = int(NOON // 86400)
        store.save_bluezone3_key(day - 20, b"k" * 32, NOON)
        store.purge(NOON)
        first = int((NOON - 14 * 86400) // 86400)
        assert store.bluezone3_key() == (first, bz3.daily_key(b"k" * 32, first - (day - 20)))
        store.purge(NOON + 100 * 86400)  # a chain unused far longer than the retention is dropped
        assert store.bluezone3_key() is None


def test_schema_2_store_migrates_and_v3_sightings_share_the_retention(tmp_path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for m in MIGRATIONS[:2]:
        m(db)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO sightings (time, rpi, aem, rssi, tx_power, address) VALUES (?, ?, ?, ?, ?, ?)",
                 (NOON, b"r" * 16, b"a" * 4, -60, None, None))
    conn.commit()
    conn.close()
    with SightingStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION  # migrated through every later step too
        assert len(store.sightings()) == 1
        rows = np.zeros(3, BLUEZONE3_SIGHTING_DTYPE)
        rows["time"] = [NOON - 15 * 86400, NOON - 13 * 86400, NOON]
        rows["bzid"] = np.frombuffer(b"x" * 36, "V12")
        rows["rssi"] = -70
        rows["tx_power"] = NO_TX_POWER
        assert store.add_bluezone3_sightings(rows) == 3
        result = store.purge(NOON)
        assert result["bluezone3_sightings_deleted"] == 1
        assert len(store.bluezone3_sightings()) == 2
        assert store.stats()["bluezone3_sightings"] == 2
        with pytest.raises(Exception, match="BLUEZONE3_SIGHTING_DTYPE"):
            store.add_bluezone3_sightings(np.zeros(1, [("time", "f8")]))


def test_a_chain_no_longer_sent_from_is_dropped_though_purged_every_day(tmp_path) -> None:
    """The daemon purges daily, which moved an unused chain forward for good; a chain no v3 ID was
    sent from within the retention gives away nothing worth keeping but the IDs it would send next."""
    day = int(NOON // 86400)
    with SightingStore.open(tmp_path / "a.db") as store:
        store.save_bluezone3_key(day, b"k" * 32, NOON)
        for d in range(1, 14):
            store.purge(NOON + d * 86400)
        assert store.bluezone3_key() is not None  # still within the retention of its last use
        store.purge(NOON + 15 * 86400)
        assert store.bluezone3_key() is None
        store.save_bluezone3_key(day, b"u" * 32, NOON)
        for d in range(1, 30):
            store.mark_bluezone3_key_used(NOON + d * 86400 - 3600)  # the daemon sent v3 IDs that day
            store.purge(NOON + d * 86400)
        assert store.bluezone3_key() is not None


def test_the_daemon_marks_its_chain_used(tmp_path) -> None:
    clock = VirtualClock(NOON + 15 * 86400)
    air = Air(clock, 3)
    with SightingStore.open(tmp_path / "a.db") as store:
        store.save_bluezone3_key(int(NOON // 86400), b"k" * 32, NOON)
        clock.run(Daemon(air.radio("a", (0, 0)), store, clock, rng=random.Random(1), bluezone3=True).run(60))
        store.purge(clock.now())
        assert store.bluezone3_key() is not None
