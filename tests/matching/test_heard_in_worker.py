"""A large key file checked with more than one job: the workers are forked first and read the store
themselves while this process reads the file, the first one handing what it read back
(``heardinworker.HeardInWorker``).  The report is the one of the keys checked as an array, with two
jobs or three, for revised, revoked and re-instated keys, for a file protobuf parses after all; bad
input gives the same errors as before, and a worker that dies during the overlap is one error, not a
hang, with no thread, open store or worker left behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from matching_helpers import SCORERS, as_array, day_file

import bluezone.keyformat.exportstream as exportstream
import bluezone.matching.check as check_module
import bluezone.matching.heardinworker as heardinworker
import bluezone.matching.keystream as keystream
from bluezone.cli import cli
from bluezone.errors import KeyFileError, MatchWorkerError, NotAStoreError
from bluezone.keyformat.export import build_export_bin
from bluezone.keyformat.keyfile import load_keys
from bluezone.matching.check import check_key_file, check_keys

PARENT = os.getpid()


class _Received(list):
    """How many times this process received the store's RPIs from a worker."""


@pytest.fixture
def workers_read(monkeypatch: pytest.MonkeyPatch) -> _Received:
    """Every file counts as large (its workers read the store), in small batches; the hand-over counted."""
    monkeypatch.setattr(check_module, "WORKERS_READ_FROM_BYTES", 0)
    monkeypatch.setattr(keystream, "BATCH", 256)
    monkeypatch.setattr(keystream, "EARLY_BATCH", 256)
    monkeypatch.setattr(exportstream, "PIECE", 4096)
    received = _Received()
    plain = heardinworker.HeardInWorker.receive

    def receive(self: heardinworker.HeardInWorker) -> heardinworker.Heard:
        received.append(1)
        return plain(self)

    monkeypatch.setattr(heardinworker.HeardInWorker, "receive", receive)
    return received


def _open_files(path: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve())) if fds.is_dir() else 0


def _no_worker_left() -> bool:
    """Every worker this process forked has ended (each is told to stop; none is waited for by a check)."""
    for child in multiprocessing.active_children():
        child.join(30)
    return not multiprocessing.active_children()


@pytest.mark.parametrize("scorer", sorted(SCORERS))
@pytest.mark.parametrize("per_rpi", [30, 1])
@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize("buffer_keys", [500, None])
def test_the_workers_reading_the_store_report_what_the_array_reports(
    tmp_path: Path, workers_read: _Received, scorer: str, per_rpi: int, jobs: int, buffer_keys: int | None
) -> None:
    path, db, file_keys, _ = day_file(tmp_path, per_rpi)
    expected = as_array(path, db, scorer)
    checked = check_key_file(path, db, scorer=SCORERS[scorer], jobs=jobs, buffer_keys=buffer_keys)
    assert workers_read == [1]  # read by the first worker, handed over once
    assert checked.as_dict() == expected.as_dict()
    assert checked.exposures == expected.exposures
    assert checked.key_count == len(file_keys) + 2


@pytest.mark.usefixtures("workers_read")
def test_a_file_protobuf_parses_after_all_forks_workers_that_inherit_what_was_read(tmp_path: Path) -> None:
    """Read again: the first workers read the store, the new ones (forked once it is read here) do not."""
    path, db, file_keys, revised = day_file(tmp_path)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(build_export_bin(file_keys, region="VN", revised_keys=revised) + b"\xc2\x0c\x01x")  # field 200
    expected = check_keys(load_keys(odd), db, scorer=SCORERS["bluezone"])
    again = check_key_file(odd, db, scorer=SCORERS["bluezone"], buffer_keys=0, jobs=2)
    assert again.as_dict() == expected.as_dict() and again.key_count == len(file_keys) + 2


def test_bad_input_gives_the_same_errors_and_leaves_nothing_behind(tmp_path: Path, workers_read: _Received) -> None:
    path, db, file_keys, _ = day_file(tmp_path)
    threads = threading.active_count()
    broken = tmp_path / "broken.bin"
    broken.write_bytes(build_export_bin(file_keys, region="VN")[:-5])
    for store in (tmp_path / "missing.db", db):  # a bad file's error comes first, the store read meanwhile
        with pytest.raises(KeyFileError, match="broken.bin"):
            check_key_file(broken, store, scorer=SCORERS["bluezone"], jobs=2)
    # a good file, no store: the worker's error (it opened the store first), said here
    with pytest.raises(NotAStoreError, match="missing.db"):
        check_key_file(path, tmp_path / "missing.db", scorer=SCORERS["bluezone"], jobs=2)
    assert len(workers_read) == 3
    assert threading.active_count() == threads and _open_files(db) == 0
    assert _no_worker_left()


def test_a_worker_dying_while_it_reads_the_store_is_one_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers_read: _Received
) -> None:
    path, db, _, _ = day_file(tmp_path)
    threads = threading.active_count()

    def killed_in_the_worker(db_path: object, now: object) -> heardinworker.Heard:
        assert os.getpid() != PARENT
        os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, mid-read
        raise AssertionError("not reached")

    monkeypatch.setattr(check_module, "_open_and_read_in_worker", killed_in_the_worker)
    with pytest.raises(MatchWorkerError):
        check_key_file(path, db, scorer=SCORERS["bluezone"], jobs=2)
    assert threading.active_count() == threads and _open_files(db) == 0
    assert _no_worker_left()


def test_bluezone_check_says_a_missing_store_in_one_line(tmp_path: Path, workers_read: _Received) -> None:
    path, db, _, _ = day_file(tmp_path)
    runner = CliRunner()
    good = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json", "--jobs", "2"])
    one = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json", "--jobs", "1"])
    assert good.exit_code == one.exit_code == 0, good.output
    assert json.loads(good.output) == json.loads(one.output)
    missing = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(tmp_path / "missing.db"), "--jobs", "2"])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1 and "missing.db" in missing.output
    assert len(workers_read) == 2
