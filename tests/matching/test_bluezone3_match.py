"""Bluezone v3 F0 lists: parsing (every defect one line), the app's slot walk, and matching
stored v3 sightings end to end on the emulated radio."""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.clock import VirtualClock
from bluezone.crypto import bluezone3 as bz3
from bluezone.errors import KeyFileError
from bluezone.matching import bluezone3 as m3
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER
from bluezone.proximity.store import SightingStore

DAY0 = 20_412  # 2025-11-20
T0 = DAY0 * 86400
KEY = bytes(range(32))


def f0(entries: list[dict]) -> bytes:
    return json.dumps({"data": entries}).encode()


def entry(key: bytes = KEY, start: int = T0, slots: int = 96, end: int | None = None) -> dict:
    return {"daily_key": key.hex(), "time_start": start, "max": slots, "time_end": end if end is not None else start + 3 * 86400}


def sightings_of(pairs: list[tuple[float, bytes]], rssi: int = -70) -> np.ndarray:
    out = np.zeros(len(pairs), BLUEZONE3_SIGHTING_DTYPE)
    out["time"] = [t for t, _ in pairs]
    out["bzid"] = np.frombuffer(b"".join(b for _, b in pairs), "V12") if pairs else []
    out["rssi"] = rssi
    out["tx_power"] = NO_TX_POWER
    return out


def app_walk(key: bytes, start: int, slots: int, end: int) -> list[tuple[int, int, bytes]]:
    """checkContactF's loop, transcribed: (slot start ms, slot end ms, ID) for every slot it checks."""
    out = []
    first = key
    sub = first + b"bluzonesubkey"
    t_next, delta, i = start * 1000, bz3.DAY_MS // slots, 0
    import hashlib

    while t_next <= end * 1000:
        sub = hashlib.sha256(sub).digest()
        bzid = bz3.id_from_subkey(sub)
        out.append((t_next, t_next + delta, bzid))
        t_next += delta
        i += 1
        if i == slots:
            first = hashlib.sha256(first).digest()
            sub = first + b"bluzonesubkey"
            i = 0
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 200), st.integers(0, 3 * 86400), st.integers(0, 86400))
def test_candidates_follow_the_apps_walk(slots: int, span: int, offset: int) -> None:
    start = T0 + offset
    entries = m3.parse_f0_list(f0([entry(start=start, slots=slots, end=start + span)]))
    rows, lo, hi, ids = m3.candidates(entries, start - 10.0**6, start + span + 10.0**6, 0)
    walk = app_walk(KEY, start, slots, start + span)
    got = sorted(zip(lo.tolist(), hi.tolist(), [r.tobytes() for r in ids]))
    assert got == walk and (rows == 0).all()


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, 366 * 86400 - 2 * 86400), min_size=1, max_size=4), st.integers(0, 86400))
def test_entries_from_up_to_a_year_back_follow_the_apps_walk(backs: list[int], offset: int) -> None:
    """Each entry's key chain is walked to its own first needed day (it walked in step with the chunk's
    farthest): the same slots and IDs as the app's walk, for entries months back beside recent ones."""
    end = T0 + 2 * 86400
    since, until = T0 + offset, T0 + offset + 3600.0  # sightings of one hour in the entries' last days
    keys = [bytes([i + 1]) * 32 for i in range(len(backs))]
    entries = m3.parse_f0_list(f0([entry(key=k, start=T0 - back, end=end) for k, back in zip(keys, backs)]))
    rows, lo, hi, ids = m3.candidates(entries, since, until, 0)
    for i, (key, back) in enumerate(zip(keys, backs)):
        walk = [w for w in app_walk(key, T0 - back, 96, end) if w[1] >= since * 1000 and w[0] <= until * 1000]
        mine = rows == i
        assert sorted(zip(lo[mine].tolist(), hi[mine].tolist(), [r.tobytes() for r in ids[mine]])) == walk


