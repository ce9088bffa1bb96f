"""Schema 12 removes passwords an earlier bluezone kept in server names, then vacuums the file so no
deleted copy stays in its free pages.  The vacuum runs after the migration has committed: a process
killed between the two (kill -9, a power cut, systemd's stop timeout during a long vacuum) left the
passwords in the file for ever, as nothing ever vacuumed it again.  The vacuum is now owed in the
migration's own transaction and paid at the next open."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bluezone.proximity.store import SightingStore
from bluezone.proximity.store import schema as store_schema

NOW = 1_763_640_000.0  # the fixture's "now"
#: The fixture's passwords and user names, those of the row an earlier purge deleted among them.
SECRETS = (b"s3cret-Pa55", b"0ld-Pa55", b"hunter2", b"purged-Pa55", b"alice:", b"bob:", b"carol:")

KILLED_BEFORE_THE_VACUUM = """
import os, sys
from bluezone.proximity.store import SightingStore, schema
def killed(self):
    os._exit(3)  # dies as kill -9 would: the migration committed, no vacuum, no close
schema.Schema._vacuum = killed
SightingStore.open(sys.argv[1], create=False, purge_now=float(sys.argv[2]))
"""


def _secrets_in(path: Path) -> list[bytes]:
    data = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    return [s for s in SECRETS if s in data]


def test_a_process_killed_before_the_vacuum_leaves_it_owed_and_the_next_open_pays_it(
    schema11_credentials_store: Path,
) -> None:
    path = schema11_credentials_store
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_THE_VACUUM, str(path), str(NOW)], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 3, killed.stderr
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store_schema.SCHEMA_VERSION  # the migration stands
    conn.close()
    assert _secrets_in(path)  # not vacuumed yet: no vacuous pass
    SightingStore.open(path, create=False, purge_now=NOW).close()
    assert _secrets_in(path) == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM daemon_state WHERE name = ?", (store_schema.VACUUM_OWED,)).fetchone() == (0,)
    conn.close()


def test_a_store_that_owes_no_vacuum_is_not_vacuumed_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check on every open is one lookup; a store whose migrations deleted nothing secret is left as it is."""
    calls: list[object] = []
    monkeypatch.setattr(store_schema.Schema, "_vacuum", lambda self: calls.append(self))
    path = tmp_path / "node.db"
    SightingStore.open(path).close()
    SightingStore.open(path, create=False).close()
    assert calls == []
