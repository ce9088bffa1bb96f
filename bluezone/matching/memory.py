"""How much memory this process can have: the kernel's ``MemAvailable``, within its cgroup's limit.

In a container (Docker, Kubernetes, a systemd unit with ``MemoryMax=``) the host's free memory is
not what the process may use: a 2 GiB container on a 24 GiB host is killed at 2 GiB.  The limit is
the smallest headroom of the process's cgroup and each cgroup above it, cgroup v2 (``memory.max``)
or v1 (``memory.limit_in_bytes``), found where ``/proc/self/mountinfo`` says they are mounted.
Headroom is the limit less what is charged but cannot be reclaimed (usage less inactive file pages,
as the kernel and ``docker stats`` count a working set), so a page cache full of old files does
not make the container look full.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

#: v1 writes "no limit" as the largest multiple of the page size below 2**63.
_V1_UNLIMITED = 2**62


def available_memory(root: Path = Path("/")) -> int | None:
    """Bytes this process can have without swapping or being killed; None when nothing says.
    ``root`` is ``/`` but for tests (a fake ``proc`` and ``sys/fs/cgroup`` tree)."""
    amounts = [a for a in (_mem_available(root), cgroup_headroom(root)) if a is not None]
    if not amounts and root == Path("/"):
        try:
            amounts.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    return min(amounts) if amounts else None


def _mem_available(root: Path) -> int | None:
    for line in _lines(root / "proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return _int(line.split()[1:2], 1024)
    return None


def cgroup_headroom(root: Path = Path("/")) -> int | None:
    """The least headroom over this process's memory cgroups (v2 and v1) and their ancestors;
    None when no memory limit is set or none can be read."""
    headrooms = [h for directory, v2 in _memory_cgroups(root) for h in [_headroom(directory, v2)] if h is not None]
    return min(headrooms) if headrooms else None


def _memory_cgroups(root: Path) -> Iterator[tuple[Path, bool]]:
    """(directory, is v2) of each memory cgroup this process is in and every one above it."""
    paths: dict[bool, str] = {}  # v2 -> this process's cgroup path in that hierarchy
    for line in _lines(root / "proc/self/cgroup"):
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            paths[True] = path
        elif "memory" in controllers.split(","):
            paths[False] = path
    for line in _lines(root / "proc/self/mountinfo"):
        head, separator, tail = line.partition(" - ")  # mount id, parent, dev, root, point ... - type source options
        fields, after = head.split(), tail.split()
        if not separator or len(fields) < 5 or not after:
            continue
        mount_root, mount_point, fstype = fields[3], fields[4], after[0]
        options = after[2] if len(after) > 2 else ""
        v2 = fstype == "cgroup2"
        if not (v2 or (fstype == "cgroup" and "memory" in options.split(","))) or v2 not in paths:
            continue
        top = root / mount_point.lstrip("/")
        relative = paths[v2]
        if mount_root != "/" and (relative + "/").startswith(mount_root.rstrip("/") + "/"):
            relative = relative[len(mount_root.rstrip("/")):]
        directory = top / relative.lstrip("/")
        if not directory.is_dir():  # a cgroup namespace whose paths this mount does not show: its root is ours
            directory = top
        while True:
            yield directory, v2
            if directory == top:
                break
            directory = directory.parent


def _headroom(directory: Path, v2: bool) -> int | None:
    limit_text = _first(directory / ("memory.max" if v2 else "memory.limit_in_bytes"))
    if limit_text is None or limit_text == "max":
        return None
    limit = _int([limit_text])
    if limit is None or limit >= _V1_UNLIMITED:
        return None
    usage = _int([_first(directory / ("memory.current" if v2 else "memory.usage_in_bytes")) or ""])
    if usage is None:
        return limit
    inactive = 0
    for line in _lines(directory / "memory.stat"):
        name, _, value = line.partition(" ")
        if name == ("inactive_file" if v2 else "total_inactive_file"):
            inactive = _int([value]) or 0
    return max(0, limit - max(0, usage - inactive))


def _lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read(1 << 20).splitlines()
    except (OSError, ValueError):
        return []


def _first(path: Path) -> str | None:
    lines = _lines(path)
    return lines[0].strip() if lines else None


def _int(words: list[str], unit: int = 1) -> int | None:
    try:
        value = int(words[0]) * unit
    except (ValueError, IndexError):
        return None
    return value if value >= 0 else None
