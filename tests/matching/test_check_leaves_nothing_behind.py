"""A check with more than one job shares memory with its workers (``SharedBatches``' anonymous shared
slots, ``SharedCounter``'s memfd, ``matcher._SharedBlocks``): on every way out (a good file, a bad one,
no store, a worker killed mid-check) none of it stays mapped or open in this process, and no worker
outlives the check for long.  A library user (a node checking every day in one long-lived process)
would otherwise gather a segment and a process per check."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matching_helpers import SCORERS, day_file

import bluezone.keyformat.exportstream as exportstream
import bluezone.matching.check as check_module
import bluezone.matching.keystream as keystream
import bluezone.matching.matcher as matcher_module
import bluezone.matching.sharedbatches as sharedbatches
from bluezone.errors import KeyFileError, MatchWorkerError, NotAStoreError
from bluezone.keyformat.export import build_export_bin
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.check import check_key_file


def _shared_segments() -> int:
    """memfds open in this process and shared mappings (a memfd's, or an anonymous ``MAP_SHARED``
    one, which Linux names ``/dev/zero (deleted)``) in its address space, once the collector has run:
    an error's traceback holds the check's frames, and the counters in them, in a reference cycle
    (a long-lived process frees them at its next collection; a reference kept anywhere still fails)."""
    gc.collect()
    fds = Path("/proc/self/fd")
    open_fds = sum("memfd:" in _link(fd) for fd in fds.iterdir())
    with open("/proc/self/maps") as maps:
        mapped = sum("memfd:" in line or "/dev/zero" in line for line in maps)
    return open_fds + mapped


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # the directory's own descriptor, closed by now
        return ""


def _children() -> set[int]:
    return {int(p) for task in os.listdir("/proc/self/task") for p in _task_children(task).split()}


def _task_children(task: str) -> str:
    """A thread's children; "" once the thread has ended (another test's thread may end between the listing of
    this process's threads and the read: FileNotFoundError)."""
    try:
        return Path(f"/proc/self/task/{task}/children").read_text()
    except OSError:
        return ""


def _new_children_soon(before: set[int], deadline: float = 20.0) -> set[int]:
    """This process's children not in ``before`` still running (a zombie has ended: ``multiprocessing``
    reaps it later), once none is, or those still running at the deadline (a worker is not waited for
    by the check: it exits on its own, 10-20 ms of unmapping)."""
    end = time.monotonic() + deadline
    while (left := {p for p in _children() - before if _state(p) not in ("Z", "X", "")}) and time.monotonic() < end:
        time.sleep(0.01)
    return left


