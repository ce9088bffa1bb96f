"""The daemon end to end on the emulated radio and the virtual clock, through the real store."""

from __future__ import annotations

import asyncio
import logging
import random

import numpy as np
import pytest

from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import INTERVAL_SECONDS, interval_number, rolling_start
from bluezone.crypto.keys import DailyKey, rpi_key
from bluezone.crypto.payload import Metadata
from bluezone.crypto.derivation import decrypt_aem, rpi, rpis_for_key
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.emulation import make_nodes, run_emulated, run_nodes
from bluezone.proximity.runner import run_daemon
from bluezone.proximity.store import SightingStore

from .conftest import MIDNIGHT, NOON, random_sightings

OTHER_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"


def rpis_of(store: SightingStore) -> dict[bytes, bytes]:
    """Every RPI the store's own keys can produce -> the key (what a matcher would derive)."""
    out = {}
    for k in store.daily_keys():
        for r in rpis_for_key(k.key, k.rolling_start, k.rolling_period):
            out[bytes(r)] = k.key
    return out


def heard_from(sightings: np.ndarray, rpis: dict[bytes, bytes]) -> np.ndarray:
    mask = np.array([bytes(r) in rpis for r in sightings["rpi"]], dtype=bool)
    return sightings[mask]


def test_close_pair_hears_each_other_strongly_far_node_weakly(tmp_path) -> None:
    config = DaemonConfig()
    paths = run_emulated({"a": (0, 0), "b": (0.8, 0), "c": (10, 0)}, tmp_path, NOON, 1800, seed=11, config=config)
    stores = {name: SightingStore.open(p) for name, p in paths.items()}
    try:
        a_rpis = rpis_of(stores["a"])
        at_b = heard_from(stores["b"].sightings(), a_rpis)
        at_c = heard_from(stores["c"].sightings(), a_rpis)
        assert len(at_b) > 5000  # ~4 Hz for 30 min
        assert np.median(at_b["rssi"]) >= -80
        assert len(at_c) < len(at_b) and (len(at_c) == 0 or np.median(at_c["rssi"]) <= -90)
        assert 2 <= len({bytes(r) for r in at_b["rpi"]}) <= 4  # rotations every 10-20 min
        assert at_b["time"].min() >= NOON and at_b["time"].max() <= NOON + 1800
        # the AEM carries the configured TX power, as a matcher decrypts it
        first = at_b[0]
        meta = decrypt_aem(a_rpis[bytes(first["rpi"])], bytes(first["rpi"]), bytes(first["aem"]))
        assert Metadata.from_bytes(meta).tx_power == config.tx_power
        # nobody stores its own adverts
        assert len(heard_from(stores["a"].sightings(), a_rpis)) == 0
    finally:
        for s in stores.values():
            s.close()


def test_daily_key_rolls_over_at_utc_midnight_and_rpi_with_it(tmp_path) -> None:
    paths = run_emulated({"a": (0, 0), "b": (1, 0)}, tmp_path, MIDNIGHT - 1800, 3600, seed=2)
    with SightingStore.open(paths["a"]) as a, SightingStore.open(paths["b"]) as b:
        keys = a.daily_keys()
        assert [k.rolling_start for k in keys] == [rolling_start(MIDNIGHT) - 144, rolling_start(MIDNIGHT)]
        old, new = keys
        heard = b.sightings()
        old_rpis = {bytes(r) for r in rpis_for_key(old.key, old.rolling_start)}
        new_rpis = {bytes(r) for r in rpis_for_key(new.key, new.rolling_start)}
        before, after = heard[heard["time"] < MIDNIGHT], heard[heard["time"] >= MIDNIGHT]
        assert len(before) > 1000 and len(after) > 1000
        assert all(bytes(r) in old_rpis for r in before["rpi"])
        assert all(bytes(r) in new_rpis for r in after["rpi"])


