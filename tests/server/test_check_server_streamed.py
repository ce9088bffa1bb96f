"""``check --server`` matching batch by batch gives what matching the batches joined gives.

Past ``buffer_keys`` keys a check no longer joins its batches: each is matched as it comes
(``bluezone.client.batchstream``) and what spans batches (copies of a key in a replayed file,
revisions of keys of another batch or of an earlier check, what earlier checks reported) is
answered from a spool at the end.  The same random batch sets checked joined (the default limit) and
streaming (limit 0), twice in a row, give the same reports field by field: that property is tested
with the revisions' spool's in test_revision_spool.py; here, the keys' spool and the stream's jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mock_exports import N_KEYS, make_world, run_checks, said_under_a_full_disk, signed_file, store_copy

import bluezone.client.spool as spool
from bluezone.client.batchstream import BatchStream
from bluezone.client.revisions import EarlierRevisions, RevisionSpool
from bluezone.client.spool import RowSpool
from bluezone.keyformat.keys import REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.matcher import HeardIndex

@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """48 keys (12 of them heard: planted in the store) and a store of 3,000 sightings."""
    path = tmp_path_factory.mktemp("world") / "store.db"
    return make_world(path), path


def test_a_streamed_check_finds_the_exposures_with_two_jobs(world: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    """With --jobs 2 the stream's workers derive the keys: the same reports, and exposures found."""
    keys, store = world
    every = list(range(N_KEYS))
    files = {
        "1000-00001.zip": signed_file(keys, every[:30], [(3, REPORT_TYPE_REVOKED)]),
        "1001-00001.zip": signed_file(keys, every[25:] + every[:5], [(40, REPORT_TYPE_RECURSIVE)]),
    }
    files["1002-00001.zip"] = files["1000-00001.zip"]
    rounds = [["1000-00001.zip", "1001-00001.zip"], ["1002-00001.zip"]]
    for name in ("a", "b"):
        store_copy(store, tmp_path / f"{name}.db")
    streamed = run_checks(tmp_path / "a.db", files, rounds, buffer_keys=0, jobs=2)
    assert streamed == run_checks(tmp_path / "b.db", files, rounds)
    assert streamed[0]["keys"] == N_KEYS and streamed[0]["exposures"] and not streamed[1]["exposures"]
    assert streamed[1]["earlier_exposures"]


@given(
    st.lists(st.integers(0, 5000), unique=True, max_size=300),
    st.lists(st.integers(0, 5100), max_size=20),
    st.integers(1, 40),
    st.integers(1, 7),
)
@settings(max_examples=60, deadline=None)
def test_a_row_spool_tells_which_rows_it_holds_and_how_many_lie_before(
    given: list[int], asked: list[int], in_memory: int, pieces: int
) -> None:
    """What the copies' bit a key (and the earlier revisions' two bits a revision) told in memory, from
    rows given in pieces in any order, on disk past ``ROWS_IN_MEMORY`` and read back that many at a time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spool, "ROWS_IN_MEMORY", in_memory)
        with RowSpool("keys") as rows:
            for piece in np.array_split(np.array(given, np.int64), pieces):
                rows.add(piece)
            among, before = rows.among_before(np.array(asked, np.int64))
            assert rows.on_disk == (len(given) >= in_memory)
    assert among.tolist() == [r in given for r in asked]
    assert before.tolist() == [sum(g < r for g in given) for r in asked]


def _no_revisions() -> tuple[RevisionSpool, EarlierRevisions]:
    revisions = RevisionSpool()
    revisions.finish()
    return revisions, EarlierRevisions(lambda: None)


def test_the_spool_is_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spool holds every key of the check on disk: it goes with the check, and has no name meanwhile."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    keys = empty_keys(5000)
    keys["key"] = np.frombuffer(np.random.default_rng(1).bytes(16 * 5000), "V16")
    keys["rolling_start"] = 2_900_000
    keys["rolling_period"] = 144
    heard = HeardIndex(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64))
    with BatchStream(heard) as stream:
        stream.add(keys)
        stream.add(keys[:10])  # copies
        assert list(tmp_path.iterdir()) == []
        assert os.readlink(f"/proc/self/fd/{stream._spool._file.fileno()}").startswith(f"{tmp_path}/")
        found = stream.finish(*_no_revisions())
        assert stream._spool._file.closed
    assert found.count == 5000 and found.revoked == 0 and not len(found.keys)


def test_the_spool_keeps_one_file_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many buckets: a file a bucket would be 256 open files, macOS's default limit for a process."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    heard = HeardIndex(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64))
    before = len(os.listdir("/proc/self/fd"))
    with BatchStream(heard, jobs=1):
        assert len(os.listdir("/proc/self/fd")) - before <= 1


def test_a_spool_written_in_many_pieces_reports_what_the_joined_keys_do(
    world: tuple[np.ndarray, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bucket is read back from every write of the spool, in the order written: copies across
    writes, revisions of keys of another write, and the rows of the keys found come out as joined."""
    monkeypatch.setattr(spool, "WRITE_KEYS", 4)
    keys, store = world
    every = list(range(N_KEYS))
    files = {
        "1000-00001.zip": signed_file(keys, every[:20], [(30, REPORT_TYPE_REVOKED)]),
        "1001-00001.zip": signed_file(keys, every[15:40] + every[:3], [(2, REPORT_TYPE_RECURSIVE)]),
        "1002-00001.zip": signed_file(keys, every[38:] + every[10:13], [(5, REPORT_TYPE_REVOKED)]),
    }
    for name in ("a", "b"):
        store_copy(store, tmp_path / f"{name}.db")
    rounds = [list(files)]
    streamed = run_checks(tmp_path / "a.db", files, rounds, buffer_keys=0)
    assert streamed == run_checks(tmp_path / "b.db", files, rounds)
    assert streamed[0]["keys"] == N_KEYS and streamed[0]["exposures"]


