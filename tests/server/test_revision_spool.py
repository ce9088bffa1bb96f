"""``check --server``'s revisions in memory bounded by design (``bluezone.client.revisions``).

Past ``IN_MEMORY`` revisions a check spools them to a nameless file and reads them back a part at a
time; past ``EARLIER_IN_MEMORY`` revisions of earlier checks' keys it keeps only those whose RPIs the
store heard.  Here the budgets are made tiny: the reports (every field, two checks in a row so the
second meets what the first told) must be those of the revisions held whole, the memory a check
takes must not grow with the revisions, and the spool must be gone however the check ends.
"""

from __future__ import annotations

import gc
import os
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mock_exports import NOW, PIN, batch_sets, make_rounds, make_world, mock_client, run_checks, said_under_a_full_disk, signed_file, store_copy

import bluezone.client.revisions as revisions
import bluezone.client.spool as spool
from bluezone.client.check import check_server
from bluezone.client.revisions import EarlierRevisions, as_keys, beside_keys, settle
from bluezone.client.state import ServerState
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import KeyServerError
from bluezone.keyformat.keys import KEY_DTYPE, REPORT_TYPE_CONFIRMED, REPORT_TYPE_LIKELY, REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.check import HeardRpis, sightings_span
from bluezone.matching.matcher import keys_heard
from bluezone.proximity.store import SightingStore


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    path = tmp_path_factory.mktemp("world") / "store.db"
    return make_world(path), path


def _tiny_budgets(monkeypatch: pytest.MonkeyPatch, spool_dir: Path) -> None:
    """Revisions spooled past 2, earlier checks' ones kept whole up to 0, spools read back a prefix at a
    time and rows on disk from the first: every path of the bound taken."""
    monkeypatch.setattr(revisions, "IN_MEMORY", 2)
    monkeypatch.setattr(revisions, "EARLIER_IN_MEMORY", 0)
    monkeypatch.setattr(spool, "PART_RECORDS", 1)
    monkeypatch.setattr(spool, "ROWS_IN_MEMORY", 1)
    monkeypatch.setenv("TMPDIR", str(spool_dir))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(batch_sets(max_revisions=10), max_size=4), second=st.lists(batch_sets(max_revisions=10), max_size=4))
def test_spooled_revisions_report_what_revisions_held_whole_report(
    world: tuple[np.ndarray, Path], tmp_path_factory: pytest.TempPathFactory, first: list, second: list
) -> None:
    """Joined keys, streamed keys (``batchstream``), sightings in memory: each with tiny budgets, and
    the keys streamed with the default ones, as the keys joined with the default ones."""
    keys, store = world
    files, rounds = make_rounds(keys, [first, second])
    scratch = tmp_path_factory.mktemp("stores")
    held = run_checks(store_copy(store, scratch / "held.db"), files, rounds)
    assert run_checks(store_copy(store, scratch / "streamed_held.db"), files, rounds, buffer_keys=0) == held
    with pytest.MonkeyPatch.context() as patch:
        _tiny_budgets(patch, scratch)
        joined = run_checks(store_copy(store, scratch / "joined.db"), files, rounds)
        streamed = run_checks(store_copy(store, scratch / "streamed.db"), files, rounds, buffer_keys=0)
        in_memory = run_checks(store_copy(store, scratch / "in_memory.db"), files, rounds, in_memory=True)
    assert joined == held
    assert streamed == held
    assert in_memory == held
    assert [p.name for p in scratch.iterdir() if not p.name.endswith(".db")] == []  # no spool left


