"""The key-server client's tables are part of the store's numbered migrations (schema 7).

They were made on first use (``CREATE TABLE IF NOT EXISTS`` on each open, outside the migrations), so
a change to one of them had no migration to go in, and a store's schema version did not say whether
it had them.  A schema-6 store that made them already keeps them and their rows; one that never
talked to a key server gets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluezone.proximity.store import schema as store_module
from bluezone.proximity.store import SightingStore

NOW = 1_764_900_000.0  # 2025-12-05
SERVER = "https://keys.example"
#: What stores made on first use before schema 7 (the statements as they were).
FIRST_USE = [
    "CREATE TABLE IF NOT EXISTS keyserver_pins (server TEXT PRIMARY KEY, public_key TEXT NOT NULL,"
    " key_id TEXT, key_version TEXT, pinned_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keyserver_batches (server TEXT NOT NULL, name TEXT NOT NULL,"
    " keys INTEGER NOT NULL, processed_at REAL NOT NULL, PRIMARY KEY (server, name))",
    "CREATE TABLE IF NOT EXISTS keyserver_exposures (server TEXT NOT NULL, key_hash BLOB NOT NULL,"
    " day TEXT NOT NULL, start_time REAL NOT NULL, end_time REAL NOT NULL, exposure TEXT NOT NULL,"
    " reported_at REAL NOT NULL, PRIMARY KEY (server, key_hash, day, start_time))",
    "CREATE TABLE IF NOT EXISTS keyserver_withdrawn (server TEXT NOT NULL, key_hash BLOB NOT NULL,"
    " day TEXT NOT NULL, PRIMARY KEY (server, key_hash, day)) WITHOUT ROWID",
]


def _schema_6_store(path: Path, monkeypatch: pytest.MonkeyPatch, first_use: bool, exposures: bool = True) -> None:
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:6])
        m.setattr(store_module, "SCHEMA_VERSION", 6)
        with SightingStore.open(path, purge_now=NOW) as store:
            assert store.schema_version == 6
            if first_use:  # a node that had checked a key server: some of the tables, with rows
                with store._conn as conn:
                    for sql in FIRST_USE:
                        if exposures or "keyserver_exposures" not in sql:
                            conn.execute(sql)
                    conn.execute("INSERT INTO keyserver_pins VALUES (?, 'PEM', 'id', 'v1', ?)", (SERVER, NOW))
                    conn.execute("INSERT INTO keyserver_batches VALUES (?, 'b-1.zip', 7, ?)", (SERVER, NOW))
                    conn.execute("INSERT INTO keyserver_withdrawn VALUES (?, ?, '2025-12-04')", (SERVER, b"k" * 16))


@pytest.mark.parametrize("first_use", [True, False], ids=["tables made on first use", "never checked a server"])
def test_a_schema_6_store_gets_the_keyserver_tables_by_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_use: bool
) -> None:
    path = tmp_path / "node.db"
    _schema_6_store(path, monkeypatch, first_use)
    with SightingStore.open(path, create=False, purge_now=NOW) as store:
        assert store.schema_version == store_module.SCHEMA_VERSION >= 7  # to the latest, past 7
        tables = set(store.db.table_names())
        assert set(store_module._KEYSERVER_TABLES) <= tables
        if first_use:  # kept, rows and all
            assert store.keyserver_pin(SERVER) == ("PEM", "id", "v1")
            assert store.keyserver_batches(SERVER) == {"b-1.zip"}
            assert store.withdrawn_exposures(SERVER) == {(b"k" * 16, "2025-12-04")}
        store.save_rejected_batches(SERVER, "PEM", {"junk.zip": "does not verify"}, NOW)
        assert store.rejected_batches(SERVER, "PEM", NOW) == {"junk.zip": "does not verify"}
    assert path.stat().st_mode & 0o777 == 0o600


def test_batches_processed_by_a_version_that_kept_no_exposure_are_forgotten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose checks kept no exposure (the versions before e055fb0): the batches are matched again
    (tests/server/test_check_again.py: the F1 told then is told again); the pin and the rest stay."""
    path = tmp_path / "node.db"
    _schema_6_store(path, monkeypatch, first_use=True, exposures=False)
    with SightingStore.open(path, create=False, purge_now=NOW) as store:
        assert store.keyserver_batches(SERVER) == set()
        assert store.keyserver_pin(SERVER) == ("PEM", "id", "v1")
        assert store.withdrawn_exposures(SERVER) == {(b"k" * 16, "2025-12-04")}


def test_a_store_at_schema_7_without_a_keyserver_table_is_refused_unchanged(tmp_path: Path) -> None:
    """The tables are required columns now: a store claiming schema 7 without them is no bluezone store."""
    path = tmp_path / "node.db"
    with SightingStore.open(path, purge_now=NOW) as store:
        with store._conn as conn:
            conn.execute("DROP TABLE keyserver_rejected")
    before = path.read_bytes()
    with pytest.raises(store_module.NotAStoreError, match="no keyserver_rejected table"):
        SightingStore.open(path, create=False)
    assert path.read_bytes() == before
