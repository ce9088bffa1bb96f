"""``SightingStore``: the parts put together, each a module of its own, and its opening (create the
file privately, refuse a foreign one, migrate, purge) and closing."""

from __future__ import annotations

import functools
import inspect
import logging
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from bluezone.config import RETENTION_DAYS
from bluezone.errors import NotAStoreError, StoreError, StoreLinkedError, StoreReadOnlyError, StoreWriteError
from bluezone.proximity.store.adapters import Adapters
from bluezone.proximity.store.base import BUSY_SECONDS
from bluezone.proximity.store.bluezone3 import Bluezone3Sightings
from bluezone.proximity.store.checkins import CheckIns
from bluezone.proximity.store.failures import unusable
from bluezone.proximity.store.files import (
    _create_private_file, _missing_store_hint, default_db_path, make_private_dirs, on_read_only_file_system, read_only_uri,
)
from bluezone.proximity.store.keys import DailyKeys
from bluezone.proximity.store.keyserver import KeyServerMemory
from bluezone.proximity.store.retention import Retention, RewriteWhen
from bluezone.proximity.store.schema import Schema
from bluezone.proximity.store.sightings import Sightings
from bluezone.proximity.store.status import StoreStatus

log = logging.getLogger(__package__)  # the store's one logger, as before it was a package


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: SightingStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise unusable(self.path, exc) from exc

    return guarded


def _guard_public_methods(cls: type) -> type:
    """Every public method turns SQLite's errors into :func:`unusable`: damage can sit in any
    page, so it shows only when a read reaches it, long after the file opened fine.  The methods
    come from the class's parts (its bases): each is wrapped on the class itself, the parts left as
    they are."""
    methods: dict[str, Any] = {}
    for part in cls.__mro__:  # the first definition along the MRO is the one the class has
        for name, value in vars(part).items():
            methods.setdefault(name, value)
    for name, value in methods.items():
        if not name.startswith("_") and inspect.isfunction(value) and name != "close":
            setattr(cls, name, _guarded(value))
    return cls