def test_a_sighting_matches_inside_its_slot_plus_tolerance_only() -> None:
    entries = m3.parse_f0_list(f0([entry(), entry(key=bytes(32))]))
    day2 = bz3.ids_for_day(bz3.daily_key(KEY, 2))
    at = T0 + 2 * 86400 + 10 * 900  # day 2, slot 10
    s = sightings_of([
        (at + 1, day2[10].tobytes()),
        (at + 899, day2[10].tobytes()),
        (at + 900 + 7200 + 1, day2[10].tobytes()),  # past the slot and the 2 h tolerance
        (at - 5000, day2[10].tobytes()),  # early, within tolerance (a phone clock behind)
        (at, day2[11].tobytes()[:11] + b"\x00"),  # almost the next ID
        (at, bz3.ids_for_day(bytes(32))[3].tobytes()),  # the zero key's slot 3, far from its time
    ])
    pairs = m3.match(entries, s)
    assert pairs.tolist() == [[0, 3], [0, 0], [0, 1]]
    assert m3.match(entries, s, tolerance=0).tolist() == [[0, 0], [0, 1]]


def test_ids_after_time_end_or_before_time_start_never_match() -> None:
    entries = m3.parse_f0_list(f0([entry(start=T0 + 86400, end=T0 + 86400 + 900)]))  # two slots
    ids = bz3.ids_for_day(KEY)
    s = sightings_of([(T0 + 86400 + 60, ids[0].tobytes()), (T0 + 86400 + 960, ids[1].tobytes()),
                      (T0 + 86400 + 1860, ids[2].tobytes())])
    assert m3.match(entries, s).tolist() == [[0, 0], [0, 1]]


