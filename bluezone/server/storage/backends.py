"""Which backend a ``--server-db`` value names: a PostgreSQL URL, or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from bluezone.errors import InputError
from bluezone.server.storage.interface import Storage
from bluezone.server.storage.postgres import PostgresStorage, without_password
from bluezone.server.storage.sqlite import SQLiteStorage


def is_postgres(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL database (else a SQLite file, or nothing ``open_storage`` takes)."""
    return str(db).startswith(("postgresql://", "postgres://"))


def open_storage(db: str | Path, create: bool = True) -> Storage:
    """``postgresql://...`` (or ``postgres://``) opens PostgreSQL; anything else is a SQLite file path,
    created (with its directory) only if ``create``."""
    text = str(db)
    if is_postgres(text):
        return PostgresStorage(text, create=create)
    if text.lower().startswith(("postgresql:", "postgres:")):  # 'postgresql:/db' was taken for a file of that name
        raise InputError(
            f"{without_password(repr(text), text)} is not a PostgreSQL URL: give postgresql://user@host/dbname"
        )
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise InputError(
            f"unsupported database URL {without_password(repr(text), text)}: give a SQLite file path or postgresql://..."
        )
    return SQLiteStorage(text, create=create)