@pytest.mark.slow
def test_rpi_rotates_every_10_to_20_minutes_and_at_key_change(tmp_path) -> None:
    clock = VirtualClock(MIDNIGHT - 3 * 3600)
    air = Air(clock, 1)
    with SightingStore.open(tmp_path / "a.db") as store:
        daemon = Daemon(air.radio("a"), store, clock, rng=random.Random(5))
        clock.run(daemon.run(6 * 3600))
        times = np.array([t for t, _ in daemon.rotations])
        gaps = np.diff(times)
        at_midnight = np.abs(times - MIDNIGHT) < 1e-3
        assert at_midnight.sum() == 1
        i = int(np.flatnonzero(at_midnight)[0])
        normal = np.delete(gaps, [i - 1])  # the gap ending at midnight is cut short by the key change
        assert normal.min() >= 600 and normal.max() <= 1200
        assert 6 * 3600 / 1200 <= len(times) <= 6 * 3600 / 600 + 2
        # each rotation advertises the RPI of its own interval under the key of its day
        intervals = [iv for _, iv in daemon.rotations]
        assert intervals[i] == rolling_start(MIDNIGHT)
        assert len(set(intervals)) == len(intervals)
        key = store.key_for_day(rolling_start(MIDNIGHT))
        assert daemon.rpi == rpi(rpi_key(key.key), intervals[-1])
        assert intervals[-1] == interval_number(times[-1])


def test_restart_on_the_same_database_keeps_everything_and_the_key(tmp_path) -> None:
    first = run_emulated({"a": (0, 0), "b": (1, 0)}, tmp_path, NOON, 1800, seed=1)
    with SightingStore.open(first["a"]) as a:
        key_before = a.daily_keys()
        n_before = a.count_sightings()
    assert n_before > 0 and len(key_before) == 1
    clock = VirtualClock(NOON + 3600)
    air = Air(clock, 9)
    nodes = make_nodes(air, {"a": (0, 0), "b": (1, 0)}, tmp_path, clock, seed=9)
    try:
        clock.run(run_nodes(nodes, 1800))
        a = nodes[0]
        assert a.stats.daily_keys_loaded == 1 and a.stats.daily_keys_generated == 0
        assert a.store.daily_keys() == key_before
        assert a.store.count_sightings() == n_before + a.stats.sightings_stored
        assert a.store.count_sightings(until=NOON + 1800) == n_before
    finally:
        for n in nodes:
            n.store.close()


async def _advertise_forever(radio, payload: bytes) -> None:
    async with radio:
        await radio.advertise(payload, -24)
        await asyncio.sleep(10**9)


def test_malformed_adverts_are_dropped_and_counted(tmp_path) -> None:
    clock = VirtualClock(NOON)
    air = Air(clock, 3)
    good = bytes(range(20))
    with SightingStore.open(tmp_path / "a.db") as store:
        daemon = Daemon(air.radio("a"), store, clock)

        async def main() -> None:
            junk = [
                asyncio.create_task(_advertise_forever(air.radio("short", (1, 0)), good[:19])),
                asyncio.create_task(_advertise_forever(air.radio("long", (1, 0)), good + b"!")),
                asyncio.create_task(_advertise_forever(air.radio("eddystone", (1, 0), OTHER_UUID), good)),
                asyncio.create_task(_advertise_forever(air.radio("fine", (1, 0)), good)),
            ]
            await daemon.run(600)
            for t in junk:
                t.cancel()
            await asyncio.gather(*junk, return_exceptions=True)

        clock.run(main())
        s = daemon.stats
        stored = store.sightings()
        assert s.malformed > 3 * 2000 and s.sightings_stored > 2000
        assert len(stored) == s.sightings_stored
        assert {bytes(r) + bytes(a) for r, a in zip(stored["rpi"], stored["aem"], strict=True)} == {good}
        assert s.adverts_received == s.malformed + s.sightings_stored + s.dropped_queue_full


def test_queue_overflow_is_counted_not_fatal(tmp_path) -> None:
    clock = VirtualClock(NOON)
    air = Air(clock, 4)
    config = DaemonConfig(queue_size=3, flush_size=1000, flush_interval=30.0)
    nodes = make_nodes(air, {"a": (0, 0), "b": (1, 0), "c": (0, 1)}, None, clock, config)
    clock.run(run_nodes(nodes, 300))
    s = nodes[0].stats
    assert s.dropped_queue_full > 100 and s.sightings_stored > 0
    assert s.adverts_received == s.sightings_stored + s.dropped_queue_full + s.malformed
    assert nodes[0].store.count_sightings() == s.sightings_stored


