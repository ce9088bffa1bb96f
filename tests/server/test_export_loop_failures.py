"""`server run`'s scheduled export when its database is away or its disk full: one WARNING line each time, and
the next export runs as usual.  It logged a traceback at every export (tidy28: a PostgreSQL connection lost inside
the export's transaction is a ServerStorageError since 2ca6706; ``server export`` said it in one line already)."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

import pytest
from server_helpers import KEY, NOW, ScriptedClock, storage_with_five_past_days
from starlette.testclient import TestClient

import bluezone.server.app as app_module
from bluezone.errors import ServerStorageError
from bluezone.server.app import create_app
from bluezone.server.exports import INDEX_FILE
from bluezone.server.signing import keygen


def test_a_lost_database_or_a_full_disk_is_one_warning_line_and_the_next_export_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[Exception] = [
        ServerStorageError("lost the connection to PostgreSQL during a transaction: terminating connection"),
        OSError(errno.ENOSPC, "No space left on device"),
    ]
    real = app_module.export_unless_clock_jumped

    def failing_first(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop(0)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "export_unless_clock_jumped", failing_first)
    storage = storage_with_five_past_days(tmp_path, seed=3)
    out = tmp_path / "out"
    clock = ScriptedClock([NOW + 3600])
    app = create_app(storage, code_key=KEY, export_dir=out, signer=keygen(tmp_path / "k"), clock=clock, export_every=0.01)
    try:
        with caplog.at_level(logging.INFO, logger="bluezone.server.app"), TestClient(app):
            deadline = time.monotonic() + 60
            while not (out / INDEX_FILE).exists() and time.monotonic() < deadline:  # the third export writes it
                time.sleep(0.01)
    finally:
        storage.close()
    assert len((out / INDEX_FILE).read_text().split()) == 5
    failed = [r for r in caplog.records if "scheduled export failed" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in failed)
    assert "lost the connection to PostgreSQL" in failed[0].getMessage()
    assert "cannot write the export files: No space left on device" in failed[1].getMessage()
