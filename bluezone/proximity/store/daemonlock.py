"""The store's daemon lock, ``<db>.lock``: held by the one daemon that runs on the store, asked about by a
command's open, which leaves the day's rewrite to that daemon (``Retention.purge``).

An flock on a file of its own, not on the database: SQLite's POSIX locks are dropped when any descriptor of the
database file closes.  The kernel releases it when the daemon ends, however it ends (``kill -9`` too), so a
command never trusts a daemon that is gone, as it would a pid or a report's time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from bluezone.errors import NotAStoreError, StoreError, StoreInUseError, StoreReadOnlyError
from bluezone.proximity.store.files import make_private_dirs

#: How long a daemon starting tries for the lock before it says another holds it: a command's probe
#: (``daemon_runs_on``) holds it, shared, for the microseconds between two system calls.
TAKE_SECONDS = 0.25


def lock_path(db: Path | str) -> Path:
    """``<db>.lock`` beside the store, through links: the store a link names has one lock, however it is reached."""
    path = Path(db).resolve()
    return path.with_name(path.name + ".lock")


def daemon_runs_on(db: Path | str) -> bool:
    """Whether a daemon holds ``db``'s lock now and is not stopped (this process's own daemon too: a lock is the
    open file's).

    Probed with a shared lock, let go at once; no lock file, or one this user cannot open, reads as no daemon:
    the caller then does the work itself, as on a device without one.  So does a daemon stopped with the lock
    held (Ctrl-Z in its terminal, SIGSTOP): it purges nothing until it is continued, which may be never."""
    try:  # never blocking on a FIFO planted there, never through a link
        fd = os.open(lock_path(db), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return not _holder_stopped(fd)
    except OSError:  # ENOLCK: no lock can be held there, so none is
        return False
    finally:
        os.close(fd)  # (and with it the probe's lock)
    return False


def _holder_stopped(fd: int) -> bool:
    """Whether the pid the lock's holder wrote is a process stopped by a signal or a debugger (``/proc``'s ``T``,
    ``t``).  Anything unreadable (no pid written, no ``/proc``, a pid of another namespace) reads as not stopped:
    the lock is believed, as before."""
    try:
        written = os.pread(fd, 32, 0).decode("ascii").strip()
        if not written.isdigit():
            return False
        with open(f"/proc/{int(written)}/stat", "rb") as proc:
            fields = proc.read().rpartition(b")")[2].split()  # after the command's name, which may hold ") "
    except (OSError, UnicodeDecodeError):
        return False
    return bool(fields) and fields[0] in (b"T", b"t")


@contextlib.contextmanager
def one_daemon_per_store(db: Path | str) -> Iterator[None]:
    """Hold ``<db>.lock`` for as long as a daemon runs on ``db``.

    Two daemons on one store (a second adapter, or a hand-started run beside the service) both
    broadcast the store's daily key and hear each other: its owner would match its own keys, a
    close contact with itself."""
    if str(db) == ":memory:":
        yield
        return
    path = Path(db).resolve()
    lock = lock_path(path)
    try:  # never through a link (it would truncate the file it names), never blocking on a FIFO
        make_private_dirs(path.parent)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise _unusable_lock(path, lock, exc) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise NotAStoreError(f"{lock} is not a file: the store's lock must be one; remove it")
        if status.st_nlink != 1:  # a hard link: truncating it would empty the file it shares (the store itself)
            raise NotAStoreError(f"{lock} is a hard link to another file: the store's lock must be its own; remove it")
        if not _take(fd, lock):
            written = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            holder = written if written.isascii() and written.isdigit() else "?"  # never a planted escape sequence
            raise StoreInUseError(
                f"another bluezone daemon (pid {holder}) runs on {path}: two daemons on one store send one key "
                "and hear each other; stop it, or give this one another --db"
            ) from None
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds without its note (a second daemon then says "pid ?"), and
            pass  # the daemon keeps what the store refuses for later (it said 'OSError: No space left', exit 1)
        yield
    finally:
        os.close(fd)


def _unusable_lock(db: Path, lock: Path, exc: OSError) -> StoreError:
    """The one line for a lock the daemon cannot make or open.  A read-only file system or folder is said as such,
    exit 1 as a write to a read-only store is: it said 'cannot use X.lock as the store's lock: Read-only file system',
    exit 2, as for a path mistyped."""
    if exc.errno == errno.EROFS:
        readers = "; commands that only read it (status, checkins, check) do" if db.is_file() else ""
        return StoreReadOnlyError(
            f"cannot run on {db}: it is on a read-only file system, where the daemon can write neither its sightings nor"
            f" its lock {lock.name}{readers}: to record, give --db a store in a writable folder"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StoreReadOnlyError(
            f"cannot run on {db}: this user may not make or open its lock {lock} ({exc.strerror}): run as the store's"
            " owner, or give --db a store in a writable folder"
        )
    there = "; remove it" if os.path.lexists(lock) else ""  # (a folder that is a file, or none there to make it in)
    return NotAStoreError(f"cannot use {lock} as the store's lock: {exc.strerror}{there}")


def _take(fd: int, lock: Path) -> bool:
    """Lock ``fd`` for this daemon; False when another holds it past ``TAKE_SECONDS`` (a probe lets go at once)."""
    deadline = time.monotonic() + TAKE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        except OSError as exc:  # ENOLCK: an NFS folder without a lock manager
            raise NotAStoreError(
                f"cannot lock {lock} ({exc.strerror}): keep the store on a local disk (or one that supports locks)"
            ) from None
