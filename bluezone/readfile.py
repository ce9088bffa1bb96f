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


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | Path, limit: int, what: str = "file", error: type[InputError] = InputError) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them; ``error`` (one line naming ``what``) otherwise."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{p} is {_kind(mode)}, not a {what} (give a regular file)")
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
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{p} is {_kind(info.st_mode)}, not a {what} (give a regular file)")
        if info.st_size > limit:
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
