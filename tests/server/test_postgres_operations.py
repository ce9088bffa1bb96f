"""What a health authority meets running several key-server processes on one PostgreSQL: they start
(or restart after an upgrade) at the same moment, and PostgreSQL itself restarts under them."""

from __future__ import annotations

import threading

import psycopg
import pytest
from server_helpers import NOW, connections_left, write_first_release_tables

from bluezone.server.codes import issue_code
from bluezone.server.storage import SCHEMA_VERSION, PostgresStorage, open_storage

PROCESSES = 6


def _open_all_at_once(dsn: str) -> list[BaseException]:
    """Open the database from PROCESSES connections released together, as workers starting at once."""
    start, errors, opened = threading.Barrier(PROCESSES), [], []

    def one() -> None:
        start.wait()
        try:
            opened.append(open_storage(dsn))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(PROCESSES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for storage in opened:
        storage.close()
    return errors


def _schema_version(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0])


def test_processes_starting_at_once_on_a_new_database_all_start(postgres_dsn) -> None:
    # each used to create the tables itself: all but one failed on "duplicate key value ... pg_type"
    assert _open_all_at_once(postgres_dsn) == []
    assert _schema_version(postgres_dsn) == SCHEMA_VERSION


def test_processes_starting_at_once_after_an_upgrade_migrate_once(postgres_dsn) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # the first release's database, with a key
        write_first_release_tables(conn, postgres=True)
    assert _open_all_at_once(postgres_dsn) == []
    assert _schema_version(postgres_dsn) == SCHEMA_VERSION
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM exposure_keys").fetchone()[0] == 1


def test_a_server_goes_on_after_postgresql_dropped_its_connection(postgres_dsn, tmp_path) -> None:
    from bluezone.server.codes import CodeKey

    key = CodeKey.generate()
    storage = open_storage(postgres_dsn)
    try:
        issue_code(storage, NOW, key=key, test_type="confirmed")
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:  # a restart or failover, as the server sees it
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        # the next request begins on a new connection: it used to stay lost, every upload a 500 until a restart
        issue_code(storage, NOW, key=key, test_type="confirmed")
        issue_code(storage, NOW, key=key, test_type="confirmed")
        with psycopg.connect(postgres_dsn) as conn:
            assert conn.execute("SELECT COUNT(*) FROM codes").fetchone()[0] == 3
    finally:
        storage.close()


