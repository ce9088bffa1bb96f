"""Run several emulated devices (real daemons and stores) on one air for a stretch of virtual time.

The shortest path from "who stood where" to sighting databases: what the end-to-end tests,
``bluezone demo`` and ``bluezone run --backend emulated:N`` build on.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluezone.clock import Clock, VirtualClock
from bluezone.config import DaemonConfig
from bluezone.proximity.backends.emulated import Air, Channel, PositionLike
from bluezone.proximity.daemon import Daemon, DaemonStats
from bluezone.proximity.radio import AdvertListener
from bluezone.proximity.store import SightingStore


@dataclass
class Node:
    """One emulated device: its daemon and store (the store stays open until ``close()``)."""

    name: str
    daemon: Daemon
    store: SightingStore
    path: Path | None
    stats: DaemonStats = field(default_factory=DaemonStats)


def make_nodes(
    air: Air,
    positions: Mapping[str, PositionLike],
    db_dir: Path | None,
    clock: Clock,
    config: DaemonConfig | None = None,
    seed: int = 0,
    listeners: Callable[[SightingStore], Sequence[AdvertListener]] | None = None,
) -> list[Node]:
    """A daemon per name, each with its own store (``db_dir/<name>.db``, or in memory if None);
    ``listeners(store)`` gives each daemon its listeners for other adverts (venue beacons)."""
    nodes = []
    for i, (name, position) in enumerate(positions.items()):
        path = None if db_dir is None else Path(db_dir) / f"{name}.db"
        store = SightingStore.open(path if path is not None else ":memory:")
        radio = air.radio(name, position)
        extra = listeners(store) if listeners is not None else ()
        daemon = Daemon(radio, store, clock, config, rng=random.Random(seed * 1000 + i), listeners=extra)
        nodes.append(Node(name, daemon, store, path))
    return nodes


async def run_nodes(nodes: list[Node], duration: float, also: Sequence[Coroutine[Any, Any, Any]] = ()) -> None:
    """Run every node's daemon together for ``duration`` seconds of the clock (and ``also``:
    other senders on the same air, e.g. a venue beacon)."""
    async with asyncio.TaskGroup() as tg:
        for coro in also:
            tg.create_task(coro)
        runs = [tg.create_task(n.daemon.run(duration)) for n in nodes]
    for node, run in zip(nodes, runs, strict=True):
        node.stats = run.result()


def run_emulated(
    positions: Mapping[str, PositionLike],
    db_dir: Path,
    start: float,
    duration: float,
    *,
    seed: int = 0,
    config: DaemonConfig | None = None,
    channel: Channel | None = None,
    listeners: Callable[[SightingStore], Sequence[AdvertListener]] | None = None,
    also: Callable[[Air, Clock], Sequence[Coroutine[Any, Any, Any]]] | None = None,
) -> dict[str, Path]:
    """Run the named devices from ``start`` for ``duration`` virtual seconds; their databases by name.

    Positions are ``(x, y)`` metres or functions of Unix time; each device gets
    ``db_dir/<name>.db`` (an existing one is reused, as a restarted device would).  ``listeners``
    and ``also`` add listeners to each daemon and other senders (``also(air, clock)``) to the air.
    """
    clock = VirtualClock(start)
    air = Air(clock, seed, channel)
    Path(db_dir).mkdir(parents=True, exist_ok=True)
    nodes = make_nodes(air, positions, Path(db_dir), clock, config, seed, listeners)
    try:
        clock.run(run_nodes(nodes, duration, also(air, clock) if also is not None else ()))
    finally:
        for n in nodes:
            n.store.close()
    return {n.name: n.path for n in nodes if n.path is not None}
