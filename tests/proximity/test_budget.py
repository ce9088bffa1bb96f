"""The per-minute budget of distinct RPIs: a flood of new RPIs is bounded, real phones are not lost."""

from __future__ import annotations

import asyncio
import logging
import os

import numpy as np
from hypothesis import given, settings
from click.testing import CliRunner
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.derivation import rpis_for_key
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.budget import MINUTE, RpiBudget
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

from .conftest import NOON


def rows_of(times: list[float], rpis: list[bytes], rssi: list[int] | None = None) -> np.ndarray:
    out = np.zeros(len(times), SIGHTING_DTYPE)
    out["time"] = times
    out["rpi"] = np.frombuffer(b"".join(rpis), "V16") if rpis else []
    out["rssi"] = rssi if rssi is not None else -70
    return out


def market(seconds: int, phones: int, flood_per_second: int, seed: int = 0) -> tuple[list[np.ndarray], set[bytes]]:
    """Batches of 5 s of adverts: ``phones`` real phones heard 2-4 times a second, each changing its
    RPI every 10-20 minutes (at a random moment), and a transmitter sending a new RPI with every one
    of ``flood_per_second`` adverts a second, from close by (-40 dBm, stronger than most phones)."""
    rng = np.random.default_rng(seed)
    changes = [np.cumsum(rng.uniform(600, 1200, seconds // 600 + 2)) - rng.uniform(0, 1200) for _ in range(phones)]
    real: set[bytes] = set()
    batches = []
    for start in range(0, seconds, 5):
        times: list[float] = []
        rpis: list[bytes] = []
        rssi: list[int] = []
        for p in range(phones):
            for t in (NOON + start + np.sort(rng.uniform(0, 5, int(rng.integers(10, 21))))).tolist():
                epoch = int(np.searchsorted(changes[p], t - NOON))
                rpi = p.to_bytes(4, "big") + epoch.to_bytes(4, "big") + bytes(8)
                times.append(t)
                rpis.append(rpi)
                rssi.append(int(rng.integers(-95, -60)))
                real.add(rpi)
        for t in (NOON + start + np.sort(rng.uniform(0, 5, 5 * flood_per_second))).tolist():
            times.append(t)
            rpis.append(b"\xff" + rng.bytes(15))
            rssi.append(-40)
        order = np.argsort(times, kind="stable")
        batches.append(rows_of([times[i] for i in order], [rpis[i] for i in order], [rssi[i] for i in order]))
    return batches, real


def test_under_the_budget_every_row_is_stored() -> None:
    budget = RpiBudget(1000)
    batches, _ = market(300, 300, 0)
    for rows in batches:
        assert budget.admit(rows).all()
    assert budget.dropped == 0


def test_a_flood_is_held_to_the_budget_and_no_real_phone_loses_a_sighting(caplog) -> None:
    """300 phones (a crowded market) and 100 new RPIs a second for 10 minutes, budget 1,000 a minute."""
    budget = RpiBudget(1000)
    batches, real = market(600, 300, 100, seed=1)
    kept = []
    with caplog.at_level(logging.WARNING, "bluezone.proximity.budget"):
        for rows in batches:
            kept.append(rows[budget.admit(rows)])
    stored = np.concatenate(kept)
    every = np.concatenate(batches)
    is_real = np.array([bytes(r) in real for r in every["rpi"]])
    stored_real = np.array([bytes(r) in real for r in stored["rpi"]])
    # no real phone's RPI lost; at most its first sighting, when that came alone at the end of a batch
    assert {bytes(r) for r in stored["rpi"][stored_real]} == real
    lost = np.count_nonzero(is_real) - np.count_nonzero(stored_real)
    assert lost <= len(real) - 300  # (10 of 539,113 with this seed)
    flood_rows = np.count_nonzero(~is_real)
    assert flood_rows == 60_000 and budget.dropped == len(every) - len(stored)
    for minute in np.unique(np.floor(stored["time"] / MINUTE)):
        distinct = {bytes(r) for r in stored["rpi"][np.floor(stored["time"] / MINUTE) == minute]}
        assert len(distinct) <= 1000
    assert np.count_nonzero(~stored_real) <= 10 * 500  # heard once each: half the budget a minute at most
    flood_logs = [r for r in caplog.records if "flood" in r.getMessage()]
    assert len(flood_logs) == 1 and "1000 distinct RPIs" in flood_logs[0].getMessage()
    assert not any(r.hex() in caplog.text for r in real)  # no RPI in the log


def test_when_new_rpis_outnumber_the_room_those_heard_most_then_strongest_go_first() -> None:
    budget = RpiBudget(3)
    a, b, c, d = (bytes([i]) * 16 for i in range(1, 5))
    rows = rows_of([NOON] * 6, [a, b, b, c, d, d], [-90, -90, -90, -50, -80, -80])
    keep = budget.admit(rows)
    assert keep.tolist() == [False, True, True, True, True, True]  # b, d heard twice; c stronger than a
    # later in the minute: those let in stay in, nothing new gets in
    assert budget.admit(rows_of([NOON + 30] * 3, [a, b, c])).tolist() == [False, True, True]
    # the next minute has room again, and c, let in the minute before, goes before an equal newcomer
    budget = RpiBudget(1)
    budget.admit(rows_of([NOON], [c]))
    assert budget.admit(rows_of([NOON + MINUTE] * 2, [a, c])).tolist() == [False, True]


def test_a_batch_across_a_minute_boundary_and_a_clock_stepped_back() -> None:
    budget = RpiBudget(2)
    rpis = [bytes([i]) * 16 for i in range(6)]
    minute = NOON // MINUTE * MINUTE
    twice = [r for r in rpis for _ in range(2)]  # each heard twice, as a phone is
    keep = budget.admit(rows_of([minute - 1] * 6 + [minute + 1] * 6, twice))
    assert np.count_nonzero(keep[:6]) == 4 and np.count_nonzero(keep[6:]) == 4
    # the clock stepped back a minute: that minute is still counted, full
    assert budget.admit(rows_of([minute - 30] * 2, [rpis[5]] * 2)).tolist() == [False, False]
    assert budget.admit(rows_of([minute - 30] * 2, [rpis[2], rpis[0]])).tolist() == [True, False]  # 2 was let in
    assert budget.dropped == 7


def test_a_clock_stepped_back_further_than_the_windows_kept_still_counts_its_minute() -> None:
    """attack12: each new minute's window dropped the earliest kept, so after a step back past the eight
    minutes kept that was the new minute's own: every 5 s batch began an empty minute, and a flood got the
    budget 12 times a minute until the clock caught up again (hours, after an NTP step of hours)."""
    budget = RpiBudget(10)
    minute = NOON // MINUTE * MINUTE
    for m in range(8):  # eight minutes kept, an hour after where the clock steps back to
        budget.admit(rows_of([minute + 3600 + 60 * m] * 2, [b"\x01" * 16] * 2))
    stored = set()
    for batch in range(12):  # a minute of 5 s batches, each ten new RPIs heard twice
        rpis = [bytes([batch, i]) * 8 for i in range(10) for _ in range(2)]
        keep = budget.admit(rows_of([minute + 5 * batch] * 20, rpis))
        stored |= {r for r, k in zip(rpis, keep.tolist(), strict=True) if k}
    assert len(stored) == 10  # was 120


def test_values_heard_once_fill_half_the_budget_at_most() -> None:
    budget = RpiBudget(4)
    once = [bytes([i]) * 16 for i in range(10)]
    assert np.count_nonzero(budget.admit(rows_of([NOON] * 10, once))) == 2
    phone = b"\x77" * 16
    assert budget.admit(rows_of([NOON + 30] * 3, [phone] * 3)).all()  # a phone heard three times: room left


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 180), st.integers(0, 12), st.integers(-100, -30)), max_size=40), max_size=8
    ),
    st.integers(1, 6),
)
def test_each_minute_holds_at_most_the_budget_and_a_value_let_in_stays_in(batches, per_minute) -> None:
    budget = RpiBudget(per_minute)
    admitted: dict[int, set[bytes]] = {}
    refused_rows = 0
    for batch in batches:
        batch = sorted(batch)  # a batch's adverts arrive in time order; batches may go back (a clock step)
        rows = rows_of([NOON + t for t, _, _ in batch], [bytes([v]) * 16 for _, v, _ in batch], [r for _, _, r in batch])
        keep = budget.admit(rows)
        refused_rows += int(np.count_nonzero(~keep))
        for row, kept in zip(rows, keep.tolist(), strict=True):
            minute = int((row["time"]) // MINUTE)
            if kept:
                admitted.setdefault(minute, set()).add(bytes(row["rpi"]))
    assert all(len(values) <= per_minute for values in admitted.values())
    assert budget.dropped == refused_rows


def test_the_daemon_stores_at_most_the_budget_of_a_flood_and_logs_it_once(tmp_path, caplog) -> None:
    """25 transmitters each sending a new RPI with every advert (~100 a second) beside a real phone:
    without the budget the store took every one of them."""
    clock = VirtualClock(NOON)
    air = Air(clock, 21)
    config = DaemonConfig(max_rpis_per_minute=200)

    async def flood(radio) -> None:
        async with radio:
            while True:
                await radio.advertise(b"\xff" + os.urandom(19), -24)
                await asyncio.sleep(0.25)

    with SightingStore.open(tmp_path / "a.db") as store, SightingStore.open(tmp_path / "b.db") as b_store:
        a = Daemon(air.radio("a"), store, clock, config)
        b = Daemon(air.radio("b", (1, 0)), b_store, clock, config)

        async def main() -> None:
            flooders = [asyncio.create_task(flood(air.radio(f"f{i}", (0.5, 0)))) for i in range(25)]
            await asyncio.gather(a.run(300), b.run(300))
            for t in flooders:
                t.cancel()
            await asyncio.gather(*flooders, return_exceptions=True)

        with caplog.at_level(logging.WARNING, "bluezone.proximity.budget"):
            clock.run(main())
        s = a.stats
        stored = store.sightings()
        assert s.dropped_over_budget > 10_000 and s.sightings_stored == len(stored)
        assert s.adverts_received == s.sightings_stored + s.malformed + s.dropped_queue_full + s.dropped_over_budget
        minutes = np.floor(stored["time"] / MINUTE)
        for minute in np.unique(minutes):
            assert len({bytes(r) for r in stored["rpi"][minutes == minute]}) <= 200
        b_rpis = {bytes(r) for k in b_store.daily_keys() for r in rpis_for_key(k.key, k.rolling_start, k.rolling_period)}
        from_b = [t for r, t in zip(stored["rpi"], stored["time"], strict=True) if bytes(r) in b_rpis]
        assert len(from_b) > 300 * 2  # the real phone, 1 m away, heard throughout
        assert len({int(t // MINUTE) for t in from_b}) >= 5
        assert [r.getMessage().count("flood") for r in caplog.records] == [1, 1]  # once by each daemon
        assert "over the RPI budget" in a._status_line()
    status = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "a.db")], obj={"clock": VirtualClock(NOON + 300)})
    assert status.exit_code == 0, status.output
    assert f"flood      {s.dropped_over_budget} adverts not stored" in status.output