def test_stop_flushes_everything_queued(tmp_path) -> None:
    clock = VirtualClock(NOON)
    air = Air(clock, 5)
    config = DaemonConfig(flush_interval=1000.0, flush_size=10**6)  # nothing written before stop
    nodes = make_nodes(air, {"a": (0, 0), "b": (1, 0)}, tmp_path, clock, config)

    async def main() -> None:
        runs = [asyncio.create_task(n.daemon.run()) for n in nodes]
        await asyncio.sleep(120)
        assert nodes[0].store.count_sightings() == 0
        for n in nodes:
            n.daemon.stop()
        await asyncio.gather(*runs)

    clock.run(main())
    a = nodes[0]
    assert a.daemon.stats.adverts_received > 300
    assert a.store.count_sightings() == a.daemon.stats.adverts_received == a.daemon.stats.sightings_stored
    for n in nodes:
        n.store.close()


def test_status_lines_every_minute_and_no_key_material_in_logs(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bluezone")
    clock = VirtualClock(MIDNIGHT - 300)  # crosses a key change too
    air = Air(clock, 6)
    nodes = make_nodes(air, {"a": (0, 0), "b": (1, 0)}, tmp_path, clock)
    lines: list[str] = []
    nodes[0].daemon.on_status = lines.append
    nodes[1].daemon.on_status = lambda line: logging.getLogger("bluezone.test").info(line)
    clock.run(run_nodes(nodes, 630))
    assert len(lines) == 10
    assert "sightings" in lines[-1] and "dropped 0" in lines[-1] and "malformed 0" in lines[-1]
    assert "  RPIs sent " in lines[-1]  # this device's own, rotated: "RPIs 1" read as one RPI heard (user30's walk)
    text = caplog.text + "\n".join(lines)
    assert "sightings" in caplog.text  # node b's status went to the log
    secrets = []
    for n in nodes:
        for k in n.store.daily_keys():
            secrets += [k.key.hex(), k.key.hex().upper(), repr(k.key), rpi_key(k.key).hex()]
        for r in n.store.sightings()["rpi"][:50]:
            secrets += [bytes(r).hex(), repr(bytes(r))]
    assert secrets and not [s for s in secrets if s in text]
    assert "key" not in repr(nodes[0].store.daily_keys()[0]).split("(")[1].split("=")[0]


def test_runner_with_emulated_neighbours(tmp_path) -> None:
    clock = VirtualClock(NOON)
    lines: list[str] = []
    config = DaemonConfig(status_interval=30.0)
    stats = clock.run(
        run_daemon(
            "emulated:2", tmp_path / "me.db", config, 120, clock=clock, on_status=lines.append, handle_signals=False
        )
    )
    assert stats.sightings_stored > 500 and len(lines) == 4
    with SightingStore.open(tmp_path / "me.db") as store:
        assert store.count_sightings() == stats.sightings_stored
        assert len(store.daily_keys()) == 1
    assert INTERVAL_SECONDS == 600


def test_a_key_released_early_is_replaced_for_the_rest_of_the_day(tmp_path) -> None:
    """If today's key was cut short (shared after a positive test), the daemon moves to a new key."""
    clock = VirtualClock(NOON)
    air = Air(clock, 8)
    today = rolling_start(NOON)
    with SightingStore.open(tmp_path / "a.db") as store:
        daemon = Daemon(air.radio("a"), store, clock, rng=random.Random(1))

        async def main() -> None:
            task = asyncio.create_task(daemon.run(3 * 3600))
            await asyncio.sleep(60)
            first = store.key_for_day(today)
            assert first is not None and first.rolling_period == 144
            # another process (an upload) ends today's key at the current interval
            cut = interval_number(clock.now()) - today + 1
            store.save_daily_key(DailyKey(first.key, today, cut))
            await task

        clock.run(main())
        keys = store.daily_keys()
        assert len(keys) == 2 and keys[0].rolling_period < 144
        second = keys[1]
        assert second.rolling_start == keys[0].end and second.end == today + 144
        # every RPI after the cut comes from the new key, from the moment the cut key ends
        after = [iv for t, iv in daemon.rotations if iv >= keys[0].end]
        assert after and daemon.rpi == rpi(rpi_key(second.key), daemon.rotations[-1][1])
        cut_end = keys[0].end * INTERVAL_SECONDS
        assert (cut_end, keys[0].end) in daemon.rotations  # not up to 20 minutes later, when its RPI is public
    with SightingStore.open(tmp_path / "a.db") as store:
        # a restart the same day picks up the replacement, not the released key
        later = VirtualClock(NOON + 4 * 3600)
        daemon = Daemon(Air(later, 1).radio("a"), store, later)
        later.run(daemon.run(60))
        assert daemon.key == second and daemon.stats.daily_keys_generated == 0


def test_a_store_failure_ends_the_run_with_one_clear_error(tmp_path) -> None:
    from bluezone.errors import BluezoneError

    clock = VirtualClock(NOON)
    air = Air(clock, 2)
    nodes = make_nodes(air, {"a": (0, 0), "b": (1, 0)}, tmp_path, clock)

    async def main() -> None:
        await asyncio.sleep(30)
        nodes[0].store.close()  # the disk went away, say

    async def both() -> None:
        breaker = asyncio.create_task(main())
        other = asyncio.create_task(nodes[1].daemon.run(120))
        try:
            await nodes[0].daemon.run(120)
        finally:
            await breaker
            await other

    with pytest.raises(BluezoneError, match="cannot write sightings"):
        clock.run(both())
    nodes[1].store.close()


def test_a_purge_waits_for_a_clock_that_jumped_ahead_to_hold(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """One reading 30 days fast must not delete everything; a clock that holds (two readings an
    interval apart agree) is obeyed, as after a week switched off."""
    from bluezone.crypto.intervals import DAY_SECONDS

    clock = VirtualClock(NOON)
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    store.save_daily_key(DailyKey(b"k" * 16, rolling_start(NOON)), created_at=NOON)
    daemon = Daemon(Air(clock, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)
    with caplog.at_level(logging.WARNING):
        daemon._purge(NOON + 60)  # close to the newest record: purges (nothing to do)
        daemon._purge(NOON + 30 * DAY_SECONDS)  # a jump: held
        assert len(store.daily_keys()) == 1 and "purge postponed" in caplog.text
        daemon._purge(NOON + 60)  # the clock came back: nothing lost
        assert len(store.daily_keys()) == 1
        daemon._purge(NOON + 30 * DAY_SECONDS)  # jumps again, and this time it holds an interval later
        daemon._purge(NOON + 30 * DAY_SECONDS + 3600)
    assert store.daily_keys() == []
    store.close()


def test_after_a_suspend_across_midnight_the_new_days_key_is_on_air_at_once(tmp_path) -> None:
    """asyncio's clock stands still while the machine sleeps, the wall clock does not: on waking,
    yesterday's key (matched by nobody, linking the device across the night) must go at once."""
    from bluezone.crypto.intervals import DAY_SECONDS
    from bluezone.proximity.daemon import CHECK_SECONDS

    start = rolling_start(NOON) * INTERVAL_SECONDS + DAY_SECONDS - 3600  # 23:00 UTC
    clock = VirtualClock(start)
    with SightingStore.open(tmp_path / "a.db") as store:
        daemon = Daemon(Air(clock, 1).radio("a"), store, clock, rng=random.Random(1))

        async def main() -> None:
            task = asyncio.create_task(daemon.run(3600))
            await asyncio.sleep(60)
            clock._offset += 8 * 3600  # the lid opens at 07:01: the wall clock jumped, the loop's did not
            woke = clock.now()
            await asyncio.sleep(CHECK_SECONDS + 1)
            assert daemon.key is not None and daemon.key.covers(interval_number(clock.now()))
            assert daemon.rotations[-1][0] <= woke + CHECK_SECONDS and daemon.rotations[-1][1] == interval_number(woke)
            await task

        clock.run(main())


def test_a_wall_clock_stepped_back_brings_no_older_key_back_on_air(tmp_path) -> None:
    """NTP steps the clock back 30 s just after midnight: yesterday's key must not return (an
    observer would link the two days), nor a released key after its end."""
    from bluezone.crypto.intervals import DAY_SECONDS

    midnight = rolling_start(NOON) * INTERVAL_SECONDS + DAY_SECONDS
    clock = VirtualClock(midnight - 300)
    with SightingStore.open(tmp_path / "a.db") as store:
        daemon = Daemon(Air(clock, 1).radio("a"), store, clock, rng=random.Random(1))

        async def main() -> None:
            task = asyncio.create_task(daemon.run(900))
            await asyncio.sleep(301)
            clock._offset -= 30
            await task

        clock.run(main())
        starts = [iv for _, iv in daemon.rotations]
        assert starts == sorted(starts) and daemon.key is not None
        assert daemon.key.rolling_start == rolling_start(midnight)


def test_a_cut_saved_just_before_its_end_leaves_the_air_at_the_end(tmp_path) -> None:
    from bluezone.proximity.daemon import CHECK_SECONDS

    start = NOON + 7.3  # checks every CHECK_SECONDS from here do not land on the boundary
    clock = VirtualClock(start)
    today = rolling_start(NOON)
    with SightingStore.open(tmp_path / "a.db") as store:
        daemon = Daemon(Air(clock, 1).radio("a"), store, clock, rng=random.Random(1))

        async def main() -> None:
            task = asyncio.create_task(daemon.run(1800))
            end = (interval_number(NOON) + 1) * INTERVAL_SECONDS
            await asyncio.sleep(end - start - 1.0)  # one second before the interval ends
            first = store.key_for_day(today)
            assert first is not None
            store.save_daily_key(DailyKey(first.key, today, interval_number(clock.now()) + 1 - today))
            await task
            assert (end, interval_number(end)) in daemon.rotations, f"not within {CHECK_SECONDS} s"

        clock.run(main())


def test_a_laptop_that_suspends_between_purge_ticks_still_purges(tmp_path) -> None:
    """Each hourly tick of asyncio's clock finds the wall clock hours ahead: a purge is put off at
    most one tick, or retention would never run."""
    from bluezone.crypto.intervals import DAY_SECONDS

    clock = VirtualClock(NOON)
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    store.save_daily_key(DailyKey(b"o" * 16, rolling_start(NOON - 20 * DAY_SECONDS)), created_at=NOON - 20 * DAY_SECONDS)
    daemon = Daemon(Air(clock, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)
    for tick in range(3):
        daemon._purge(NOON + tick * 4 * 3600)  # 1 h awake, 3 h suspended, every time
    assert store.daily_keys() == []
    store.close()


def test_a_restarted_daemon_purges_at_its_clock_at_once(tmp_path) -> None:
    """Stopped 20 days ago: the daemon started now purges what is past 14 days at once, as `status` or
    `check` would on opening the store; it used to take the newest record (20 days old) for its last
    clock reading, see a jump, and keep the expired rows for a purge interval (an hour by default)."""
    from bluezone.crypto.intervals import DAY_SECONDS

    then = NOON - 20 * DAY_SECONDS
    store = SightingStore.open(tmp_path / "me.db", purge_now=then)
    store.save_daily_key(DailyKey(b"k" * 16, rolling_start(then)), created_at=then)
    store.add_sightings(random_sightings(50, then, 600))
    clock = VirtualClock(NOON)
    daemon = Daemon(Air(clock, 1).radio("me", (0, 0)), store, clock, DaemonConfig(), on_status=lambda _: None)
    clock.run(daemon.run(60))
    assert [k.rolling_start for k in store.daily_keys()] == [rolling_start(NOON)]  # only today's, on air
    assert store.count_sightings(until=NOON - 14 * DAY_SECONDS) == 0
    store.close()
