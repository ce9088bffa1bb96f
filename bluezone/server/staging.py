"""Export files are written outside the served directory and moved into it only once recorded.

A file in the export directory can be fetched (the key server serves every export name there; a CDN or
mirror syncing the directory copies it).  Written there before its record, a file an interrupted export
left behind held real keys with one set of fakes, and the next export published those keys again with
other fakes: whoever held both files intersected them, and the padding was undone (attack21).  So each
export writes into a folder of its own beside the export directory (``.<name>.staging/<random>/``, 0700,
on the same filesystem so that a rename moves a file in), locked (``flock``) while the export works, and
moves its files in once the transaction recording them has committed.

What a crash leaves in such a folder is settled by the next export (``settle_leftovers``), by what the
database says: a recorded file is moved in (it is published, and its keys left the queue), any other is
deleted (its keys are still queued, to go out in the next export's files: it was never visible).  A
folder whose lock is held belongs to an exporter at work (another ``server run`` process, a ``server
export`` beside it) and is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from bluezone.server.storage import Storage
from bluezone.writefile import sync_directory, write_file

log = logging.getLogger(__name__)


def staging_root(out_dir: Path) -> Path:
    """Where exports into ``out_dir`` write their files first: beside it, never inside (a CDN syncs inside)."""
    out = out_dir.resolve()
    return out.parent / f".{out.name}.staging"


class Staging:
    """One export's own folder to write into, locked until it is closed (``with Staging(...) as staging``).

    ``publish`` moves recorded files into the export directory.  Whatever is left in the folder when it
    is closed after an error is settled by the database's word (a failed commit may have recorded it);
    after a ``KeyboardInterrupt`` or ``SystemExit`` it is left for the next export to settle, as a kill
    leaves it."""

    def __init__(self, out_dir: Path, storage: Storage) -> None:
        self.out_dir, self._storage = out_dir, storage
        root = staging_root(out_dir)
        root.mkdir(mode=0o700, exist_ok=True)
        while True:
            path = root / secrets.token_hex(16)
            path.mkdir(mode=0o700)
            locked = _locked(path)
            if locked is not None:
                break
        self.path, self._fd = path, locked

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                _settle(self.path, self.out_dir, self._storage)
            elif issubclass(kind, Exception):
                try:
                    _settle(self.path, self.out_dir, self._storage)
                except OSError as error:  # the export's own error says more: the next export settles these
                    log.warning("export files in %s left for the next export to settle: %s", self.path, error)
        finally:
            os.close(self._fd)

    def sync(self) -> None:
        """Make the files written into the folder durable, before the transaction recording them commits."""
        sync_directory(self.path)

    def publish(self, names: Iterable[str]) -> None:
        """Move the files ``names`` (recorded) into the export directory, durably."""
        for name in names:
            _move(self.path / name, self.out_dir / name)
        sync_directory(self.out_dir)

    def discard(self, names: Iterable[str]) -> None:
        """Delete the files ``names`` (never recorded: another exporter published their keys first)."""
        for name in names:
            (self.path / name).unlink(missing_ok=True)


def settle_leftovers(storage: Storage, out_dir: Path) -> int:
    """Settle the folders of exports that ended without emptying theirs (killed, or their database gone):
    recorded files moved into ``out_dir``, the rest deleted; a folder an exporter holds is left alone.
    Returns how many files were published so."""
    try:
        folders = [entry.path for entry in os.scandir(staging_root(out_dir)) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    published = 0
    for folder in folders:
        fd = _try_lock(Path(folder))
        if fd is None:  # an exporter at work
            continue
        try:
            published += _settle(Path(folder), out_dir, storage)
        finally:
            os.close(fd)
    if published:
        log.warning("%d recorded export file(s) an interrupted export had not moved in are published now", published)
    return published


def _settle(folder: Path, out_dir: Path, storage: Storage) -> int:
    """Move ``folder``'s recorded files into ``out_dir``, delete the others and the folder (locked by the
    caller); how many were moved.  A database that cannot say leaves the folder for a later export."""
    names, moved = os.listdir(folder), []
    if names:
        try:
            recorded = {batch.name for batch in storage.batches()}
        except Exception as exc:  # (the database gone: the export's own error says so)
            log.warning("export files in %s left for the next export to settle: %s", folder, exc)
            return 0
        moved = [name for name in names if name in recorded]
        for name in moved:
            _move(folder / name, out_dir / name)
        if moved:
            sync_directory(out_dir)
        for name in set(names) - set(moved):  # unrecorded: its keys go out again in other files
            (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
    return len(moved)


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; copied whole (then deleted) where the export directory is another
    filesystem than its parent (a mount point: a volume of its own)."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_file(target, source.read_bytes(), None, sync=False)
        source.unlink()


def _try_lock(folder: Path) -> int | None:
    """An open descriptor holding ``folder``'s lock, or None if another process holds it (or it is gone)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _locked(folder: Path) -> int | None:
    """``folder``'s lock for its maker, unless another export settled (and removed) it first: its
    descriptor must still be the folder at that path."""
    fd = _try_lock(folder)
    if fd is None:
        return None
    try:
        if os.stat(folder).st_ino == os.fstat(fd).st_ino:
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None
