"""Two key streams with ``jobs`` > 1 at once (two checks in threads of a program using bluezone as
a library, or one check started while another is between pieces): each one's workers must derive
against its own store's heard RPIs.  The workers used to find the index in a module global set when
the stream was made, but a fork pool forks at its first task, much later (after a million buffered
keys): another stream made in between had replaced the global (this one's keys derived against that
store), or had closed and cleared it (its workers failed on an assertion)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.benchmark import synthetic_data
import bluezone.matching.keystream as keystream
import bluezone.matching.sharedbatches as sharedbatches
from bluezone.matching.keystream import KeyStream
from bluezone.matching.matcher import HeardIndex, keys_heard


def heard_of(sightings: np.ndarray) -> HeardIndex:
    rpis = np.ascontiguousarray(sightings["rpi"]).view(np.uint8).reshape(-1, 16)
    return HeardIndex(rpis, np.unique(np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS))


@pytest.mark.parametrize("other_still_open", [True, False])
def test_a_stream_made_before_this_ones_first_batch_changes_nothing(other_still_open: bool) -> None:
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    other_keys, other_sightings, _ = synthetic_data(700, 20_000, seed=12, planted=30)
    heard, other = heard_of(sightings), heard_of(other_sightings)
    rows, rpis = keys_heard(keys, heard)
    assert len(rows) >= 30 and len(keys_heard(keys, other)[0]) < len(rows)

    with KeyStream(heard, jobs=2) as stream:
        later = KeyStream(other, jobs=2)  # another check's stream, made before this one forks
        if not other_still_open:
            later.close()
        try:
            stream.add(keys)
            found = stream.finish()
        finally:
            later.close()
    assert np.array_equal(found.rows, rows)
    assert np.array_equal(found.rpis, rpis)
    assert found.count == len(keys)


def test_a_ctrl_c_reaching_the_workers_leaves_them_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C signals every process of the terminal's group: a worker waiting for its next batch
    died with a traceback of its own on the user's terminal (after the parent's one line), and the
    pool was broken.  The parent alone handles it (``close`` stops the workers)."""
    monkeypatch.setattr(keystream, "BATCH", 256)
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    heard = heard_of(sightings)
    rows, rpis = keys_heard(keys, heard)
    with KeyStream(heard, jobs=2) as stream:
        stream.add(keys[:350])
        assert stream.workers is not None
        while not stream.found:  # the workers are up, and (once this batch is back) idle
            stream._collect()
        for pid in stream.workers.pids:
            os.kill(pid, signal.SIGINT)
        stream.add(keys[350:])
        found = stream.finish()
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis)


def test_a_ctrl_c_before_a_worker_has_started_is_left_to_the_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker ignores SIGINT from its first step on; one arriving between the fork and that (as
    above, when the second worker was slower to start than the first batch; a Ctrl-C just as a check
    starts) killed it and broke the pool: the workers are now forked with SIGINT held."""
    monkeypatch.setattr(keystream, "BATCH", 256)
    leave = sharedbatches.leave_ctrl_c_to_parent

    def leave_after_a_ctrl_c() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # arrives before this worker could ignore it
        leave()

    monkeypatch.setattr(sharedbatches, "leave_ctrl_c_to_parent", leave_after_a_ctrl_c)
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    heard = heard_of(sightings)
    rows, rpis = keys_heard(keys, heard)
    with KeyStream(heard, jobs=2) as stream:
        stream.add(keys)
        found = stream.finish()
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis)


def test_no_more_processes_than_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI caps --jobs at the cores, but a program calling check_key_file (or KeyStream) with
    jobs=300 forked 299 workers, which derive no faster than the cores and each map the index."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # two cores
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    heard = heard_of(sightings)
    rows, rpis = keys_heard(keys, heard)
    with KeyStream(heard, jobs=6) as stream:
        assert stream.workers is not None and len(stream.workers.pids) == 1  # and this process: 2 jobs
        stream.add(keys)
        found = stream.finish()
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis)
