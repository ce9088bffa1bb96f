"""Writing files whole or not at all: each under a temporary name of its own in the same directory,
synced to the disk, then renamed over the old one, so a reader (or a crash) sees the old file or the
new one, never half of one.

The temporary name is new each time (``mkstemp``: ``O_EXCL | O_NOFOLLOW``): whoever can write into
the directory could plant a link at a fixed one (the secret went into the file it named) or a FIFO
(the open waited for ever).  A rename replaces a link at the final name; it never writes through it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def sync_directory(path: Path) -> None:
    """Make the renames into directory ``path`` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _written(directory: Path, name: str, data: bytes, mode: int) -> Path:
    """A new temporary file in ``directory`` holding ``data`` on the disk, with exactly ``mode``
    (mkstemp makes it 0600, so a secret is never readable by others on the way)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def write_files(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Write each ``name: (bytes, mode)`` into ``directory``, modes exact (not filtered by the umask).

    Every file's bytes reach the disk before the first rename, so a failed write (a full disk, an I/O
    error, the process killed) leaves each old file as it was and no temporary one; the directory is
    synced after the renames.  Only a power cut between two renames, microseconds apart, can leave
    some files old and some new (a key pair's reader must check that they match)."""
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
    tmp = _written(path.parent, path.name, data, mode)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()
    sync_directory(path.parent)
