"""A database a server benchmark once used as its scratch, then used by a real key server, is the
server's from then on: a later benchmark (which re-exports every key and forgets the batches) refuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from server_helpers import NOW

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import NotScratchDatabaseError
from bluezone.keyformat.keys import empty_keys
from bluezone.server.storage import open_storage


def _run(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), obj={"clock": VirtualClock(NOW)})
    assert result.exit_code == 0, result.output + (result.stderr or "")


@pytest.mark.parametrize("command", ["issue-code", "export"])
def test_a_benchmarked_database_a_server_then_used_is_refused_by_the_next_benchmark(tmp_path: Path, command: str) -> None:
    """Benchmark a new production database before launch, launch on it, benchmark again weeks later:
    the mark the first benchmark left let the second add random keys to the server's real ones,
    re-export every real key and forget the server's batches."""
    db, key_dir = tmp_path / "server.db", tmp_path / "keys"
    scratch = open_storage(db)
    scratch.claim_for_benchmark()  # what `server benchmark --server-db` did, on an empty database
    if command == "export":  # uploads the server took (`server run` opens it as `server export` does)
        keys = empty_keys(3)
        keys["key"] = np.frombuffer(bytes(range(48)), "V16")
        keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
        scratch.insert_keys_unchecked(keys, NOW)
    scratch.close()
    _run("server", "keygen", "--out", str(key_dir))
    if command == "issue-code":
        _run("server", "issue-code", "--server-db", str(db), "--signing-key-dir", str(key_dir))
    else:
        _run("server", "export", "--server-db", str(db), "--signing-key-dir", str(key_dir), "--export-dir", str(tmp_path / "out"))
    storage = open_storage(db, create=False)
    try:
        with pytest.raises(NotScratchDatabaseError):
            storage.claim_for_benchmark()
    finally:
        storage.close()


def test_a_benchmark_may_reuse_its_own_scratch(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "scratch.db")
    try:
        storage.claim_for_benchmark()
        storage.claim_for_benchmark()  # nothing else used it: still its scratch
    finally:
        storage.close()