@_guard_public_methods
class SightingStore(
    Sightings, Bluezone3Sightings, Adapters, DailyKeys, KeyServerMemory, CheckIns, Retention, StoreStatus, Schema
):
    """Daily keys and sightings of one device.  Use :meth:`open` (``create=False`` for an
    existing store); a context manager."""

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        create: bool = True,
        purge_now: float | None = None,
        any_thread: bool = False,
        stopping: threading.Event | None = None,
        rewrite: RewriteWhen = "unless_daemon",
    ) -> SightingStore:
        """Open (or create) the store at ``path``, migrate it and purge expired data.

        ``create=False`` raises StoreError when the file is missing (``status`` must not
        create databases).  ``purge_now`` is the time used for the purge on open: give "now"
        wherever the store is a device's (the CLI gives its clock to every open, so a store whose
        daemon stopped weeks ago shows nothing past the retention and keeps nothing).  Default: the
        newest record, never past the wall clock, so a store written on a virtual clock (the
        simulator, tests, the 2020 test vectors) is not emptied by being opened; the daemon purges
        on its own clock.  ``":memory:"`` works for throwaway stores.
        ``any_thread``: the store may be used from another thread than the one that opened it
        (one thread at a time; a check opens and reads it in a thread while its key file is read).
        ``stopping``: set meanwhile, it ends the purge on open, rolled back (``purge``; the daemon opens its store in a
        thread, so that a stop in its start is taken at once).  ``rewrite``: the purge's (a command's open leaves
        the purge to a daemon running on the store; the daemon's own open purges, its rewrite in its thread).
        """
        if path is not None and str(path) == ":memory:":
            conn = sqlite3.connect(":memory:", check_same_thread=not any_thread)
            store = cls(conn, None)
            store._migrate()
            return store
        p = Path(path) if path is not None else default_db_path()
        if not p.exists():
            if not create:
                raise NotAStoreError(f"no sighting database at {p} ({_missing_store_hint(p)})")
            make_private_dirs(p.parent)
            _create_private_file(p)
        elif p.is_dir():
            raise NotAStoreError(f"{p} is a directory, not a sighting database")
        elif not p.is_file():  # a FIFO, a device: SQLite's 'disk I/O error' says nothing useful
            raise NotAStoreError(f"{p} is not a regular file, so not a sighting database")
        read_only = on_read_only_file_system(p)  # read as it is; a write then fails as a read-only store's
        names = p.stat().st_nlink
        if names > 1 and not read_only:
            # SQLite keeps a database's WAL and its index beside the name it was opened by: a daemon on one name and
            # another daemon (or a command's purge) on another wrote through two WALs, and the file was corrupted
            raise StoreLinkedError(
                f"{p} has {names} names (hard links, as ln or cp -al make): SQLite keeps its write-ahead log by name,"
                " so two processes writing it under two names corrupt it; keep one name (cp the file to copy it)"
            )
        try:
            if read_only:
                conn = sqlite3.connect(read_only_uri(p), uri=True, timeout=BUSY_SECONDS, check_same_thread=not any_thread)
            else:
                conn = sqlite3.connect(p, timeout=BUSY_SECONDS, check_same_thread=not any_thread)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{p} is not a usable sighting database: {exc}") from None
        store = cls(conn, p)
        try:
            # Look before writing anything: WAL mode and migrations change the file for good.
            store._check_schema(create)
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                log.warning("sighting database %s is readable by others (mode %o); chmod 600 it", p, mode)
            if not read_only:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # deleted rows zeroed, not left in free pages (a purge's sightings, a migration's passwords): on where
            # the build allows it, as Debian's and Android's builds have it by default
            store.secure_delete = conn.execute("PRAGMA secure_delete = ON").fetchone() == (1,)
            store._migrate()
            if purge_now is None:
                # the newest record, so that a store made on a virtual clock survives opening; but never
                # past the wall clock: rows from a clock that ran ahead for a while must not erase the rest
                newest = store.newest_time()
                purge_now = None if newest is None else min(newest, time.time())
            vacuum = " (and the vacuum a migration owes: `bluezone status`)" if store.vacuum_postponed else ""
            if purge_now is not None:
                try:
                    store.purged_on_open = store.purge(
                        store.believed_time(purge_now), rewrite=rewrite, stopping=stopping
                    )
                except StoreWriteError as exc:  # a full disk: reading still works, and a later open purges
                    log.warning("retention purge on open postponed%s: %s", vacuum, exc)  # one line for both
                    vacuum = ""
                except StoreReadOnlyError:  # no open purges it while it stays so: said if it holds anything past
                    if _say_unpurgeable(store, p, read_only, vacuum):
                        vacuum = ""
            if vacuum:  # no purge said it (a library caller's store with nothing in it)
                log.warning("the vacuum a migration owes %s waits for an open that can write it", p)
        except sqlite3.DatabaseError as exc:
            conn.close()
            # SQLITE_NOTADB: the user pointed at some other file; anything else (locked, I/O) is trouble.
            raise unusable(p, exc) from None
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SightingStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: The read-only stores a warning said hold rows past the retention, by path: said once a process, so once a command
#: (``check`` reads its store again for its report's advice, ``keys export`` to cut today's key short: each said it).
_SAID_UNPURGEABLE: set[Path] = set()


def _say_unpurgeable(store: SightingStore, path: Path, on_read_only_file_system: bool, vacuum: str) -> bool:
    """Warn, in one line and once a process, that the read-only store at ``path`` holds rows past the retention,
    which no read shows but only an open that can write it deletes, and what deletes them; True when said.  Nothing
    when it holds none (a device's image copied within its 14 days): its purge would delete nothing."""
    held = store.past_retention()
    if not held or path.resolve() in _SAID_UNPURGEABLE:
        return bool(held)
    _SAID_UNPURGEABLE.add(path.resolve())
    if on_read_only_file_system:
        how = f"it is on a read-only file system: once it is mounted read-write, `bluezone purge --db {path}`"
    else:
        how = f"it is read-only to this user: `bluezone purge --db {path}` run by its owner"
    log.warning("%s holds %s older than %d days%s: no command shows or matches them, but they stay in the file until an"
                " open that can write it deletes them (%s)", path, _listed(held), RETENTION_DAYS, vacuum, how)
    return True


def _listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
