"""PostgreSQL through psycopg 3, for a server that outgrows one machine: the same SQL with %s
placeholders, named advisory locks, and the export's deletes run beside the signing.  A login
it refuses is told apart from an outage (no retry fixes a wrong password).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from bluezone.errors import ConfigError, InputError, ServerStorageError
from bluezone.server.storage.batches import BatchRecord
from bluezone.server.storage.database import CLOSE_APART_WAIT
from bluezone.server.storage.interface import Storage
from bluezone.server.storage.queues import id_runs

def without_password(message: str, dsn: str) -> str:
    """``message`` with the password of ``dsn`` masked: psycopg quotes a malformed URL whole in its
    error ("... in URI: "postgresql://u:secret@[bad/x""), which would put it in the journal."""
    found = re.search(r"://[^/@:]*:([^@]*)@", dsn) or re.search(r"\bpassword\s*=\s*'?([^'\s]+)", dsn)
    if found and found.group(1):
        message = message.replace(found.group(1), "***")
    return re.sub(r"(\bpassword\s*=\s*)'?[^'\s]+'?", r"\1***", message)


#: What PostgreSQL (or libpq) says when the URL's user, password or database is wrong: no retry fixes it.
_LOGIN_REFUSALS = re.compile(
    r"(password authentication failed for user \S+|no password supplied|role \S+ does not exist|database \S+ does not"
    r" exist|(?:peer|ident) authentication failed for user \S+|no pg_hba\.conf entry for .*"
    r"|permission denied for database \S+)",
    re.IGNORECASE,
)


#: What libpq says of an option's value in the URL, before it connects: the operator's to fix, no retry does.
_BAD_OPTION = re.compile(
    r"^(?:connection is bad: )?(invalid \S+ value:? .*|invalid port number: .*|invalid integer value .*|could not match \d+ .*)$",
    re.IGNORECASE,
)


#: PostgreSQL's words for a refusal after the password that waiting can end (limits, maintenance).
_WORTH_RETRYING = re.compile(
    r"too many (?:connections|clients)|does not allow connections|starting up|shutting down|recovery|not yet accepting",
    re.IGNORECASE,
)


def login_refusal(message: str, pgconn: Any = None) -> str | None:
    """The part of a connection error that says the login itself was refused (wrong user, password,
    database, or pg_hba.conf), else None: a server down, starting up or full is worth retrying.

    The server words it in its own language (``lc_messages``), and psycopg gives no SQLSTATE for a failed
    connection (libpq keeps the server's error to itself), so beside PostgreSQL's English words the refusal
    is told by what libpq says of the login (``pgconn``, psycopg's ``Error.pgconn``) in any language: the
    server asked for a password and got none, or got it and ended the connection all the same (wrong
    password or user, or a database missing or not allowed after it).  Then the server's own words are shown."""
    found = _LOGIN_REFUSALS.search(message)
    if found:
        return found.group(1)
    if pgconn is None or _WORTH_RETRYING.search(message):
        return None
    if getattr(pgconn, "needs_password", False) or getattr(pgconn, "used_password", False):
        said = (message.strip().splitlines() or [""])[-1].rsplit(" failed: ", 1)[-1]
        return re.sub(r"^[^\s:]+:\s+", "", said).strip() or "the server refused the password"
    return None


#: Whether the schema's ``meta`` is the key server's (a version row), and the tables where it would create its own.
_META_COLUMNS = (
    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'meta'"
)
_OURS = "SELECT 1 FROM meta WHERE name = 'schema_version'"
_TABLES_HERE = (
    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
    " AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname"
)


class PostgresStorage(Storage):
    """PostgreSQL through psycopg 3: the same SQL with %s placeholders."""

    _param = "%s"
    _serial = "BIGSERIAL"
    _int64 = "BIGINT"
    _unreused_id = "BIGSERIAL PRIMARY KEY"
    _blob = "BYTEA"
    # a row another transaction changes is waited for, then its new version judged again (READ COMMITTED)
    _lock_keys = " FOR UPDATE OF k"
    _lock_queued = " FOR UPDATE OF q"
    _lock_revisions = " FOR UPDATE OF r"
    _blocks = {
        "ipv4": (r"client ~ '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$'", "split_part(client, '.', 1) || '.' || split_part(client, '.', 2)"),
        "ipv6": ("client ~ '^shared:.*:.*/48$'", "coalesce(nullif(split_part(substr(client, 8), ':', 1), ''), '0') || ':'"
                 " || coalesce(nullif(split_part(substr(client, 8), ':', 2), ''), '0')"),
    }

    def _joined_records(self, cur: Any, source: str, params: Sequence[Any]) -> tuple[int, bytes]:
        # binary=True: the bytea as it is, not as hex text twice its size to parse
        sql = f"SELECT COUNT(*), string_agg(q.record, ''::bytea) {source}"
        count, data = cur.execute(self._sql(sql), tuple(params), binary=True).fetchone()
        return count, bytes(data or b"")

    def _mark_exported(self, cur: Any, table: str, column: str, batch_ids: np.ndarray, ids: np.ndarray) -> int:
        """One ``= ANY`` statement per batch: PostgreSQL takes an id array as one parameter."""
        return sum(
            int(self._exec(
                cur, f"UPDATE {table} SET {column} = ? WHERE id = ANY(?) AND {column} IS NULL",
                [batch, ids[batch_ids == batch].tolist()],
            ).rowcount)
            for batch in np.unique(batch_ids).tolist()
        )

    def _dequeue(self, cur: Any, queue: str, ids: np.ndarray, column: str = "key_id") -> int:
        """As SQLite's, the runs as two arrays in one statement (a million ids: 0.7 s, against 3.9 s
        for ``key_id = ANY(ids)``).  Uploads committed while the export ran have other ids and stay,
        whatever order their ids were drawn in."""
        first, last = id_runs(ids)
        return int(self._exec(
            cur,
            f"DELETE FROM {queue} q USING unnest(?::int8[], ?::int8[]) AS r(lo, hi) WHERE q.{column} BETWEEN r.lo AND r.hi",
            [first.tolist(), last.tolist()],
        ).rowcount)

    @contextmanager
    def export_transaction(
        self, key_ids: np.ndarray, revision_ids: np.ndarray, withheld: int | None = None
    ) -> Iterator[list[BatchRecord]]:
        """As SQLite's, but the keys leave the queues while the caller writes the files: the deletes
        run in the server on a connection of their own (a thread waits for them), uncommitted until
        the files are recorded.  The server's CPU works beside the signing instead of after it (1M
        keys: 0.35-0.5 s of deletes and their WAL).  Until the commit the rows taken stay locked:
        another exporter taking the same keys waits, then finds them gone; a revision of one of them
        waits too (then goes out in a later file's revised_keys)."""
        from concurrent.futures import ThreadPoolExecutor, wait

        import psycopg

        conn = self._connect()  # not the storage's: uploads through it go on meanwhile
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="bluezone-export") as pool:
                cur = conn.cursor()
                taking = pool.submit(self._take_out, cur, key_ids, revision_ids, withheld)
                batches: list[BatchRecord] = []
                try:
                    yield batches
                except BaseException:
                    wait([taking])  # then the connection closes uncommitted: nothing taken
                    raise
                taking.result()
                self._record_batches(cur, batches)
                conn.commit()
        except psycopg.OperationalError as exc:
            if not conn.broken:  # (as in _transaction: only a lost connection is an outage)
                raise
            raise self._lost(exc) from None
        finally:
            conn.close()

    def _lock_name(self, cur: Any, name: str) -> None:
        # two server processes would each count what the other is doing as not done yet
        self._exec(cur, "SELECT pg_advisory_xact_lock(hashtext(?))", [name])

    def _try_lock_name(self, cur: Any, name: str) -> bool:
        return bool(self._exec(cur, "SELECT pg_try_advisory_xact_lock(hashtext(?))", [name]).fetchone()[0])

    def _lock_key_inserts(self, cur: Any) -> None:
        # SHARE ROW EXCLUSIVE waits for open inserts and holds off new ones, reads go on
        self._exec(cur, "LOCK TABLE exposure_keys IN SHARE ROW EXCLUSIVE MODE")

    def __init__(self, dsn: str, create: bool = True) -> None:
        super().__init__()
        self._dsn = dsn
        self._conn = self._connect(autocommit=True)  # transaction() below is BEGIN ... COMMIT
        try:
            self._check_and_create(create)
        except BaseException:  # a refusal, or a stop while a worker opens it: closed, never left to be cut at exit
            self._conn.close()
            raise

    def _check_and_create(self, create: bool) -> None:
        """Refuse a database of another program's tables, or one without ours unless ``create``; then create or
        migrate the tables."""
        with self._transaction() as cur:
            tables = [name for (name,) in self._exec(cur, _TABLES_HERE).fetchall()]
            columns = {name for (name,) in self._exec(cur, _META_COLUMNS).fetchall()}
            ours = {"name", "value"} <= columns and self._exec(cur, _OURS).fetchone() is not None
        if tables and not ours:
            # the server's tables mixed into another program's schema could not be told apart again
            raise InputError(
                f"this PostgreSQL database already holds tables of another program ({', '.join(tables[:5])}"
                f"{', ...' if len(tables) > 5 else ''}) where the key server would create its own: give it a database"
                " of its own (CREATE DATABASE keys), or a schema of its own (CREATE SCHEMA keys, then add"
                " ?options=-csearch_path%3Dkeys to the URL)"
            )
        if not create and not ours:
            raise InputError("this PostgreSQL database has no key server tables (the server creates them on its"
                             " first start; add --create-db to create them here)")
        self._create_schema()

    def _connect(self, autocommit: bool = False) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            if exc.name is None or exc.name.split(".")[0] != "psycopg":
                raise
            # a usage error (exit 2): exit 1 has systemd restart the server every 5 s for ever
            raise ConfigError("PostgreSQL needs psycopg: pip install 'bluezone[postgres]'") from None
        try:
            return psycopg.connect(self._dsn, autocommit=autocommit)
        except UnicodeError as exc:  # (said without the URL: it may hold a password)
            # a byte that is no UTF-8 (UnicodeEncodeError), or a host the lookup cannot encode (IDNA: 'keys..example.org',
            # a label over 63 characters): exit 1 had systemd restart the server every 5 s for ever
            if isinstance(exc, UnicodeDecodeError):  # (what came back, not the URL)
                raise
            raise InputError(
                "not a usable PostgreSQL URL: it holds a byte that is no UTF-8 or a host name no lookup can take (an"
                " empty label, or one over 63 characters)"
            ) from None
        except psycopg.Error as exc:
            everything = without_password(str(exc).strip(), self._dsn)
            message = everything.splitlines()[0]
            if isinstance(exc, psycopg.ProgrammingError):  # the URL itself: a usage error, not an outage
                raise InputError(f"not a usable PostgreSQL URL: {message}") from None
            wrong_option = _BAD_OPTION.match(message)
            if wrong_option:  # an option's value (sslmode=bogus, port 99999): exit 1 had systemd restart it for ever
                raise InputError(f"not a usable PostgreSQL URL: {wrong_option.group(1)}") from None
            # every line: with several hosts (localhost is ::1, then 127.0.0.1) the refusal is a later attempt's
            refusal = login_refusal(everything, getattr(exc, "pgconn", None))
            if refusal:  # exit 2: systemd restarted the server every 5 s for ever on a wrong password
                raise ConfigError(f"PostgreSQL refused the login: {refusal}: check the user, password and database"
                                  " name in --server-db") from None
            raise ServerStorageError(f"cannot connect to PostgreSQL: {message}") from None

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        import psycopg

        try:
            with self._lock, ExitStack() as stack:
                try:
                    stack.enter_context(self._conn.transaction())
                except psycopg.OperationalError:
                    # the connection was lost (PostgreSQL restarted or failed over) before this transaction began:
                    # nothing of it ran, so it begins again on a new one (each process answered 500 for ever)
                    self._conn.close()
                    self._conn = self._connect(autocommit=True)
                    stack.enter_context(self._conn.transaction())
                yield stack.enter_context(self._conn.cursor())
        except psycopg.OperationalError as exc:
            if not self._conn.broken:  # a deadlock, a serialization failure, a statement cancelled: the caller's
                raise
            # lost inside it: PostgreSQL rolls it back (unless the COMMIT itself was cut off), and the next
            # transaction begins on a new connection; an outage as the one before it is (503, one line, no traceback)
            raise self._lost(exc) from None

    def _lost(self, exc: Exception) -> ServerStorageError:
        """The one line for a connection lost inside a transaction (without the URL's password)."""
        message = without_password((str(exc).strip().splitlines() or ["connection lost"])[0], self._dsn)
        return ServerStorageError(f"lost the connection to PostgreSQL during a transaction: {message}")

    def close(self) -> None:
        self._conn.close()
        self._end_apart(CLOSE_APART_WAIT)

    def _connect_apart(self) -> Any:
        return self._connect(autocommit=True)  # a read begins no transaction: nothing held open between checks
