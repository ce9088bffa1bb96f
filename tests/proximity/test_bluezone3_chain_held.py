"""The Bluezone v3 key chain a clock stepped back makes anew is held like the daemon's other writes: during the day's
rewrite (its VACUUM holds the store's lock in a thread) it is not written on the loop, which would wait for that lock
(up to the 10 s busy timeout, receiving nothing) and then fail, ending the daemon; a store that refuses it for now
(a lock held past the busy timeout, a full disk) has it saved once it takes writes, the chain on air meanwhile.  Meanwhile the same new chain stays on air, not a new one at each look."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from bluezone.clock import VirtualClock
from bluezone.crypto import bluezone3 as bz3
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

from .clock_helpers import SteppedWall
from .conftest import NOON, random_sightings

REWRITE_SECONDS = 600.0  # the rewrite's virtual length
DAY = int(NOON // DAY_SECONDS)


def _chain_in_file(path: Path) -> tuple[int, bytes]:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT day, key FROM bluezone3_key").fetchone()
    conn.close()
    return int(row[0]), bytes(row[1])


def test_a_chain_made_anew_during_the_rewrite_is_saved_after_it(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    with SightingStore.open(path, purge_now=NOON - 15 * DAY_SECONDS) as store:
        store.add_sightings(random_sightings(1, NOON - 15 * DAY_SECONDS, 1))  # the start's purge: the rewrite due at once
    virtual = VirtualClock(NOON, thread_seconds=REWRITE_SECONDS)
    wall = SteppedWall(virtual)
    store = SightingStore.open(path)
    daemon = Daemon(Air(virtual, 1).radio("me", (0.0, 0.0)), store, wall, rng=random.Random(1), bluezone3=True)
    seen: list[tuple[bool, tuple[int, bytes], bytes | None]] = []

    async def step_back_and_look() -> None:
        await asyncio.sleep(100)
        assert daemon._store_held
        wall.step = -2 * DAY_SECONDS  # the wall clock stepped back before the chain's first day
        for at in (200, 400, 590):
            await asyncio.sleep(at - (virtual.now() - NOON))
            seen.append((daemon._store_held, _chain_in_file(path), daemon.bluezone3_id))

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.run(900))
            tg.create_task(step_back_and_look())

    first = None

    def started() -> None:
        nonlocal first
        first = _chain_in_file(path)

    daemon.on_started = started
    virtual.run(main())
    assert first is not None and first[0] == DAY
    assert [held for held, _, _ in seen] == [True, True, True]
    assert {chain for _, chain, _ in seen} == {first}  # not written while the VACUUM holds the lock
    day, key = _chain_in_file(path)  # written after it: the chain on air throughout, one new chain, not one a look
    assert day == DAY - 2 and key != first[1] and store.bluezone3_key() == (day, key)
    assert {sent for _, _, sent in seen} == {_id_of(key, NOON - 2 * DAY_SECONDS + 200)}
    store.close()


def test_a_chain_made_anew_while_the_store_refuses_writes_goes_on_air_and_is_saved_later(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    virtual = VirtualClock(NOON)
    wall = SteppedWall(virtual)
    store = SightingStore.open(path, purge_now=NOON)
    daemon = Daemon(Air(virtual, 1).radio("me", (0.0, 0.0)), store, wall, rng=random.Random(1), bluezone3=True)
    sent: list[bytes | None] = []
    saved: list[tuple[int, bytes] | None] = []

    async def lock_step_back_and_free() -> None:
        await asyncio.sleep(60)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout (0 s here, else 10 s)
        store.db.conn.execute("PRAGMA busy_timeout = 0")
        wall.step = -2 * DAY_SECONDS
        await asyncio.sleep(120)
        sent.append(daemon.bluezone3_id)
        saved.append(store.bluezone3_key())
        other.rollback()
        other.close()
        await asyncio.sleep(60)
        sent.append(daemon.bluezone3_id)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.run(300))
            tg.create_task(lock_step_back_and_free())

    virtual.run(main())
    assert saved[0] is not None and saved[0][0] == DAY  # refused: the old chain stays in the file
    chain = store.bluezone3_key()
    assert chain is not None and chain[0] == DAY - 2 and chain != saved[0]  # saved once the store took writes
    assert sent == [_id_of(chain[1], NOON - 2 * DAY_SECONDS + 180)] * 2  # on air at once, the same chain after
    store.close()


def _id_of(key: bytes, at: float) -> bytes:
    """The v3 ID a chain starting with ``key`` on ``at``'s day sends at ``at``."""
    slot = bz3.slot_of(at)
    return bytes(bz3.ids_for_keys([key], slot + 1)[0, slot].tobytes())