def test_a_killed_check_leaves_no_spool(tmp_path: Path) -> None:
    """A check killed while streaming (kill -9, the OOM killer, a power cut: no clean-up runs) leaves
    nothing in the temporary directory: the spool's files have no name once made, as a whole
    14 days of a national server's keys would be gigabytes left there for good."""
    script = (
        "import os, signal, numpy as np\n"
        "from bluezone.client.batchstream import BatchStream\n"
        "from bluezone.keyformat.keys import empty_keys\n"
        "from bluezone.matching.matcher import HeardIndex\n"
        "keys = empty_keys(300_000)\n"
        "keys['key'] = np.frombuffer(np.random.default_rng(1).bytes(16 * len(keys)), 'V16')\n"
        "keys['rolling_start'], keys['rolling_period'] = 2_900_000, 144\n"
        "stream = BatchStream(HeardIndex(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64)))\n"
        "stream.add(keys)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []


def test_the_spool_is_on_disk_not_in_a_memory_backed_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without $TMPDIR the spool goes to /var/tmp: /tmp is a tmpfs (memory) on many systems, where a
    spool of 33 bytes a key would be the memory the batch-by-batch check exists to save."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    if not os.access("/var/tmp", os.W_OK | os.X_OK):
        pytest.skip("no writable /var/tmp here")
    heard = HeardIndex(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64))
    with BatchStream(heard) as stream:
        assert os.readlink(f"/proc/self/fd/{stream._spool._file.fileno()}").startswith("/var/tmp/")


def test_a_full_disk_under_the_spool_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    """The spool's disk full (here a file size limit: the same OSError from write) ends the check with
    where and what to do, not 'OSError: 1214 requested and 124 written'."""
    said = said_under_a_full_disk(
        tmp_path,
        "from bluezone.client.batchstream import BatchStream\n"
        "from bluezone.client.revisions import EarlierRevisions, RevisionSpool\n"
        "from bluezone.matching.matcher import HeardIndex\n"
        "keys['rolling_start'], keys['rolling_period'] = 2_900_000, 144\n",
        "with BatchStream(HeardIndex(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64))) as stream:\n"
        "    stream.add(keys)\n"
        "    revisions = RevisionSpool()\n"
        "    revisions.finish()\n"
        "    stream.finish(revisions, EarlierRevisions(lambda: None))\n",
    )
    assert said.startswith(f"cannot write the check's spool in {tmp_path}: no room left (300,000 keys so far")
    assert "set TMPDIR" in said


def test_a_file_served_again_under_another_name_is_not_matched_again(
    world: tuple[np.ndarray, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its keys are all copies (the report is the same either way): only verified and listed."""
    keys, store = world
    added: list[int] = []
    add = BatchStream.add
    monkeypatch.setattr(BatchStream, "add", lambda self, given: (added.append(len(given)), add(self, given))[1])
    files = {"1000-00001.zip": signed_file(keys, list(range(N_KEYS)), [])}
    files["1001-00001.zip"] = files["1000-00001.zip"]
    store_copy(store, tmp_path / "a.db")
    [report] = run_checks(tmp_path / "a.db", files, [["1000-00001.zip", "1001-00001.zip"]], buffer_keys=0)
    assert sum(added) == N_KEYS and report["keys"] == N_KEYS
    assert report["batches"] == ["1000-00001.zip", "1001-00001.zip"] and report["exposures"]