def test_withdrawn_and_updated_exposures_keep_their_rows_past_the_budgets(
    world: tuple[np.ndarray, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first check reports exposures to heard keys; the second meets revisions of them among many of
    unheard keys (more than the budgets): the same withdrawals and updates, at the same rows, told."""
    keys, store = world
    keys = keys.copy()
    keys["report_type"] = REPORT_TYPE_LIKELY  # so that a revision to confirmed is an update (the same type is none)
    every = list(range(len(keys)))
    files = {"1000-00001.zip": signed_file(keys, every, [])}
    revised = [(k, REPORT_TYPE_REVOKED if k % 3 else REPORT_TYPE_CONFIRMED) for k in reversed(every)]
    files["1001-00001.zip"] = signed_file(keys, [], revised[:20])
    files["1002-00001.zip"] = signed_file(keys, [], revised[20:] + revised[:5])  # copies of revisions too
    rounds = [["1000-00001.zip"], ["1001-00001.zip", "1002-00001.zip"]]
    held = run_checks(store_copy(store, tmp_path / "held.db"), files, rounds)
    assert held[0]["exposures"] and held[1]["withdrawn"] and held[1]["updated"]
    assert held[1]["revised_keys"] == len(keys)
    _tiny_budgets(monkeypatch, tmp_path)
    assert run_checks(store_copy(store, tmp_path / "spooled.db"), files, rounds) == held
    assert run_checks(store_copy(store, tmp_path / "streamed.db"), files, rounds, buffer_keys=0) == held


def test_past_the_budget_only_revised_keys_the_store_heard_are_kept(world: tuple[np.ndarray, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each kept with its row among all of its kind, and the counts of all of them; looked up a budget
    at a time whatever the parts given (db09ff3 looked up the budget and the next part together: its
    memory grew with the parts, so with the revisions)."""
    keys, store = world
    looked_up: list[int] = []

    def counted(keys: np.ndarray, index: object) -> tuple[np.ndarray, np.ndarray]:
        looked_up.append(len(keys))
        return keys_heard(keys, index)  # type: ignore[arg-type]

    monkeypatch.setattr(revisions, "keys_heard", counted)
    records = np.zeros(len(keys), revisions.REVISION_DTYPE)
    for name in keys.dtype.names or ():
        records[name] = keys[name]
    records["row"] = np.arange(len(keys)) * 2  # copies between them, as a replayed file leaves
    records["report_type"][::2] = REPORT_TYPE_REVOKED
    with SightingStore.open(store, create=False) as opened:
        index = HeardRpis.read_all(opened).index
    heard_rows, _ = keys_heard(keys, index)
    assert 0 < len(heard_rows) < len(keys)
    earlier = EarlierRevisions(lambda: index, budget=5)
    for part in np.array_split(records, 3):  # 16 a part, 8 of each kind: more than the budget
        earlier.add(part)
    withdrawn, updated = earlier.finish()
    for kind, got in ((True, withdrawn), (False, updated)):
        of_kind = np.flatnonzero((np.arange(len(keys)) % 2 == 0) == kind)
        kept = [i for i in of_kind if i in set(heard_rows.tolist())]
        assert got.count == len(of_kind) and not got.whole
        assert bytes(got.keys["key"]) == bytes(keys["key"][kept])
        assert got.index.tolist() == [of_kind.tolist().index(i) for i in kept]
    assert earlier.distinct == len(keys)
    assert sum(looked_up) == len(keys) and max(looked_up) == 5, looked_up


def _records(draw: st.DrawFn, dtype: np.dtype, n: int) -> np.ndarray:
    """``n`` records whose keys share their first two bytes often (parts end inside a first byte's keys)
    and repeat (copies), each its ``row``: the order given."""
    records = np.zeros(n, dtype)
    raw = np.frombuffer(np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, 0] = draw(st.lists(st.sampled_from([0, 1, 7, 255]), min_size=n, max_size=n))
    raw[:, 1] = draw(st.lists(st.sampled_from([0, 3, 255]), min_size=n, max_size=n))
    copies = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0))), max_size=n // 3))
    for to, of in copies:
        raw[to] = raw[of]
    records["key"] = raw.view("V16").reshape(-1)
    records["row"] = np.arange(n)
    return records


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_spool_reads_back_each_part_of_its_prefixes_each_key_in_the_order_given(data: st.DataObject) -> None:
    """Every record read once, in parts of consecutive prefixes (the key's first two bytes) of at most
    ``PART_RECORDS`` and one prefix's records, each key's records in the order given: from memory (a
    lazy spool never written) and from disk (written in runs of any size)."""
    n = data.draw(st.integers(0, 200))
    records = _records(data.draw, revisions.REVISION_DTYPE, n)
    part_records = data.draw(st.integers(1, 60))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spool, "PART_RECORDS", part_records)
        with spool.BucketSpool(records.dtype, "revisions", lazy=data.draw(st.booleans()), write_records=data.draw(st.integers(1, 250))) as spooled:
            for piece in np.array_split(records, data.draw(st.integers(1, 9))):
                spooled.add(piece)
            spooled.finish()
            parts, start = [], 0
            for end in spool.part_ends(spooled):
                part = spooled.read_upto(end)
                assert ((spool.prefix_of(part) >= start) & (spool.prefix_of(part) < end)).all()
                biggest = int(spooled.counts[start:end].max()) if end > start else 0
                assert len(part) <= part_records + biggest
                parts.append(part)
                start = end
    assert start == spool.PREFIXES
    read = np.concatenate(parts) if parts else records[:0]
    assert sorted(read["row"].tolist()) == list(range(n))
    order = np.argsort(read["key"], kind="stable")  # each key's records together, in the order read
    same = read["key"][order][1:] == read["key"][order][:-1]
    assert (np.diff(read["row"][order])[same] > 0).all()