def test_a_malformed_postgresql_url_is_a_usage_error(tmp_path, monkeypatch) -> None:
    """'postgresql:/keys' was taken for a SQLite file of that name ('does not exist ... add --create-db',
    or a new file made); a URL libpq cannot parse was exit 1, as if PostgreSQL were down."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.errors import InputError

    pytest.importorskip("psycopg")  # the last URL is parsed by libpq
    monkeypatch.chdir(tmp_path)
    for url in ("postgresql:/keys", "postgres:keys", "postgresql://u:secret@[bad/x"):
        with pytest.raises(InputError) as refused:
            open_storage(url)
        assert "PostgreSQL URL" in str(refused.value) and "secret" not in str(refused.value)
        result = CliRunner().invoke(cli, ["server", "status", "--server-db", url])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_of_a_newer_bluezone_is_a_usage_error(request, tmp_path, backend: str) -> None:
    """It was exit 1, which the systemd unit restarts every 5 s for ever; the database is left as it is."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.errors import NewerSchemaError

    db = str(tmp_path / "s.db") if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    storage = open_storage(db)
    with storage._transaction() as cur:
        storage._exec(cur, "UPDATE meta SET value = ? WHERE name = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    storage.close()
    with pytest.raises(NewerSchemaError, match="newer than this bluezone"):
        open_storage(db)
    result = CliRunner().invoke(cli, ["server", "status", "--server-db", db])
    assert result.exit_code == 2 and "restore the backup" in result.output, result.output


@pytest.mark.parametrize(
    "message, refusal",
    [  # libpq's words (psycopg 3.3, PostgreSQL 15), as `cannot connect to PostgreSQL` showed them
        ('connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: FATAL:  password authentication'
         ' failed for user "bluezone"', 'password authentication failed for user "bluezone"'),
        ('connection failed: connection to server on socket "/s/.s.PGSQL.5432" failed: fe_sendauth: no password supplied',
         "no password supplied"),
        ('connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf entry for host'
         ' "10.0.0.9", user "keys", database "keys", no encryption',
         'no pg_hba.conf entry for host "10.0.0.9", user "keys", database "keys", no encryption'),
        ('connection failed: ... failed: FATAL:  Peer authentication failed for user "keys"',
         'Peer authentication failed for user "keys"'),
        ('connection failed: ... failed: FATAL:  database "nodb" does not exist', 'database "nodb" does not exist'),
        # worth retrying: PostgreSQL down, starting, full, or this database closed for a while
        ('connection is bad: connection to server on socket "/s/.s.PGSQL.5432" failed: No such file or directory', None),
        ('connection failed: connection to server at "10.0.0.5", port 5432 failed: Connection refused', None),
        ("connection failed: ... failed: FATAL:  the database system is starting up", None),
        ("connection failed: ... failed: FATAL:  sorry, too many clients already", None),
        ('connection failed: ... failed: FATAL:  database "keys" is not currently accepting connections', None),
    ],
)
def test_a_refused_login_is_told_from_an_outage(message: str, refusal: str | None) -> None:
    from bluezone.server.storage import login_refusal

    assert login_refusal(message) == refusal


def test_a_wrong_postgresql_role_or_database_is_one_line_and_exit_2(postgres_dsn: str, tmp_path) -> None:
    """It was exit 1 ('cannot connect to PostgreSQL: ...'), which the systemd unit restarts every 5 s for
    ever; a configuration error is exit 2 (RestartPreventExitStatus=2).  PostgreSQL down stays exit 1."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.server.signing import keygen

    keygen(tmp_path / "keys")
    with psycopg.connect(postgres_dsn) as conn:
        dbname = conn.info.dbname
    wrong_role = postgres_dsn.replace("bluezone@", "nosuchrole@")
    wrong_db = postgres_dsn.replace(f"@/{dbname}?", "@/nosuchdb?")
    down = postgres_dsn.split("?host=")[0] + f"?host={tmp_path}"  # no server on that socket
    # several hosts, the last one down: psycopg's first line is the last attempt's failure, the refusal came
    # before it (it was exit 1, an outage)
    wrong_role_second_host = wrong_role + f",{tmp_path}"
    runner = CliRunner()
    run = ["run", "--signing-key-dir", str(tmp_path / "keys"), "--export-dir", str(tmp_path / "e")]
    for dsn, said, code in (
        (wrong_role, 'role "nosuchrole" does not exist', 2), (wrong_db, 'database "nosuchdb" does not exist', 2),
        (wrong_role_second_host, 'role "nosuchrole" does not exist', 2),
        (down, "cannot connect to PostgreSQL", 1),
    ):
        for command in (run, ["status"]):
            result = runner.invoke(cli, ["server", *command, "--server-db", dsn])
            assert result.exit_code == code, (command, result.output)
            assert len(result.output.strip().splitlines()) == 1 and said in result.output, result.output
            if code == 2:
                assert result.output.startswith(f"Error: PostgreSQL refused the login: {said}: check the user")


def test_a_stop_while_the_tables_are_made_leaves_no_connection_to_cut(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of `server run --workers 2` stopped while it opens its database (SystemExit from its stop handler,
    here while the tables are made) ends through os._exit, where nothing closes a connection left open: PostgreSQL
    saw it cut ("unexpected EOF on client connection").  The open closes it on the way out."""

    def stopped(_storage: object) -> None:
        raise SystemExit(0)

    monkeypatch.setattr(PostgresStorage, "_create_schema", stopped)
    with pytest.raises(SystemExit) as stop:
        PostgresStorage(postgres_dsn)
    # its traceback (kept) holds the storage: no destructor closes the connection, as none runs at os._exit
    assert connections_left(postgres_dsn) == 0, stop
