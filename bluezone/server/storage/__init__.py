"""The key server's storage: verification codes, published keys, export batches.

One interface, two implementations sharing the same SQL: SQLite (one file, WAL) is the
embedded default; PostgreSQL (psycopg 3) for a server that outgrows one machine.  Every
method is one transaction, so a publish either stores all its keys and burns its code or
changes nothing.  Calls are serialised per ``Storage`` object (one connection, a lock):
FastAPI runs sync handlers in a thread pool.

``Storage`` is put together from one part per job, each in a module of its own:

- ``database.py``: one connection behind a lock, one transaction per call, SQL for both dialects;
- ``schema.py``: the tables, and one migration per schema version;
- ``codes.py``: verification codes, and the budgets of failed code tries;
- ``revocation.py``: a code revoked, and what a used one brought withheld (keys, revisions, check-ins);
- ``uploads.py``: a publish (keys, revisions, check-in reports) in one transaction;
- ``queues.py``: keys and revisions waiting for export, as packed records;
- ``batches.py``: the exporter's records of its files and their directory, padding secrets, signing keys;
- ``checkins.py``: check-in reports waiting for a venue-warning file;
- ``retention.py``: ``purge``, what is deleted and when;
- ``scratch.py``: the benchmark's claim on a scratch database;
- ``interface.py`` puts them together; ``sqlite.py`` and ``postgres.py`` are the backends, and
  ``backends.py``'s ``open_storage`` picks one from a path or URL.
"""

from __future__ import annotations

from bluezone.server.storage.backends import is_postgres, open_storage
from bluezone.server.storage.batches import BatchRecord
from bluezone.server.storage.codes import SHARED_BUDGET, CodeRecord
from bluezone.server.storage.interface import Storage
from bluezone.server.storage.postgres import PostgresStorage, login_refusal, without_password
from bluezone.server.storage.queues import QUEUE_RECORD, queue_rows
from bluezone.server.storage.revocation import Withheld
from bluezone.server.storage.schema import SCHEMA_VERSION
from bluezone.server.storage.sqlite import SQLiteStorage
from bluezone.server.storage.uploads import CONFIRMED, LIKELY, RECURSIVE, REVOKED, PublishOutcome, revision_refusal

__all__ = [
    "BatchRecord", "CodeRecord", "PostgresStorage", "PublishOutcome", "SQLiteStorage", "Storage",
    "CONFIRMED", "LIKELY", "QUEUE_RECORD", "RECURSIVE", "REVOKED", "SCHEMA_VERSION", "SHARED_BUDGET",
    "Withheld", "is_postgres", "login_refusal", "open_storage", "queue_rows", "revision_refusal", "without_password",
]