@pytest.mark.parametrize(
    "doc,message",
    [
        (b"[1, 2]", '"data" list'),
        (b"{\"data\": 5}", '"data" list'),
        (b"{\"data\": [5]}", "data[0]: each entry must be an object"),
        (b"not json", "invalid JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"data": ' + b"[" * 100_000, "nested too deeply"),
        (f0([{**entry(), "daily_key": "abc"}]), "64 hex digits"),
        (f0([{**entry(), "daily_key": "00" * 16}]), "must be 32 bytes, got 16"),
        (f0([{**entry(), "daily_key": 7}]), "64 hex digits"),
        (f0([entry(), {**entry(), "max": 1}]), "data[1]: 'max' (slots per day) must be 2-1440, got 1"),
        (f0([{**entry(), "max": 100000}]), "must be 2-1440"),
        (f0([{**entry(), "max": "96"}]), "'max' must be an integer"),
        (f0([{**entry(), "time_start": 1.5}]), "'time_start' must be an integer"),
        (f0([{**entry(), "time_start": True}]), "'time_start' must be an integer"),
        (f0([{**entry(), "time_end": T0 - 1}]), "'time_end' must lie 0-366 days"),
        (f0([{**entry(), "time_start": -5, "time_end": 0}]), "'time_start' must be Unix seconds"),
        (f0([{k: v for k, v in entry().items() if k != "time_end"}]), "'time_end' must be an integer"),
    ],
)
def test_malformed_lists_are_one_line_key_file_errors(doc: bytes, message: str) -> None:
    with pytest.raises(KeyFileError) as exc:
        m3.parse_f0_list(doc)
    assert message in str(exc.value) and "\n" not in str(exc.value)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_key_file_error(data: bytes) -> None:
    try:
        m3.parse_f0_list(data)
    except KeyFileError:
        pass


def test_emulated_phone_sending_v3_is_found_with_its_f0_list(tmp_path) -> None:
    """a (Bluezone v3 on) sits 1 m from b for 30 min; a's daily key as an F0 list finds a close
    contact at b; the same list finds no close contact at c, 30 m away, and another key nothing at b."""
    clock = VirtualClock(T0 + 12 * 3600)
    air = Air(clock, 5)
    stores = {n: SightingStore.open(tmp_path / f"{n}.db") for n in "abc"}
    daemons = [
        Daemon(air.radio("a", (0, 0)), stores["a"], clock, rng=random.Random(1), bluezone3=True),
        Daemon(air.radio("b", (1, 0)), stores["b"], clock, rng=random.Random(2)),
        Daemon(air.radio("c", (30, 0)), stores["c"], clock, rng=random.Random(3)),
    ]

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for d in daemons:
                tg.create_task(d.run(1800))

    try:
        clock.run(main())
        day, key = stores["a"].bluezone3_key()
        entries = m3.parse_f0_list(f0([entry(key=bytes(32)), entry(key=key, start=day * 86400, end=day * 86400 + 86399)]))
        found = m3.check_bluezone3(entries, stores["b"].bluezone3_sightings(), other_sightings=stores["b"].sightings())
        assert len(found) == 1
        e = found[0]
        assert e.protocol == "bluezone3" and e.key_index == 1 and e.tx_power_estimated
        assert e.score.close_contact and 25 <= e.score.minutes <= 31
        assert e.as_dict()["protocol"] == "bluezone3"
        far = m3.check_bluezone3(entries, stores["c"].bluezone3_sightings())
        assert all(not x.score.close_contact for x in far)
        assert m3.check_bluezone3(entries[:1], stores["b"].bluezone3_sightings()) == []
    finally:
        for s in stores.values():
            s.close()


def _run_pair(tmp_path) -> tuple[int, bytes]:
    """a (v3 on) and b 1 m apart for 30 minutes on the emulated radio; b's store at tmp_path/b.db."""
    clock = VirtualClock(T0 + 12 * 3600)
    air = Air(clock, 7)
    a_store, b_store = SightingStore.open(tmp_path / "a.db"), SightingStore.open(tmp_path / "b.db")
    daemons = [
        Daemon(air.radio("a", (0, 0)), a_store, clock, rng=random.Random(1), bluezone3=True),
        Daemon(air.radio("b", (1, 0)), b_store, clock, rng=random.Random(2)),
    ]

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for d in daemons:
                tg.create_task(d.run(1800))

    clock.run(main())
    day, key = a_store.bluezone3_key()
    a_store.close()
    b_store.close()
    return day, key


def test_cli_check_with_an_f0_list_end_to_end(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli

    day, key = _run_pair(tmp_path)
    listing = tmp_path / "f0.json"
    listing.write_bytes(f0([entry(key=key, start=day * 86400, end=day * 86400 + 86399)]))
    result = CliRunner().invoke(cli, ["check", "--bluezone3-list", str(listing), "--db", str(tmp_path / "b.db"), "--json"], obj={"clock": VirtualClock(T0 + 13 * 3600)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bluezone3_entries"] == 1 and data["bluezone3_sightings"] > 1000
    assert data["close_contact"] and [e["protocol"] for e in data["exposures"]] == ["bluezone3"]
    text = CliRunner().invoke(cli, ["check", "--bluezone3-list", str(listing), "--db", str(tmp_path / "b.db")], obj={"clock": VirtualClock(T0 + 13 * 3600)})
    assert text.exit_code == 0
    assert "[Bluezone v3]" in text.stdout and "from 1 Bluezone v3 F0 list entry\n" in text.stdout
    assert m3.MATCH_STAGE not in text.stderr  # piped: no progress
    monkeypatch.setattr("bluezone.progress.is_terminal", lambda file=None: True)  # stderr a terminal: its bar
    shown = CliRunner().invoke(cli, ["check", "--bluezone3-list", str(listing), "--db", str(tmp_path / "b.db")], obj={"clock": VirtualClock(T0 + 13 * 3600)})
    assert shown.exit_code == 0 and shown.stdout == text.stdout
    assert m3.MATCH_STAGE in shown.stderr, shown.stderr  # (click draws the bar itself only on a real terminal)


def test_store_check_reads_gaen_rows_only_where_asked_and_finds_the_same(tmp_path, monkeypatch) -> None:
    """``check_bluezone3_store`` calibrates the receiver on its GAEN sightings as ``check_bluezone3`` given every
    GAEN sighting of the days does, reading only the minutes and days a scorer asks for."""
    from bluezone.matching.check import whole_days
    from bluezone.matching.scoring import get_scorer, scorer_names
    from bluezone.proximity.sightings import SIGHTING_DTYPE

    day, key = _run_pair(tmp_path)
    entries = m3.parse_f0_list(f0([entry(key=key, start=day * 86400, end=day * 86400 + 86399)]))
    rng = np.random.default_rng(5)
    with SightingStore.open(tmp_path / "b.db", create=False) as store:
        v3 = store.bluezone3_sightings()
        # other phones around (10 RPIs heard 40 times each in the half hour) and a busy day before
        others = np.zeros(800, SIGHTING_DTYPE)
        others["time"] = np.concatenate([
            rng.uniform(v3["time"].min(), v3["time"].max(), 400), rng.uniform(day * 86400 - 80_000, day * 86400, 400)
        ])
        others["rpi"] = np.repeat(np.frombuffer(rng.bytes(16 * 20), "V16"), 40)
        others["rssi"] = rng.integers(-95, -50, 800)
        others["tx_power"] = NO_TX_POWER
        store.add_sightings(others)
        days = whole_days((float(v3["time"].min()), float(v3["time"].max()) + 1))
        gaen = store.sightings(*days)
        for name in scorer_names():
            scorer = get_scorer(name)
            want = m3.check_bluezone3(entries, v3, scorer, other_sightings=gaen)
            with monkeypatch.context() as m:
                m.setattr(store, "sightings", lambda *a, **k: pytest.fail("read every GAEN sighting"))
                found, read = m3.check_bluezone3_store(entries, store, scorer)
            assert read == len(v3) and [e.as_dict() for e in found] == [e.as_dict() for e in want], name
            assert any(e.score.close_contact for e in found) or name != "bluezone"
        # a list that matches nothing (the usual answer) reads no GAEN row at all
        stranger = m3.parse_f0_list(f0([entry(key=bytes(32), start=day * 86400, end=day * 86400 + 86399)]))
        with monkeypatch.context() as m:
            for read_gaen in ("sightings", "heard_rpis", "usable_sightings", "sightings_with_rpis", "count_sightings"):
                m.setattr(store, read_gaen, lambda *a, **k: pytest.fail("read GAEN sightings for no window"))
            assert m3.check_bluezone3_store(stranger, store) == ([], len(v3))


@pytest.mark.parametrize(
    "content,message",
    [
        (b'{"data": [{"daily_key": "00", "time_start": 0, "max": 96, "time_end": 0}]}', "must be 32 bytes"),
        (b'{"data": [{"daily_key": "' + b"00" * 32 + b'", "time_start": 0, "max": 0, "time_end": 0}]}', "2-1440"),
        (b'{"data": {}}', '"data" list'),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_cli_bad_f0_lists_are_exit_2_and_leave_no_database(tmp_path, content: bytes, message: str) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli

    listing = tmp_path / "f0.json"
    listing.write_bytes(content)
    db = tmp_path / "never.db"
    result = CliRunner().invoke(cli, ["check", "--bluezone3-list", str(listing), "--db", str(db)])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not db.exists()


def test_cli_export_own_v3_list_then_check_it_elsewhere(tmp_path) -> None:
    """a runs with Bluezone v3 on (emulated radio, the last half hour), exports its F0 list with the
    CLI, and b's `check --bluezone3-list` finds the close contact: the whole v3 path by command."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    start = 1_795_694_400.0  # 2026-11-26 12:00 UTC: a fixed day, so the run is the same whatever day the suite runs
    clock = VirtualClock(start)
    air = Air(clock, 8)
    stores = [SightingStore.open(tmp_path / f"{n}.db") for n in "ab"]
    daemons = [
        Daemon(air.radio("a", (0, 0)), stores[0], clock, rng=random.Random(1), bluezone3=True),
        Daemon(air.radio("b", (1, 0)), stores[1], clock, rng=random.Random(2)),
    ]

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for d in daemons:
                tg.create_task(d.run(1800))

    clock.run(main())
    for s in stores:
        s.close()
    listing = tmp_path / "a-f0.json"
    runner = CliRunner()
    later = {"clock": VirtualClock(start + 1900)}  # the commands' clock seam: "now" just after the meeting
    res = runner.invoke(cli, ["keys", "export", "--protocol", "bluezone3", "--db", str(tmp_path / "a.db"), "--out", str(listing)],
                        obj=later)
    assert res.exit_code == 0, res.output
    entry_ = json.loads(listing.read_text())["data"][0]
    assert entry_["max"] == 96 and entry_["time_start"] % 86400 == 0 and len(entry_["daily_key"]) == 64
    res = runner.invoke(cli, ["check", "--bluezone3-list", str(listing), "--db", str(tmp_path / "b.db"), "--json"], obj=later)
    assert res.exit_code == 0, res.output
    levels = [e["level"] for e in json.loads(res.stdout)["exposures"]]
    assert "F1" in levels and set(levels) <= {"F1", None}  # (two windows when the half hour spans midnight)
    # b never sent v3: nothing to export, one line, exit 2
    res = runner.invoke(cli, ["keys", "export", "--protocol", "bluezone3", "--db", str(tmp_path / "b.db"), "--out", "-"], obj=later)
    assert res.exit_code == 2 and "never sent Bluezone v3" in res.stderr


@given(
    st.lists(
        st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**40 - 1), st.integers(2, 1440),
                  st.integers(0, 366 * 86400)),
        max_size=8,
    )
)
def test_valid_lists_parse_to_exactly_what_they_say(rows: list[tuple[bytes, int, int, int]]) -> None:
    doc = f0([{"daily_key": k.hex().upper(), "time_start": t, "max": m, "time_end": t + span} for k, t, m, span in rows])
    got = m3.parse_f0_list(doc)
    assert [(bytes(r["daily_key"]), int(r["time_start"]), int(r["max"]), int(r["time_end"])) for r in got] == [
        (k, t, m, t + span) for k, t, m, span in rows
    ]


def _many_entries_and_their_sightings(n: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """n entries of random keys over two days, and one sighting of a slot of every third entry."""
    rng = random.Random(16)
    keys = [rng.randbytes(32) for _ in range(n)]
    entries = m3.parse_f0_list(f0([entry(key=k, slots=slots, end=T0 + 2 * 86400 - 1) for k in keys]))
    step = 86400 // slots
    heard = []
    for i in range(0, n, 3):
        day, slot = rng.randrange(2), rng.randrange(slots)
        heard.append((T0 + day * 86400 + slot * step + 1.0, bz3.ids_for_day(bz3.daily_key(keys[i], day), slots)[slot].tobytes()))
    return entries, sightings_of(sorted(heard))


def test_matching_in_chunks_finds_the_same_pairs() -> None:
    entries, sightings = _many_entries_and_their_sightings(40, 96)
    whole = m3.match(entries, sightings)
    assert len(whole) >= 14 and set(whole[:, 0].tolist()) == set(range(0, 40, 3))
    for budget in (1, 96 * 5, 96 * 4 * 7, 10**9):
        assert m3.match(entries, sightings, budget=budget).tolist() == whole.tolist()


def test_matching_tells_its_progress_chunk_by_chunk() -> None:
    """A million entries at max 1440 take hours (33 ms an entry): each chunk done is told, the share of the
    list done rising to the whole; the pairs are the same with or without it."""
    entries, sightings = _many_entries_and_their_sightings(40, 96)
    told: list[tuple[str, float]] = []
    found = m3.match(entries, sightings, budget=96 * 4 * 7, progress=lambda stage, done: told.append((stage, done)))
    assert found.tolist() == m3.match(entries, sightings).tolist()
    assert {stage for stage, _ in told} == {m3.MATCH_STAGE} and len(told) == 6, told  # chunks of 7 entries
    shares = [done for _, done in told]
    assert shares == sorted(shares) and shares[0] == 7 / 40 and shares[-1] == 1.0, shares


def test_memory_of_matching_is_bounded_by_the_budget_not_the_list() -> None:
    """A long list at max 1440 derived at once took gigabytes (20,000 entries: over 2.5 GB)."""
    import tracemalloc

    entries, sightings = _many_entries_and_their_sightings(150, 1440)
    tracemalloc.start()
    try:
        found = m3.match(entries, sightings, budget=1440 * 4 * 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(found[:, 0].tolist()) == set(range(0, 150, 3))
    # at once: 150 entries x 3-4 days x 1440 slots x 32 bytes of digests alone is over 20 MB
    assert peak < 8 * 2**20, peak


def test_exporting_the_f0_list_starts_a_new_chain_so_later_ids_stay_unlinkable(tmp_path) -> None:
    """The list's daily key hashes forward to every later day's key: had the device kept its chain,
    anyone holding the (published) list could follow its v3 IDs from then on."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    now = 1_795_694_400.0  # 2026-11-26 12:00 UTC, a fixed day: the CLI gets it through its clock seam
    today = int(now // 86400)
    key = bytes(range(32))
    with SightingStore.open(tmp_path / "a.db") as store:
        store.save_bluezone3_key(today - 2, key, now - 2 * 86400)
    listing = tmp_path / "f0.json"
    res = CliRunner().invoke(
        cli, ["keys", "export", "--protocol", "bluezone3", "--db", str(tmp_path / "a.db"), "--out", str(listing)],
        obj={"clock": VirtualClock(now)},
    )
    assert res.exit_code == 0, res.output
    handed = json.loads(listing.read_text())["data"][0]
    assert bytes.fromhex(handed["daily_key"]) == key and handed["time_start"] == (today - 2) * 86400
    with SightingStore.open(tmp_path / "a.db") as store:
        day, new_key = store.bluezone3_key()
    assert day == today
    assert new_key not in {bz3.daily_key(key, d) for d in range(0, 4)}


def test_a_second_export_to_the_same_file_leaves_the_handed_over_list_alone(tmp_path) -> None:
    """The first export replaces the chain, so its list cannot be made again: a second `keys export
    --protocol bluezone3 --out f0.json` wrote the new chain's list (IDs no phone had heard) over it and
    said "wrote 1 F0 list entry", exit 0.  Now: one line, exit 2, the file and the chain as they were."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    now = 1_795_694_400.0  # 2026-11-26 12:00 UTC
    with SightingStore.open(tmp_path / "a.db") as store:
        store.save_bluezone3_key(int(now // 86400) - 2, bytes(range(32)), now - 2 * 86400)
    listing = tmp_path / "f0.json"
    export = ["keys", "export", "--protocol", "bluezone3", "--db", str(tmp_path / "a.db"), "--out", str(listing)]
    first = CliRunner().invoke(cli, export, obj={"clock": VirtualClock(now)})
    assert first.exit_code == 0, first.output
    handed = listing.read_bytes()
    with SightingStore.open(tmp_path / "a.db") as store:
        chain = store.bluezone3_key()
    again = CliRunner().invoke(cli, export, obj={"clock": VirtualClock(now + 60)})
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1, again.output
    assert "already exists" in again.stderr and "another --out" in again.stderr
    assert listing.read_bytes() == handed
    with SightingStore.open(tmp_path / "a.db") as store:
        assert store.bluezone3_key() == chain  # the refused export started no new chain
    # to a new file it still writes (the IDs sent from the new chain since)
    other = CliRunner().invoke(cli, [*export[:-1], str(tmp_path / "later.json")], obj={"clock": VirtualClock(now + 60)})
    assert other.exit_code == 0, other.output


def test_a_list_too_big_for_memory_is_a_key_file_error(tmp_path) -> None:
    """JSON of 18 MB (six million empty lists) takes about 400 MB as Python objects: under a memory
    limit the parse ran out with a MemoryError traceback (exit 1); now it is a one-line refusal."""
    import os
    import subprocess
    import sys

    script = (
        "import resource\n"
        "from bluezone.errors import KeyFileError\n"
        "from bluezone.matching import bluezone3 as m3\n"
        "resource.setrlimit(resource.RLIMIT_AS, (400 << 20, resource.RLIM_INFINITY))\n"
        "data = b'{\"data\": [' + b'[],' * 6_000_000 + b'[]]}'\n"
        "try:\n"
        "    m3.parse_f0_list(data)\n"
        "except KeyFileError as exc:\n"
        "    print('refused:', exc)\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-500:]
    assert out.stdout.startswith("refused:") and "too large" in out.stdout


def test_an_export_whose_new_chain_the_store_refuses_hands_over_no_list(tmp_path, monkeypatch) -> None:
    """The list was written first and the new chain stored after, in another open: with the store's lock held elsewhere
    past its busy timeout (or a full disk), `keys export --protocol bluezone3` wrote the list ('wrote 1 F0 list
    entry'), then failed, and the device went on sending from the chain the list reveals: anyone holding the list
    could follow every later v3 ID.  Now the new chain is stored before the list is written: refused, no list."""
    import sqlite3

    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.proximity.store import interface

    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)
    now = 1_795_694_400.0  # 2026-11-26 12:00 UTC
    chain = (int(now // 86400) - 2, bytes(range(32)))
    with SightingStore.open(tmp_path / "a.db") as store:
        store.save_bluezone3_key(*chain, now - 2 * 86400)
    listing = tmp_path / "f0.json"
    export = ["keys", "export", "--protocol", "bluezone3", "--db", str(tmp_path / "a.db"), "--out", str(listing)]
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writes (the daemon's rewrite, a `checkin`)
    try:
        refused = CliRunner().invoke(cli, export, obj={"clock": VirtualClock(now)})
    finally:
        other.rollback()
        other.close()
    assert refused.exit_code != 0 and "locked" in refused.output, refused.output
    assert not listing.exists()
    with SightingStore.open(tmp_path / "a.db") as store:
        assert store.bluezone3_key() == chain
    # a list that cannot be written (no such folder) leaves the old chain, whose list a later export makes
    nowhere = CliRunner().invoke(cli, [*export[:-1], str(tmp_path / "none" / "f0.json")], obj={"clock": VirtualClock(now)})
    assert nowhere.exit_code == 2 and "cannot write" in nowhere.output, nowhere.output
    with SightingStore.open(tmp_path / "a.db") as store:
        assert store.bluezone3_key() == chain
    done = CliRunner().invoke(cli, export, obj={"clock": VirtualClock(now)})
    assert done.exit_code == 0 and bytes.fromhex(json.loads(listing.read_text())["data"][0]["daily_key"]) == chain[1]
    with SightingStore.open(tmp_path / "a.db") as store:
        assert store.bluezone3_key()[0] == chain[0] + 2  # a new chain, from today


def test_an_export_whose_list_cannot_be_written_keeps_the_old_chain_while_another_process_writes(tmp_path, monkeypatch) -> None:
    """The new chain was committed before the list was written; a list that then could not be written (here its folder
    is a file) put the old chain back in a second open of the store.  Another process writing by then (the daemon's
    flush, a `checkin`; a full disk alike) refused that open past its busy timeout: the old chain was lost, the device
    on a chain nobody asked for, no list made.  Now the chain is replaced in the transaction the list is written in,
    which holds the store's write lock: a list not written rolls it back, and the other writer waits its turn."""
    import sqlite3

    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.keyformat import keyfile
    from bluezone.proximity.store import interface

    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)
    now = 1_795_694_400.0  # 2026-11-26 12:00 UTC
    chain = (int(now // 86400) - 2, bytes(range(32)))
    db = tmp_path / "a.db"
    with SightingStore.open(db) as store:
        store.save_bluezone3_key(*chain, now - 2 * 86400)
    (tmp_path / "folder").write_text("a file, not a folder\n")  # (root writes into a read-only folder)
    other = sqlite3.connect(db, isolation_level=None, timeout=0)
    real_write = keyfile.write_private

    def written_as_another_process_writes(path, data, **kwargs):
        try:
            other.execute("BEGIN IMMEDIATE")  # the other process's write begins, if the store lets it
        except sqlite3.OperationalError:  # the export's transaction holds the lock: it waits for it to end
            pass
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(keyfile, "write_private", written_as_another_process_writes)
    export = ["keys", "export", "--protocol", "bluezone3", "--db", str(db), "--out", str(tmp_path / "folder" / "f0.json")]
    try:
        refused = CliRunner().invoke(cli, export, obj={"clock": VirtualClock(now)})
    finally:
        if other.in_transaction:
            other.rollback()
        other.close()
    assert refused.exit_code == 2 and "cannot write the keys to" in refused.output, refused.output
    with SightingStore.open(db, create=False) as store:
        assert store.bluezone3_key() == chain


def test_an_export_whose_new_chain_cannot_be_committed_leaves_no_list(tmp_path) -> None:
    """The list is written inside the transaction that replaces the chain; a commit refused after it (a full disk: here
    the process may write no file past 1000 bytes, so the list, ~200, is written and the WAL's 4 KiB page is not)
    leaves the chain the list names in use: the list is deleted, not handed over."""
    import subprocess
    import sys

    now = 1_795_694_400.0  # 2026-11-26 12:00 UTC
    chain = (int(now // 86400) - 2, bytes(range(32)))
    db, listing = tmp_path / "a.db", tmp_path / "f0.json"
    with SightingStore.open(db) as store:
        store.save_bluezone3_key(*chain, now - 2 * 86400)
    script = f"""
import resource, signal
from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.keyformat import keyfile

real_write = keyfile.write_private

def written_as_the_disk_fills(path, data, **kwargs):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
    return real_write(path, data, **kwargs)

keyfile.write_private = written_as_the_disk_fills
cli(["keys", "export", "--protocol", "bluezone3", "--db", {str(db)!r}, "--out", {str(listing)!r}],
    obj={{"clock": VirtualClock({now})}}, prog_name="bluezone")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr and f"cannot write to {db} now" in out.stderr, out.stderr[-800:]
    assert "wrote" not in out.stderr and not listing.exists()
    with SightingStore.open(db, create=False) as store:
        assert store.bluezone3_key() == chain