def _state(pid: int) -> str:
    """A process's state letter (``R``, ``S``, ``Z``...; empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Before:
    """What this process had before the check (other tests' servers and pools may stay up)."""

    children: set[int]
    segments: int


@pytest.fixture
def before() -> Before:
    if not Path("/proc/self/maps").exists():
        pytest.skip("reads /proc (Linux)")
    return Before(_children(), _shared_segments())


@pytest.fixture
def streamed_to_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small batches, and the store counted as read once it has been: the keys go to the workers
    (``KeyStream`` over ``SharedBatches``) from the first batch on."""
    monkeypatch.setattr(keystream, "BATCH", 256)
    monkeypatch.setattr(keystream, "EARLY_BATCH", 256)
    monkeypatch.setattr(exportstream, "PIECE", 4096)
    monkeypatch.setattr(check_module._HeardInBackground, "ready", lambda self: self._read.exception() is None)


def _kill_the_worker_holding_the_second_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker claims the second batch and is killed holding it (SIGKILL), and this process posts no more until
    then: that batch is lost whatever the load, so the check must fail.  Killed from here as soon as the batch was
    posted (as before), a worker not yet scheduled on a loaded machine had claimed nothing, and if its exit was not
    seen before this process had derived every batch left itself, the check ended complete and without error (est19,
    session 19: "DID NOT RAISE"; nothing was lost, so no error is right then)."""
    parent, claimed = os.getpid(), multiprocessing.get_context("fork").Event()  # made before the fork: shared
    batch, post = sharedbatches.SharedBatches._batch, sharedbatches.SharedBatches.post

    def dying(self: sharedbatches.SharedBatches, number: int) -> np.ndarray:
        if os.getpid() != parent and number == 1:
            claimed.set()
            os.kill(os.getpid(), signal.SIGKILL)
        return batch(self, number)

    def waiting(self: sharedbatches.SharedBatches, keys: np.ndarray) -> int | None:
        number = post(self, keys)
        if number == 1:
            assert claimed.wait(60), "the worker never claimed the second batch"
        return number

    monkeypatch.setattr(sharedbatches.SharedBatches, "_batch", dying)
    monkeypatch.setattr(sharedbatches.SharedBatches, "post", waiting)


@pytest.mark.usefixtures("streamed_to_workers")
@pytest.mark.parametrize("way_out", ["good file", "bad file", "bad file, no store", "no store", "worker killed"])
def test_a_streamed_two_job_check_leaves_no_shared_segment_and_no_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way_out: str, before: Before
) -> None:
    path, db, file_keys, _ = day_file(tmp_path)
    made: list[int] = []
    init = sharedbatches.SharedBatches.__init__

    def counted(self: sharedbatches.SharedBatches, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(_shared_segments())

    monkeypatch.setattr(sharedbatches.SharedBatches, "__init__", counted)
    if way_out.startswith("bad file"):
        path = tmp_path / "broken.bin"
        path.write_bytes(build_export_bin(file_keys, region="VN")[:-5])
    if way_out.endswith("no store"):
        db = tmp_path / "missing.db"
    if way_out == "worker killed":
        _kill_the_worker_holding_the_second_batch(monkeypatch)
    expected: type[BaseException] | None = {
        "bad file": KeyFileError, "bad file, no store": KeyFileError, "no store": NotAStoreError, "worker killed": MatchWorkerError,
    }.get(way_out)
    run: Callable[[], object] = lambda: check_key_file(path, db, scorer=SCORERS["bluezone"], jobs=2)
    if expected is None:
        run()
    else:
        with pytest.raises(expected):
            run()
    if not way_out.endswith("no store"):
        assert made and made[0] > before.segments  # the workers were made, sharing memory with this process
    assert _shared_segments() == before.segments
    assert _new_children_soon(before.children) == set()


@pytest.mark.parametrize("killed", [False, True])
def test_a_two_job_match_leaves_no_shared_segment_and_no_worker(monkeypatch: pytest.MonkeyPatch, killed: bool, before: Before) -> None:
    """``match`` (an array of keys, as a small file or ``check_store`` is checked) with its own pool."""
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)  # small data, still split
    keys, sightings, _ = synthetic_data(4 * matcher_module._CHUNK, 20_000, seed=13, planted=30)
    if killed:
        matches = matcher_module._matches

        def dying(*args: object) -> object:
            if os.getpid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
            return matches(*args)  # type: ignore[arg-type]

        parent = os.getpid()
        monkeypatch.setattr(matcher_module, "_matches", dying)
        with pytest.raises(MatchWorkerError):
            matcher_module.match(keys, sightings, jobs=2)
    else:
        assert len(matcher_module.match(keys, sightings, jobs=2)) > 0
    assert _new_children_soon(before.children) == set()
    assert _shared_segments() == before.segments


def _memfds_now() -> int:
    """memfds open in this process and mapped, without running the collector first."""
    open_fds = sum("memfd:" in _link(fd) for fd in Path("/proc/self/fd").iterdir())
    with open("/proc/self/maps") as maps:
        return open_fds + sum("memfd:" in line for line in maps)


def test_a_killed_match_frees_its_counter_without_waiting_for_the_collector(monkeypatch: pytest.MonkeyPatch, before: Before) -> None:
    """After MatchWorkerError, ``match``'s futures (holding the pool's error, whose traceback held the
    frame holding them) made a reference cycle: its counter's memfd stayed open and mapped until the
    next garbage collection, which a long-lived process may not run for a while."""
    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 100)
    keys, sightings, _ = synthetic_data(4 * matcher_module._CHUNK, 20_000, seed=13, planted=30)
    matches, parent = matcher_module._matches, os.getpid()

    def dying(*args: object) -> object:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return matches(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(matcher_module, "_matches", dying)
    memfds = _memfds_now()
    gc.disable()
    try:
        try:
            matcher_module.match(keys, sightings, jobs=2)
        except MatchWorkerError:
            pass
        else:
            pytest.fail("the worker was killed, yet match returned")
        left = _memfds_now()
    finally:
        gc.enable()
    assert left == memfds
    assert _new_children_soon(before.children) == set()
