"""Writing files whole or not at all: each under a temporary name of its own in the same directory,
synced to the disk, then renamed over the old one, so a reader (or a crash) sees the old file or the
new one, never half of one.

The temporary name is new each time (random, created ``O_EXCL | O_NOFOLLOW``): whoever can write into
the directory could plant a link at a fixed one (the secret went into the file it named) or a FIFO
(the open waited for ever).  A rename replaces a link at the final name; it never writes through it.
A random name is never written over, so what a crash left behind would pile up: each write first deletes
its target's own stale temporary files (``_remove_stale``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Collection, Mapping
from pathlib import Path

#: ``.<name>.<16 hex digits>.tmp`` as written here; ``.<name>.tmp``, the fixed name of earlier versions
_TEMPORARY = re.compile(r"(?s)\.(?P<name>.+?)(?:\.[0-9a-f]{16})?\.tmp")
#: ``.<name>.<16 hex digits>.tmp`` only: the names this module writes now
_RANDOM_TEMPORARY = re.compile(r"(?s)\.(?P<name>.+)\.[0-9a-f]{16}\.tmp")
#: A temporary file of this module's unchanged this long is a crashed write's (one takes seconds), not one
#: under way in another process (deleting that one would fail its rename)
STALE_SECONDS = 3600.0


def sync_directory(path: Path) -> None:
    """Make the renames into directory ``path`` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _remove_stale(directory: Path, names: Collection[str]) -> None:
    """Delete what earlier writes of ``names`` into ``directory`` left behind (killed before their rename:
    ``.index.txt.<hex>.tmp``, a venue's secret 0600 among them): only this module's random temporary names
    of those targets, regular files of this user's, unchanged for ``STALE_SECONDS``.  A link is never
    followed nor removed (``lstat``); a folder that cannot be listed is left as it is."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        temporary = _RANDOM_TEMPORARY.fullmatch(entry.name)
        if temporary is None or temporary["name"] not in names:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and now - info.st_mtime > STALE_SECONDS:
                os.unlink(entry.path)
        except OSError:  # gone meanwhile, or not ours to delete: the write goes on
            continue


def _written(directory: Path, name: str, data: bytes, mode: int | None) -> Path:
    """A new temporary file in ``directory`` holding ``data`` on the disk, with exactly ``mode`` (made
    0600, then given ``mode``: a secret is never readable by others on the way), or with a new
    file's mode under the umask (``None``: public files such as a key server's exports)."""
    while True:
        tmp = directory / f".{name}.{os.urandom(8).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666 if mode is None else 0o600)
            break
        except FileExistsError:  # (2**64 names: only one planted there on purpose)
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


#: Links followed at most (the kernel's own limit): more is a loop
_MAX_LINKS = 40


def link_target(path: Path) -> Path:
    """The path a write to ``path`` replaces: ``path`` itself, or, where it is a link of this user's (or
    root's: /dev/stdout), the file it names, so a file kept on another volume stays linked.  A link of
    another user's is refused (``PermissionError``): planted in a shared folder such as /tmp, it sent the
    replacement to any file of the writer's (the kernel's fs.protected_symlinks guards only the links it
    follows itself, not one read by ``realpath`` and renamed over in user space)."""
    for _ in range(_MAX_LINKS):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return path
        if not stat.S_ISLNK(info.st_mode):
            return path
        if info.st_uid not in (os.geteuid(), 0):
            raise PermissionError(errno.EPERM, f"it is a link of another user's (uid {info.st_uid}), not followed: it"
                                  " may have been planted to send the write to another file; give another name")
        path = path.parent / os.readlink(path)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))


def final_name(name: str) -> str:
    """The name a temporary file of this module was to take (``.index.txt.1a2b3c4d5e6f7a8b.tmp`` ->
    ``index.txt``, and the fixed ``.index.txt.tmp`` of earlier versions), else ``name`` itself: what a
    clean-up of files half written (a crash before the rename) goes by."""
    temporary = _TEMPORARY.fullmatch(name)
    return temporary["name"] if temporary else name


def write_file(path: Path, data: bytes, mode: int | None, *, sync: bool = True) -> None:
    """Write ``path`` whole or not at all, ``mode`` as for ``write_files``.  Without ``sync`` the caller
    syncs the directory itself (once for many files, before it records them as written)."""
    _remove_stale(path.parent, {path.name})
    tmp = _written(path.parent, path.name, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        sync_directory(path.parent)


def write_files(directory: Path, files: Mapping[str, tuple[bytes, int | None]]) -> None:
    """Write each ``name: (bytes, mode)`` into ``directory``, modes exact (not filtered by the umask;
    ``None``: a new file's, under the umask).

    Every file's bytes reach the disk before the first rename, so a failed write (a full disk, an I/O
    error, the process killed) leaves each old file as it was and no temporary one; the directory is
    synced after the renames.  Only a power cut between two renames, microseconds apart, can leave
    some files old and some new (a key pair's reader must check that they match)."""
    _remove_stale(directory, files.keys())
    made: list[tuple[str, Path]] = []
    try:
        for name, (data, mode) in files.items():
            made.append((name, _written(directory, name, data, mode)))
        for name, tmp in made:
            os.replace(tmp, directory / name)
    except BaseException:
        for _, tmp in made:
            tmp.unlink(missing_ok=True)  # (those renamed already are gone from here)
        raise
    sync_directory(directory)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` whole with exactly ``mode``, only if nothing (not even a link) is there:
    ``FileExistsError`` otherwise, and nothing written.  Linked into place, so a crash never leaves a
    half-written file that blocks the next try."""
    _remove_stale(path.parent, {path.name})
    tmp = _written(path.parent, path.name, data, mode)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()
    sync_directory(path.parent)
