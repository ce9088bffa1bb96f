"""What a two-job check does before its workers can derive (issue 17, twenty-fifth session): the steps one
thread does while the second core idles.  The workers are forked before protobuf's runtime and cryptography's
AES are imported (neither is needed to stream a file's keys: ~12-25 ms and ~7-10 ms of the serial start), and
they are handed the file's first keys as soon as a short first piece of it is parsed, not once a whole batch is
(the imports: test_check_imports.py)."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matching_helpers import DAY, day_file

import bluezone.matching.check as check_module
import bluezone.matching.keystream as keystream
from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat import exportstream
from bluezone.keyformat.export import build_export_bin
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.keystream import BufferedStream, KeyStream
from bluezone.matching.matcher import HeardIndex, keys_heard


def heard_of(sightings: np.ndarray) -> HeardIndex:
    rpis = np.ascontiguousarray(sightings["rpi"]).view(np.uint8).reshape(-1, 16)
    return HeardIndex(rpis, np.unique(np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS))


def test_the_first_keys_go_to_the_workers_at_once_as_a_short_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the store is read, the keys come so far (``early``) are the workers' first batch, short of a
    whole one: they waited for a whole batch (16,384 keys, ~8 ms of parsing) while the workers idled."""
    keys, sightings, _ = synthetic_data(300, 5_000, seed=7, planted=10)
    heard = heard_of(sightings)
    monkeypatch.setattr(keystream, "available_cores", lambda: 2)  # a worker even on one core
    with KeyStream(heard, jobs=2, batch=128) as stream:
        sink = BufferedStream(lambda: stream, limit=10_000, ready=lambda: True, early=20)
        sink.add(keys[:30])
        assert stream.workers is not None and stream.workers.posted == 1 and stream.count == 30
        for lo in range(30, len(keys), 50):
            sink.add(keys[lo : lo + 50])
        found = stream.finish()
    rows, rpis = keys_heard(keys, heard)
    assert np.array_equal(found.rows, rows) and np.array_equal(found.rpis, rpis) and len(rows)
    assert np.array_equal(sink.keys(), keys)


class _Sink:
    """Notes how many bytes of the stream had been read when the first keys came."""

    def __init__(self, stream: io.BytesIO) -> None:
        self.stream = stream
        self.read_at_first: int | None = None
        self.count = 0

    def add(self, keys: np.ndarray) -> None:
        if self.read_at_first is None:
            self.read_at_first = self.stream.tell()
        self.count += len(keys)

    def restart(self) -> None:
        raise AssertionError("left to protobuf")


def test_a_streamed_export_gives_its_first_keys_after_a_short_first_piece() -> None:
    keys, _, _ = synthetic_data(60_000, 10, seed=2, planted=0)
    data = build_export_bin(keys, region="VN")
    assert len(data) > 2 * exportstream.PIECE
    stream = io.BytesIO(data)
    sink = _Sink(stream)
    read = exportstream.stream_export_bin(stream, len(data), sink)
    assert read is not None and read.problem is None and sink.count == len(keys)
    assert sink.read_at_first is not None
    assert sink.read_at_first <= len(exportstream.HEADER) + exportstream.PIECE // 8


#: A week after the first day of ``day_file``'s scene: the check's purge keeps all of it.
DAYS_LATER = VirtualClock((DAY + 7 * 144) * INTERVAL_SECONDS)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_key_file_is_checked_with_the_cycle_collector_paused_and_given_back(
    tmp_path: Path, jobs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's cycle collector passed ~40 times over the objects the check's imports make before the
    workers could start (~3-10 ms of the serial start, docs/benchmarks.md, twenty-seventh session); a check
    makes no cycle of its own as it works, so none runs while it does, and it is on again afterwards."""
    path, db, _, _ = day_file(tmp_path)
    passes: list[int] = []
    checking = False

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and checking:
            passes.append(info["generation"])

    def check_keys(*args: object, **kwargs: object) -> object:
        nonlocal checking
        checking = True
        try:
            return plain_check_keys(*args, **kwargs)
        finally:
            checking = False

    plain_check_keys = check_module.check_keys
    monkeypatch.setattr(check_module, "check_keys", check_keys)
    gc.callbacks.append(noted)
    try:
        out = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json", "--jobs", jobs], obj={"clock": DAYS_LATER})
    finally:
        gc.callbacks.remove(noted)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["exposures"] and passes == []
    assert gc.isenabled()


def test_a_collector_paused_before_the_check_stays_paused(tmp_path: Path) -> None:
    path, db, _, _ = day_file(tmp_path)
    gc.disable()
    try:
        out = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json"], obj={"clock": DAYS_LATER})
        assert out.exit_code == 0, out.output
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_a_caller_froze_stay_frozen(tmp_path: Path) -> None:
    """A program that froze its own objects (``gc.freeze`` before forking, say) and runs a check in-process:
    the check's handing its own objects to the oldest generation (``freeze``, ``unfreeze``) released them too."""
    path, db, _, _ = day_file(tmp_path)
    kept = [[] for _ in range(10)]  # young containers of the caller's
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        out = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json"], obj={"clock": DAYS_LATER})
        assert out.exit_code == 0, out.output
        # still frozen (``unfreeze`` leaves none; a few of them freed meanwhile leave the count as they die)
        assert gc.get_freeze_count() > frozen * 0.9 and kept
    finally:
        gc.unfreeze()
