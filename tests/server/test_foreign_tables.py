"""A PostgreSQL database that already holds another program's tables is not given the key server's.

A `--server-db` naming the health authority's case database (or any shared one) used to get the key
server's 14 tables beside that program's, mixed for good (dropping them would mean telling which are
whose).  A SQLite file of another program was refused already; now PostgreSQL refuses too, unless the
schema the server would write into is empty or already the key server's.  The way to share a database
with other programs is a schema of the server's own (``?options=-csearch_path%3Dkeys``).
"""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import InputError
from bluezone.server.storage import open_storage


def _tables(dsn: str, schema: str = "public") -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema]).fetchall()
    return [name for (name,) in rows]


def test_a_database_with_other_programs_tables_is_refused_and_left_alone(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE patients (id serial PRIMARY KEY, name text)")
        conn.execute("CREATE TABLE meta_data (k text)")
    with pytest.raises(InputError) as refused:
        open_storage(postgres_dsn)
    message = str(refused.value)
    assert "already holds tables of another program (meta_data, patients)" in message
    assert "a database of its own" in message and "search_path" in message
    assert _tables(postgres_dsn) == ["meta_data", "patients"]  # nothing added


def test_a_table_named_meta_that_is_not_ours_does_not_pass_for_ours(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    with pytest.raises(InputError, match=r"another program \(meta\)"):
        open_storage(postgres_dsn)
    assert _tables(postgres_dsn) == ["meta"]


def test_an_empty_database_or_the_servers_own_is_taken(postgres_dsn: str) -> None:
    open_storage(postgres_dsn).close()  # empty: the tables are created
    assert "meta" in _tables(postgres_dsn) and "exposure_keys" in _tables(postgres_dsn)
    open_storage(postgres_dsn).close()  # its own: opened again


def test_a_schema_of_its_own_beside_other_programs_tables(postgres_dsn: str) -> None:
    """The override: the server's tables in a schema of their own, the other program's left where they are."""
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE patients (id serial PRIMARY KEY)")
        conn.execute("CREATE SCHEMA keys")
    own = postgres_dsn + "&options=-csearch_path%3Dkeys"
    open_storage(own).close()
    assert _tables(postgres_dsn) == ["patients"] and "exposure_keys" in _tables(postgres_dsn, "keys")
    open_storage(own).close()


def test_the_command_says_it_in_one_line_exit_2(postgres_dsn: str, tmp_path) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE patients (id serial PRIMARY KEY)")
    assert CliRunner().invoke(cli, ["server", "keygen", "--out", str(tmp_path / "k")], obj={}).exit_code == 0
    result = CliRunner().invoke(cli, ["server", "issue-code", "--server-db", postgres_dsn, "--signing-key-dir",
                                      str(tmp_path / "k"), "--create-db"], obj={})
    assert result.exit_code == 2 and "another program (patients)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _tables(postgres_dsn) == ["patients"]
