"""``bluezone server export`` on PostgreSQL losing its connection inside the export's transaction is one line, not
psycopg's OperationalError and a traceback.  The export takes the keys out of their queues on a connection of its
own (``export_transaction``), which 21bf06b's treatment of the storage's connection did not reach.  Here that
connection's backend is ended as the export records its files: nothing is taken or published, and the next export
exports every key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from server_helpers import NOW

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import empty_keys
from bluezone.server.exports import INDEX_FILE
from bluezone.server.signing import keygen
from bluezone.server.storage import open_storage
from bluezone.server.storage.postgres import PostgresStorage

HOUR = 3600.0


def _export(dsn: str, tmp_path: Path) -> Result:
    return CliRunner().invoke(
        cli,
        ["server", "export", "--server-db", dsn, "--signing-key-dir", str(tmp_path / "k"), "--export-dir",
         str(tmp_path / "out")],
        obj={"clock": VirtualClock(NOW + HOUR)},
    )


def test_a_connection_lost_mid_export_is_one_line_and_nothing_is_taken(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage(postgres_dsn)
    try:
        keys = empty_keys(5)
        keys["key"] = np.frombuffer(np.random.default_rng(3).bytes(16 * 5), "V16")
        keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD * np.arange(1, 6)
        keys["rolling_period"] = ROLLING_PERIOD
        storage.insert_keys_unchecked(keys, NOW)  # type: ignore[attr-defined]
    finally:
        storage.close()
    keygen(tmp_path / "k")
    ended: list[int] = []
    record = PostgresStorage._record_batches

    def record_after_ending_the_backend(self: PostgresStorage, cur: Any, batches: Any) -> None:
        if not ended:
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:  # waits until it is gone (5 s at most)
                pid = cur.connection.info.backend_pid
                assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)
            ended.append(pid)
        record(self, cur, batches)

    monkeypatch.setattr(PostgresStorage, "_record_batches", record_after_ending_the_backend)
    lost = _export(postgres_dsn, tmp_path)
    assert ended and lost.exit_code == 1, lost.output
    assert lost.exception is None or isinstance(lost.exception, SystemExit), repr(lost.exception)  # was OperationalError
    [line] = lost.stderr.splitlines()
    assert "lost the connection to PostgreSQL during a transaction" in line, line
    assert not list((tmp_path / "out").glob("*.zip"))  # the staged files dropped: nothing recorded
    monkeypatch.undo()
    again = _export(postgres_dsn, tmp_path)
    assert again.exit_code == 0, again.output
    storage = open_storage(postgres_dsn)
    try:
        assert storage.count_keys() == 5  # (the keys stay, exported: their files are listed)
        assert len((tmp_path / "out" / INDEX_FILE).read_text().split()) == 5
        assert len(list((tmp_path / "out").glob("*.zip"))) == 5
    finally:
        storage.close()