def _most_certain_of_each(stream: np.ndarray) -> list[int]:
    """The rows of each key's most certain revision (confirmed over likely over recursive; revoked over all),
    the first of equals: a key revised recursive -> likely -> confirmed, both files fetched by one check."""
    certainty = {REPORT_TYPE_RECURSIVE: 1, 2: 2, 1: 3, REPORT_TYPE_REVOKED: 4}
    best: dict[bytes, int] = {}
    for row, record in enumerate(stream):
        key = bytes(record["key"])
        if key not in best or certainty[int(record["report_type"])] > certainty[int(stream[best[key]]["report_type"])]:
            best[key] = row
    return sorted(best.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_earlier_revisions_read_a_part_at_a_time_are_those_held_whole(world: tuple[np.ndarray, Path], data: st.DataObject) -> None:
    """A random stream of revisions of heard and unheard keys (copies among them; some applied to this
    check's keys), spooled and read back a part at a time with tiny budgets, gives the withdrawn and
    updated sets the same stream held whole gives: each kind's distinct revisions in the order they
    came, those the store heard at their rows among all of their kind, counts and spans."""
    keys, store = world
    with SightingStore.open(store, create=False) as opened:
        index = HeardRpis.read_all(opened).index
    fresh = keys[data.draw(st.lists(st.integers(0, len(keys) - 1), max_size=40))].copy()  # keys no store heard
    fresh["key"] = _records(data.draw, revisions.REVISION_DTYPE, len(fresh))["key"]
    pool = np.concatenate([keys, fresh])
    n = data.draw(st.integers(1, 150))
    picked = pool[data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=n, max_size=n))]  # copies among them
    stream = np.zeros(n, revisions.REVISION_DTYPE)
    for name in KEY_DTYPE.names or ():
        stream[name] = picked[name]
    stream["report_type"] = data.draw(st.lists(st.sampled_from([1, 2, REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED]), min_size=n, max_size=n))
    stream["row"] = np.arange(n)
    plain = pool[data.draw(st.lists(st.integers(0, len(pool) - 1), unique=True, max_size=20))]  # this check's keys
    budget = data.draw(st.integers(0, 12))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(revisions, "IN_MEMORY", data.draw(st.integers(1, 40)))
        patch.setattr(spool, "PART_RECORDS", data.draw(st.integers(1, 30)))
        patch.setattr(spool, "ROWS_IN_MEMORY", data.draw(st.integers(1, 30)))
        with revisions.RevisionSpool() as spooled, EarlierRevisions(lambda: index, budget=budget) as earlier:
            for piece in np.array_split(stream, data.draw(st.integers(1, 6))):
                spooled.add(as_keys(piece))
            spooled.finish()
            for revised, of_plain in beside_keys(plain, spooled):
                earlier.add(revised, applied=settle(revised, of_plain, frozenset()))
            withdrawn, updated = earlier.finish()
    # held whole: each key's most certain revision (the first of equals), those of this check's keys applied,
    # the others by kind
    distinct = stream[_most_certain_of_each(stream)]
    rest = distinct[~np.isin(distinct["key"], plain["key"])]
    assert earlier.distinct == len(distinct)
    for kind, got in ((True, withdrawn), (False, updated)):
        members = as_keys(rest[(rest["report_type"] == REPORT_TYPE_REVOKED) == kind])
        if kind:
            members["report_type"] = 0
        assert got.count == len(members) and got.span == sightings_span(members)
        if got.whole:  # never past the budget: every one kept
            assert len(members) <= budget and bytes(got.keys) == bytes(members)
            continue
        found, rpis = keys_heard(members, index)
        assert bytes(got.keys) == bytes(members[found])
        assert got.index.tolist() == found.tolist()
        assert sorted(map(bytes, got.rpis)) == sorted(map(bytes, rpis))


