"""Reading a file the user named, safely: only a regular file, and never more than a cap.

A path may name a FIFO (``open`` waits for a writer for ever), a device (``/dev/zero`` never
ends), or a symlink to either; ``st_size`` says nothing about them (0), and a file may grow
between ``stat`` and ``read``.  So the file is opened without blocking, refused unless
``fstat`` says it is a regular file, and read in chunks that stop one byte past the cap.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from bluezone.errors import InputError

CHUNK = 1 << 20


def file_kind(mode: int) -> str:
    """What a path that is no regular file is, as a message names it ("a FIFO", "a Unix socket", ...)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a Unix socket"
    return "not a regular file"


def _open_regular(p: Path, what: str, error: type[InputError]) -> tuple[int, int]:
    """``(descriptor, size)`` of ``p`` opened for reading, or ``error``: it cannot be opened or is
    not a regular file.  Opened non-blocking and checked on the descriptor, so a FIFO never hangs
    the open and a file swapped after a check is not read."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{p} is {file_kind(info.st_mode)}, not a {what} (give a regular file)")
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
        raise
    return fd, info.st_size


def read_regular_file(path: str | Path, limit: int, what: str = "file", error: type[InputError] = InputError) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them; ``error`` (one line naming ``what``) otherwise."""
    p = Path(path)
    fd, _ = _open_regular(p, what, error)
    try:
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise error(f"{p}: {what} too large (over {limit:,} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


@contextmanager
def open_regular_file(
    path: str | Path, limit: int, what: str = "file", error: type[InputError] = InputError
) -> Iterator[BinaryIO]:
    """``path`` open for reading (binary, seekable), for a reader that streams a file too large to
    hold (a key file of millions of keys): only a regular file of at most ``limit`` bytes, and an
    ``OSError`` while reading it is ``error`` too.  Whoever reads must still stop at ``limit``
    (a file may grow after it is opened)."""
    p = Path(path)
    fd, size = _open_regular(p, what, error)
    try:
        if size > limit:
            raise error(f"{p}: {what} too large (over {limit:,} bytes)")
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        try:
            yield file
        except OSError as exc:
            raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
