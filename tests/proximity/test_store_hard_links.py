"""A store with two names (hard links) is refused before anything writes it.  SQLite keeps a database's write-ahead
log and its index beside the name it was opened by: two daemons started on two names of one store (each with its own
lock, ``<name>.lock``) wrote through two WALs, and after 20 s of the emulated radio its integrity check found pages
referenced twice and rows missing from the index by RPI.  A command's open writes too (its purge)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import StoreError
from bluezone.proximity.store import SightingStore

from .conftest import NOON, random_sightings


def test_a_store_with_two_names_is_refused_unchanged(tmp_path: Path) -> None:
    store = tmp_path / "bluezone.db"
    with SightingStore.open(store, purge_now=NOON) as s:
        s.add_sightings(random_sightings(50, NOON - 3600, 1800))
    other = tmp_path / "backup.db"
    os.link(store, other)
    before = store.read_bytes()
    for name in (store, other):
        with pytest.raises(StoreError, match="has 2 names .hard links, as ln or cp -al make.: SQLite keeps its write-ahead"):
            SightingStore.open(name, purge_now=NOON)
        result = CliRunner().invoke(cli, ["status", "--db", str(name)], obj={})
        assert result.exit_code == 2 and result.output.count("\n") == 1 and "keep one name" in result.output, result.output
    assert store.read_bytes() == before and not (tmp_path / "backup.db-wal").exists()
    other.unlink()  # one name again: opened as before
    with SightingStore.open(store, purge_now=NOON) as s:
        assert len(s.sightings()) == 50