def _revision_files(n_files: int, per_file: int, seed: int) -> dict[str, bytes]:
    """``n_files`` files of ``per_file`` revoked revisions each, of keys no check has seen (none heard)."""
    keys, _, _ = synthetic_data(n_files * per_file, 1, seed, end_time=1_760_000_000 // DAY_SECONDS * DAY_SECONDS)
    revoked = [(i, REPORT_TYPE_REVOKED) for i in range(per_file)]
    return {f"{1000 + i}-00001.zip": signed_file(keys[i * per_file : (i + 1) * per_file], [], revoked) for i in range(n_files)}


def _peak_of_a_check(store: Path, files: dict[str, bytes], revised: int) -> int:
    """The most memory (bytes, Python and numpy: ``tracemalloc``) a check of ``files`` took above its start,
    the garbage of its downloads collected once they end: each leaves an httpx response in a reference
    cycle (~1 KB a file) until the cyclic collector runs, and when it does is not the check's to say."""
    finish = revisions.RevisionSpool.finish

    def collected_first(spooled: revisions.RevisionSpool) -> None:
        gc.collect()
        finish(spooled)

    with SightingStore.open(store, create=False) as opened, mock_client(files, list(files)) as client, pytest.MonkeyPatch.context() as patch:
        patch.setattr(revisions.RevisionSpool, "finish", collected_first)
        gc.collect()
        tracemalloc.start()
        try:
            result = check_server(client, ServerState(opened), server_key=PIN, now=NOW)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.revised == result.revoked == revised
    return peak


def test_a_check_takes_no_more_memory_for_more_revisions(
    world: tuple[np.ndarray, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same 48 files with 20,016 and 240,000 revoked revisions (417 and 5,000 a file; budgets of
    1,000): the same peak within 32 KiB, 0.15 bytes a revision (measured 2-22 KB: where a part ends, 32
    bytes a spool write, and numpy's and the native helper's small objects, more of them for more calls,
    which no design of ours removes).  6da841f took 190-200 KB more (two bits a revision and a bucket,
    1/256 of them, in memory: fails here with the helper and without); db09ff3 ~3.6 MB more (its lookups
    grew with a bucket).  The same files in both, so what a file costs (its name, what is remembered of
    it, a response until the cyclic collector runs) is the same.  A check first, not measured: the first
    check of a process (its imports, caches) made the smaller one look larger or smaller by the tests
    run before it."""
    _, store = world
    monkeypatch.setattr(revisions, "IN_MEMORY", 1000)
    monkeypatch.setattr(revisions, "EARLIER_IN_MEMORY", 1000)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    _peak_of_a_check(store_copy(store, tmp_path / "first.db"), _revision_files(48, 100, 1), 4800)
    few, many = (_peak_of_a_check(store_copy(store, tmp_path / f"{n}.db"), _revision_files(48, n, n), 48 * n) for n in (417, 5000))
    assert many - few < 32 << 10, (few, many)


@pytest.mark.parametrize("ending", ["success", "error", "ctrl-c"])
def test_the_revision_spool_is_gone_however_the_check_ends(
    world: tuple[np.ndarray, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """The spool has no name once made and is closed on the way out: nothing left in $TMPDIR, no file open."""
    keys, store = world
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    _tiny_budgets(monkeypatch, spool_dir)
    made: list[Any] = []
    make = tempfile.TemporaryFile

    def recorded(*args: Any, **kw: Any) -> Any:
        made.append(make(*args, **kw))
        return made[-1]

    monkeypatch.setattr(spool.tempfile, "TemporaryFile", recorded)
    files = {f"{1000 + i}-00001.zip": signed_file(keys, [], [(k, REPORT_TYPE_REVOKED) for k in range(10 * i, 10 * i + 10)]) for i in range(4)}

    def fail(name: str) -> None:
        if name == "1003-00001.zip" and ending == "error":
            raise KeyServerError("http://keys.test/1003-00001.zip: 500", "server_error", 500)
        if name == "1003-00001.zip" and ending == "ctrl-c":
            raise KeyboardInterrupt

    outcome: type[BaseException] | None = {"success": None, "error": KeyServerError, "ctrl-c": KeyboardInterrupt}[ending]
    with SightingStore.open(store_copy(store, tmp_path / "a.db"), create=False) as opened, mock_client(files, list(files), fail) as client:
        if outcome is None:
            assert check_server(client, ServerState(opened), server_key=PIN, now=NOW).revised == 40
        else:
            with pytest.raises(outcome):
                check_server(client, ServerState(opened), server_key=PIN, now=NOW)
    assert made and all(f.closed for f in made)
    assert list(spool_dir.iterdir()) == []
    assert not [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}").startswith(f"{spool_dir}/")]


def test_a_full_disk_under_the_revision_spool_is_one_line(tmp_path: Path) -> None:
    """As the keys' spool says it: where, how many so far, and what to do."""
    said = said_under_a_full_disk(
        tmp_path,
        "from bluezone.client.revisions import RevisionSpool\n",
        "with RevisionSpool() as spooled:\n    spooled.add(keys)\n    spooled.finish()\n",
    )
    assert said.startswith(f"cannot write the check's spool in {tmp_path}: no room left (300,000 revisions so far, 41 bytes each)")
    assert list(tmp_path.iterdir()) == []
