"""Running the daemon in the foreground: what ``bluezone run`` does, callable from Python.

The library's daemon knows nothing of signals; this runner wires SIGINT/SIGTERM to
``daemon.stop()`` so Ctrl-C flushes everything and exits cleanly.  With the emulated radio
(``emulated[:N]``) it also starts N emulated neighbours (default 2, at 1 m and 8 m, with
in-memory stores) so that a machine without Bluetooth sees the whole pipeline work.  What the
emulated radio hears is invented, so it never writes into the default database (the real one of
``--backend auto``): without ``--db`` it keeps its own ``emulated.db`` beside it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from bluezone.clock import CheckedClock, Clock, SystemClock
from bluezone.config import DaemonConfig
from bluezone.errors import ConfigError, StoreError
from bluezone.proximity.backends import open_radio
from bluezone.proximity.daemon import LINKABILITY_WARNING, Daemon, DaemonStats
from bluezone.proximity.radio import AdvertListener
from bluezone.proximity.stopsignals import stop_on_signals
from bluezone.proximity.store import EMULATED_DB_FILENAME, SightingStore, default_db_path
from bluezone.proximity.store.daemonlock import one_daemon_per_store

log = logging.getLogger(__name__)

DEFAULT_NEIGHBOURS = 2
NEIGHBOUR_POSITIONS = [(1.0, 0.0), (8.0, 0.0), (3.0, 4.0), (0.0, 15.0), (-2.0, -2.0), (30.0, 0.0)]
#: Seconds between progress reports before the first status line (``on_progress``).
PROGRESS_SECONDS = 5.0


def is_emulated(backend: str) -> bool:
    """Whether ``backend`` is the emulated radio."""
    return backend.split(":", 1)[0] == "emulated"


def database_for(backend: str, db_path: Path | str | None, real: Path | None = None) -> Path | str:
    """The database a daemon on ``backend`` writes: ``db_path``, else the real one (``real``: the
    user's configured database, else the default one); the emulated radio's invented neighbours
    go to ``emulated.db`` beside the real one, never into it."""
    real = real if real is not None else default_db_path()
    if not is_emulated(backend):
        return db_path if db_path is not None else real
    if db_path is None:
        return real.with_name(EMULATED_DB_FILENAME)
    if str(db_path) != ":memory:" and Path(db_path).resolve() == real.resolve():
        raise ConfigError(
            f"the emulated radio invents its neighbours: it does not write into the real database {real}; "
            "leave out --db (it keeps emulated.db beside it) or give another file"
        )
    return db_path


def neighbours_of(spec: str) -> int:
    """How many emulated neighbours ``emulated[:N]`` asks for."""
    rest = spec.partition(":")[2]
    if not rest:
        return DEFAULT_NEIGHBOURS
    if not rest.isdigit() or int(rest) > 100:
        raise ConfigError(f"emulated takes a number of neighbours 0-100 (emulated:3), got {spec!r}")
    return int(rest)


async def run_daemon(
    backend: str = "emulated",
    db_path: Path | None = None,
    config: DaemonConfig | None = None,
    duration: float | None = None,
    *,
    clock: Clock | None = None,
    adapter: str | None = None,
    on_status: Callable[[str], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_progress: Callable[[DaemonStats, float], None] | None = None,
    handle_signals: bool = True,
    seed: int | None = None,
    also_bluezone_v3: bool = False,
    listeners: Sequence[Callable[[SightingStore], AdvertListener]] = (),
    real_db: Path | None = None,
) -> DaemonStats:
    """Run one daemon on ``backend`` until stopped (signal) or ``duration`` seconds pass from this call (the store's
    and the radio's opens included: a radio slow to answer does not lengthen the run).

    With ``emulated:N`` the second neighbour is a phone that also sends Bluezone v3 IDs, so the
    v3 scanning path runs end to end; ``also_bluezone_v3`` makes this device send them too.

    ``on_start`` gets one line naming the radio and the database; ``on_progress`` gets the
    counters and the seconds since the start every few seconds until the first status line
    (a terminal shows something before the first minute is over).  ``listeners`` make, from the
    store, listeners for other adverts (the venue-beacon check-ins of ``bluezone.venues.nearby``).
    ``real_db`` is the user's own database when configured (``BLUEZONE_DB``, config.toml)."""
    config = config or DaemonConfig()
    loop = asyncio.get_running_loop()
    ends = None if duration is None else loop.time() + duration  # (the loop's time: a virtual clock's in tests)
    # the real clock checked against the time measured since boot: a step ahead while NTP had it in hand would
    # stamp sightings in the future and purge every one as past the 14 days (docs/proximity.md, "Retention")
    clock = CheckedClock(clock) if clock is None or isinstance(clock, SystemClock) else clock
    if also_bluezone_v3 and not is_emulated(backend):
        raise ConfigError(
            "--also-bluezone-v3 works on the emulated radio only, so far: the BlueZ and bumble backends send one advert set"
        )
    db = database_for(backend, db_path, real_db)
    new_store = str(db) != ":memory:" and not Path(db).exists()  # ('~' is no home: the store's open takes it as it is)
    stopping = threading.Event()  # a stop asked before the daemon runs: it ends the store's open (its purge, rolled back)
    daemon: Daemon | None = None

    def stop() -> None:
        stopping.set()
        if daemon is not None:
            daemon.stop()

    # the signals are taken from the start: a SIGTERM while the store opened (its purge: 1.6 s at 1M sightings with
    # 3 days to delete) killed the process (exit 143), not the clean stop a later one gives
    with stop_on_signals(stop, "flushing and stopping", enabled=handle_signals), one_daemon_per_store(db):
        neighbours: list[Daemon] = []
        n = 0
        if is_emulated(backend):
            from bluezone.proximity.backends.emulated import Air

            n = neighbours_of(backend)
            air = Air(clock, seed if seed is not None else 0)
            radio = open_radio("emulated", air=air, label="self", position=(0.0, 0.0))
            for i in range(n):
                position = NEIGHBOUR_POSITIONS[i % len(NEIGHBOUR_POSITIONS)]
                neighbours.append(
                    Daemon(
                        air.radio(f"neighbour-{i + 1}", position),
                        SightingStore.open(":memory:"),
                        clock,
                        config,
                        on_status=lambda _: None,
                        bluezone3=i == 1,
                    )
                )
        else:
            radio = open_radio(backend, adapter=adapter, clock=clock)
        time_up = None if ends is None else loop.call_at(ends, stopping.set)  # (as a stop: the open's purge ended)
        try:
            store = await _open_store(db, clock, stopping)
        finally:
            if time_up is not None:
                time_up.cancel()
        try:
            if stopping.is_set():  # stopped (or the time up) while the store opened: nothing begun, nothing to flush
                return DaemonStats()
            if isinstance(clock, CheckedClock):  # what it believed in this boot before a restart (else a new line, and
                clock.restore(store.believed_line())  # the 3 days believed steps add up to held per daemon run, not per boot)
                clock.resume(store.measured_clock(), store.clock_hold())  # and holds on: a restart began the hold again

            def started() -> None:  # after the radio opened: its name may now say which adapter
                if on_start is not None:
                    invented = f" with {n} invented neighbour(s)" if is_emulated(backend) else ""
                    on_start(
                        f"bluezone daemon: radio {radio.name}{invented}, database {store.path or ':memory:'}; "
                        f"a status line every {config.status_interval:g} s (Ctrl-C stops)"
                    )
                    other = config.on_another_adapter(radio.adapter_address)
                    if not is_emulated(backend) and other is not None:
                        on_start(other)
                    edited = config.edited_since_calibration()
                    if not is_emulated(backend) and edited is not None:
                        on_start(f"calibration edited since bluezone calibrate: {edited}; the edited number is the one used")
                    elif not is_emulated(backend) and not config.calibrated:
                        on_start(
                            f"uncalibrated: {config.uncalibrated_numbers()}; `bluezone calibrate` measures this adapter's own"
                            " (README, \"Real Bluetooth\")"
                        )

            daemon = Daemon(
                radio, store, clock, config, on_status=on_status, on_started=started, bluezone3=also_bluezone_v3,
                listeners=[make(store) for make in listeners],
            )
            log.info("bluezone daemon on %s, store %s", radio.name, store.path)
            if also_bluezone_v3:
                log.warning(LINKABILITY_WARNING)
            # the neighbours are scenery: their failures are logged, never the user's problem
            scenery = [asyncio.create_task(nb.run(), name=f"bluezone-neighbour-{i}") for i, nb in enumerate(neighbours)]
            ticker = None
            if on_progress is not None:
                ticker = asyncio.create_task(_progress(daemon, clock, config.status_interval, on_progress))
            try:
                return await daemon.run(None if ends is None else max(ends - loop.time(), 0.0))
            finally:
                if ticker is not None:
                    ticker.cancel()
                for nb in neighbours:
                    nb.stop()
                for result in await asyncio.gather(*scenery, return_exceptions=True):
                    if isinstance(result, BaseException):
                        log.warning("emulated neighbour failed: %s", result)
        finally:
            # made by this run and holding nothing: no key, so the radio never opened (it failed, a typo in its
            # transport, or a stop or the duration came first), and no check-in another command wrote meanwhile
            empty = new_store and _holds_nothing(store)
            store.close()
            for nb in neighbours:
                nb.store.close()
            if empty:
                _remove_store(Path(db))


def _holds_nothing(store: SightingStore) -> bool:
    """``store.holds_nothing()``, False when it cannot be read (then it is no empty store to remove)."""
    try:
        return store.holds_nothing()
    except StoreError:
        return False


def _remove_store(db: Path) -> None:
    """Remove a store this run made and left empty: left, it was a store of nothing at the default path (`bluezone
    run` on a machine with no usable Bluetooth), which `status` then reported as if a daemon had run.  Its lock
    stays: removed, a second daemon waiting on it would lock a file no longer there.  A link made ahead to the
    store's place (a larger disk) stays too: the file it names goes."""
    target = Path(os.path.realpath(db))
    for suffix in ("", "-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)


async def _open_store(db: Path | str, clock: Clock, stopping: threading.Event) -> SightingStore:
    """The daemon's store, opened in a thread: the loop takes a stop meanwhile at once, and ``stopping`` ends the open's
    purge (rolled back: the next start's).  Purged at the wall clock's now, as a command's open is (and as the
    daemon's start purges, which then finds nothing left: on the loop it would hold a stop until it was done)."""
    wall = clock.wall if isinstance(clock, CheckedClock) else clock
    return await asyncio.to_thread(
        SightingStore.open, db, purge_now=wall.now(), any_thread=True, stopping=stopping, rewrite="apart"
    )


async def _progress(
    daemon: Daemon, clock: Clock, until: float, report: Callable[[DaemonStats, float], None]
) -> None:
    """Report the counters every PROGRESS_SECONDS until the first status line is due."""
    for tick in range(1, math.ceil(until / PROGRESS_SECONDS)):
        await asyncio.sleep(PROGRESS_SECONDS)
        report(daemon.stats, tick * PROGRESS_SECONDS)
