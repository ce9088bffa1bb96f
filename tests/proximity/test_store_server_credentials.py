"""Schema 12: a store an earlier bluezone wrote while a ``--server`` URL's credentials were part of the
server's name (``https://user:password@host``, before 617bc8f) kept the password in its rows, and its
state there (pin, batches done, revision token) was lost to the version naming servers without them:
it pinned anew on first use, an F0 could not revise its upload, ``status`` printed the password.  The
migration renames every server to the name the client uses now, keeps the state, and leaves no copy of
a password in the file.  The store is ``tests/data/stores/schema11_server_credentials.sql``."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.client.keyserver import base_url_of
from bluezone.client.pinning import PinnedKey
from bluezone.client.state import ServerState
from bluezone.clock import VirtualClock
from bluezone.proximity.store import SCHEMA_VERSION, SightingStore
from bluezone.proximity.store import schema as store_schema

NOW = 1_763_640_000.0  # 2025-11-20 12:00 UTC, the fixture's "now"
KEYS = "http://keys.test"
MINISTRY = "https://keys.example.org/ministry"
#: Every password and user name in the fixture, the purged row's included.
SECRETS = (b"s3cret-Pa55", b"0ld-Pa55", b"hunter2", b"purged-Pa55", b"alice:", b"bob:", b"carol:")
BATCHES = {
    "1763380800-1763078400-0c1d2e-0001.zip",  # done under the earlier password
    "1763640000-1763164800-6a0d0d-0001.zip",
    "1763640000-1763251200-592425-0001.zip",
    "1763640000-1763337600-ee67b4-0001.zip",
}
#: What the version after 617bc8f wrote under the clean name once the state was lost: a pin of another key
#: taken on first use, a batch done again and a new one, the token of a second upload.
AFTER_THE_UPGRADE = [
    "INSERT INTO keyserver_pins VALUES('http://keys.test', 'ANOTHER-KEY', 'bluezone', 'v2', 1763553600.0)",
    "INSERT INTO keyserver_batches VALUES('http://keys.test', '1763640000-1763337600-ee67b4-0001.zip', 104, 1763553600.0)",
    "INSERT INTO keyserver_batches VALUES('http://keys.test', '1763553600-1763424000-16991a-0001.zip', 113, 1763553600.0)",
    "INSERT INTO keyserver_revision_tokens VALUES('http://keys.test', 'second-upload-token', 1763553600.0)",
    "INSERT INTO keyserver_given_keys VALUES('https://keys.example.org/ministry', 'EARLIER-GIVEN', 'x', 'v1', 1763300000.0)",
]


def _rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _old_pin(path: Path) -> str:
    return str(_rows(path, "SELECT public_key FROM keyserver_pins WHERE server LIKE 'http://alice:%'")[0][0])


def _files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def test_an_upgrade_keeps_every_servers_state_under_its_name_without_credentials(schema11_credentials_store: Path) -> None:
    path = schema11_credentials_store
    pin = _old_pin(path)
    with SightingStore.open(path, create=False, purge_now=NOW) as store:
        assert store.schema_version == SCHEMA_VERSION  # (12: the rename)
        state = ServerState(store)
        assert state.pinned(KEYS) == PinnedKey(pin, "bluezone", "v1")
        assert state.processed(KEYS) == BATCHES
        assert state.revision_token(KEYS, NOW) == "95_GdaFLVhUXuTWQBseE2Ck6uMaLEKml-RO4XxRYTKA"
        assert state.revision_token(MINISTRY, NOW) == "ministry-token"
        given_key = state.given_unconfirmed(MINISTRY)
        assert given_key is not None and given_key.key_id == "ministry"
        assert state.rejecting_keys(KEYS, NOW) == {pin}
        assert [day for _, day, _ in store.reported_exposures(KEYS, NOW)] == ["2025-11-18"]
        assert [day for _, day, _ in store.reported_exposures(KEYS + "#venues", NOW)] == ["2025-11-17"]  # VENUE_MEMORY
        assert store.withdrawn_exposures(MINISTRY) == {(bytes(range(1, 17)) * 2, "2025-11-17")}
        assert store.checkin_sent_until(MINISTRY) == {1: 1763370000.0}
        assert store.checkin_uploads_unrecorded(MINISTRY) == {2: 1763294400.0}
    for table in store_schema._SERVER_ROWS:
        assert _rows(path, f"SELECT server FROM {table} WHERE server LIKE '%@%'") == [], table


def test_every_table_naming_a_server_is_renamed() -> None:
    """A table with a ``server`` column that the migration does not know would keep its passwords."""
    with SightingStore.open(":memory:") as store:
        tables = [name for name in store.db.table_names() if "server" in store.db.table(name).columns_dict]
    assert sorted(tables) == sorted(store_schema._SERVER_ROWS)


def test_no_password_is_left_anywhere_in_the_file(schema11_credentials_store: Path) -> None:
    """Not in a row, nor in the free space a deleted row left (the fixture's purged token), nor in the WAL."""
    path = schema11_credentials_store
    before = b"".join(p.read_bytes() for p in _files(path))
    assert all(secret in before for secret in SECRETS)  # the purged row's bytes too: no vacuous pass
    SightingStore.open(path, create=False, purge_now=NOW).close()
    for file in _files(path):
        data = file.read_bytes()
        assert [s for s in SECRETS if s in data] == [], file.name


def test_of_two_rows_of_one_server_the_rule_keeps_one(
    schema11_credentials_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows the version after 617bc8f wrote under the clean name meet the earlier ones: the pin trusted
    first stays (a different later one came on first use, after the upgrade lost the pin: the next check
    says the server's key changed, never silently), and it is warned of; batches are joined; the newer
    revision token (the last upload) and the newer key given with --server-key stay."""
    path = schema11_credentials_store
    pin = _old_pin(path)
    with sqlite3.connect(path) as conn:
        for sql in AFTER_THE_UPGRADE:
            conn.execute(sql)
    conn.close()
    with caplog.at_level(logging.WARNING), SightingStore.open(path, create=False, purge_now=NOW) as store:
        state = ServerState(store)
        assert state.pinned(KEYS) == PinnedKey(pin, "bluezone", "v1")
        assert state.processed(KEYS) == BATCHES | {"1763553600-1763424000-16991a-0001.zip"}
        assert state.revision_token(KEYS, NOW) == "second-upload-token"
        assert state.given_unconfirmed(MINISTRY) == PinnedKey(
            _rows(path, "SELECT public_key FROM keyserver_given_keys WHERE key_id = 'ministry'")[0][0], "ministry", "v2"
        )
    warned = [r.getMessage() for r in caplog.records if "two signing keys" in r.getMessage()]
    assert len(warned) == 1 and f"--server {KEYS} --server-key FILE --repin" in warned[0]
    assert not any(s.decode() in r.getMessage() for r in caplog.records for s in SECRETS)


def test_status_shows_an_unconfirmed_keys_server_without_its_password(schema11_credentials_store: Path) -> None:
    done = CliRunner().invoke(cli, ["status", "--db", str(schema11_credentials_store), "--json"],
                              obj={"clock": VirtualClock(NOW)})
    assert done.exit_code == 0, done.output
    assert [k["server"] for k in json.loads(done.stdout)["server_keys_unconfirmed"]] == [MINISTRY]
    assert "hunter2" not in done.output


CRASH = """
import os, sys
from bluezone.proximity.store import SightingStore, schema
rename, calls = schema._rename_server, []
def crash(*args):
    calls.append(args)
    if len(calls) == 5:
        os._exit(3)  # the process dies: no rollback, no close
    rename(*args)
schema._rename_server = crash
SightingStore.open(sys.argv[1], create=False, purge_now=float(sys.argv[2]))
"""


def test_a_crash_mid_migration_leaves_the_store_as_it_was(schema11_credentials_store: Path) -> None:
    path = schema11_credentials_store
    dump = "\n".join(sqlite3.connect(path).iterdump())
    done = subprocess.run([sys.executable, "-c", CRASH, str(path), str(NOW)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 11
    assert "\n".join(conn.iterdump()) == dump
    conn.close()
    with SightingStore.open(path, create=False, purge_now=NOW) as store:  # and it migrates when opened again
        assert store.schema_version == SCHEMA_VERSION and ServerState(store).revision_token(MINISTRY, NOW) == "ministry-token"


def _earlier_base_url_of(url: str) -> str:
    """The server's name as bluezone kept it before 617bc8f (6529fc7's ``base_url_of``)."""
    base = url.rstrip("/")
    for tail in ("/v1/exports/index.txt", "/v1/exports", "/v1"):
        if base.endswith(tail):
            return base.removesuffix(tail)
    return base


userinfo = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="/?#"), min_size=1, max_size=12)


@given(
    scheme=st.sampled_from(["http://", "https://"]), user=userinfo, password=userinfo,
    host=st.sampled_from(["keys.test", "keys.test:8443", "[::1]:8080", "127.0.0.1"]),
    path=st.sampled_from(["", "/", "/v1", "/v1/", "/ministry", "/ministry/v1/exports/index.txt", "/a/v1/v1"]),
)
def test_the_migration_names_a_server_as_the_client_does(scheme: str, user: str, password: str, host: str, path: str) -> None:
    """Its frozen rule meets the client's ``base_url_of``: the state is found where a check looks for it."""
    url = f"{scheme}{user}:{password}@{host}{path}"
    assert store_schema._without_credentials(_earlier_base_url_of(url)) == base_url_of(url)


def test_the_vacuum_keeps_the_rowids_the_store_orders_by(schema11_credentials_store: Path) -> None:
    """The newest daily key of a day is the one with the highest rowid (``key_covering``), and SQLite documents
    that VACUUM may renumber the rows of a table without an INTEGER PRIMARY KEY: it must not here."""
    path = schema11_credentials_store
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO daily_keys VALUES (?, 2939328, 144, 1763640000.0)", [(bytes([i]) * 16,) for i in range(5)])
        conn.execute("DELETE FROM daily_keys WHERE key = ?", (bytes([1]) * 16,))  # a hole in the rowids
    conn.close()
    before = _rows(path, "SELECT rowid, key FROM daily_keys")
    with SightingStore.open(path, create=False, purge_now=NOW) as store:
        assert _rows(path, "SELECT rowid, key FROM daily_keys") == before
        newest = store.key_for_day(2939328)
        assert newest is not None and newest.key == bytes([4]) * 16
