"""What a test asks of this process's open files: whether a connection to a store was left open."""

from __future__ import annotations

import os
from pathlib import Path


def open_on(path: Path) -> list[str]:
    """This process's descriptors open on ``path`` or on its -wal and -shm files (an unclosed SQLite connection's)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found
