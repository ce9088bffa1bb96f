"""``check --server``'s revisions in memory bounded by design (``bluezone.client.revisions``).

Past ``IN_MEMORY`` revisions a check spools them to a nameless file and reads them back a bucket at a
time; past ``EARLIER_IN_MEMORY`` revisions of earlier checks' keys it keeps only those whose RPIs the
store heard.  Here the budgets are made tiny: the reports (every field, two checks in a row so the
second meets what the first told) must be those of the revisions held whole, the memory a check
takes must not grow with the revisions, and the spool must be gone however the check ends.
"""

from __future__ import annotations

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
from bluezone.client.revisions import EarlierRevisions
from bluezone.client.state import ServerState
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import KeyServerError
from bluezone.keyformat.keys import REPORT_TYPE_REVOKED
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.check import HeardRpis
from bluezone.matching.matcher import keys_heard
from bluezone.proximity.store import SightingStore


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    path = tmp_path_factory.mktemp("world") / "store.db"
    return make_world(path), path


def _tiny_budgets(monkeypatch: pytest.MonkeyPatch, spool_dir: Path) -> None:
    """Revisions spooled past 2 and earlier checks' ones kept whole up to 0: every path of the bound taken."""
    monkeypatch.setattr(revisions, "IN_MEMORY", 2)
    monkeypatch.setattr(revisions, "EARLIER_IN_MEMORY", 0)
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
    every = list(range(len(keys)))
    files = {"1000-00001.zip": signed_file(keys, every, [])}
    revised = [(k, REPORT_TYPE_REVOKED if k % 3 else 1) for k in reversed(every)]
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
    earlier = EarlierRevisions(2 * len(keys), lambda: index, budget=5)
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


def _revision_files(n_files: int, per_file: int, seed: int) -> dict[str, bytes]:
    """``n_files`` files of ``per_file`` revoked revisions each, of keys no check has seen (none heard)."""
    keys, _, _ = synthetic_data(n_files * per_file, 1, seed, end_time=1_760_000_000 // DAY_SECONDS * DAY_SECONDS)
    revoked = [(i, REPORT_TYPE_REVOKED) for i in range(per_file)]
    return {f"{1000 + i}-00001.zip": signed_file(keys[i * per_file : (i + 1) * per_file], [], revoked) for i in range(n_files)}


def _peak_of_a_check(store: Path, files: dict[str, bytes]) -> int:
    """The most memory (bytes, Python and numpy: ``tracemalloc``) a check of ``files`` took above its start."""
    with SightingStore.open(store, create=False) as opened, mock_client(files, list(files)) as client:
        tracemalloc.start()
        try:
            result = check_server(client, ServerState(opened), server_key=PIN, now=NOW)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.revised == result.revoked == sum(1 for _ in files) * 5000
    return peak


def test_a_check_takes_no_more_memory_for_more_revisions(
    world: tuple[np.ndarray, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20,000 and 240,000 revoked revisions (in files of 5,000, budgets of 1,000): what still grows is
    two bits a revision and one bucket (1/256 of them), ~0.4 MB here.  db09ff3 took 3.6 MB more: its
    lookup of the earlier checks' revisions took the budget and a bucket at once, and its memory
    (~3.4 KB a key, up to 2,048 keys a call) grew in steps with the bucket; f50097a, which held them
    whole, 2.4 MB more for 80,000.  A check first, not measured: the first check of a process (its
    imports, caches) made the smaller one look larger or smaller by the tests run before it."""
    _, store = world
    monkeypatch.setattr(revisions, "IN_MEMORY", 1000)
    monkeypatch.setattr(revisions, "EARLIER_IN_MEMORY", 1000)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    _peak_of_a_check(store_copy(store, tmp_path / "first.db"), _revision_files(1, 5000, 1))
    few, many = (_peak_of_a_check(store_copy(store, tmp_path / f"{n}.db"), _revision_files(n, 5000, n)) for n in (4, 48))
    assert many - few < 1 << 20, (few, many)


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
