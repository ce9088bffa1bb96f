"""The proximity daemon: advertise today's RPI, listen, and store what is heard.

Tasks under one ``asyncio.TaskGroup``:
- rotation: the daily key changes at UTC midnight; the RPI at a random 10-20 minutes and at
  every key change (GAEN v1.2), each time advertised as RPI + AEM(metadata with TX power);
- writer: the radio's callback only puts adverts in a bounded queue (full: counted drop);
  the writer validates them (:mod:`bluezone.proximity.ingest`) and writes one transaction
  per flush, when ``flush_size`` adverts wait or every ``flush_interval`` seconds;
- purge (retention) every ``purge_interval`` seconds, the day's rewrite of the file in a thread (the loop
  receives on; the store's writes wait for it in memory), and a status line every ``status_interval`` seconds.
``stop()`` (the CLI wires SIGINT/SIGTERM to it) ends the tasks, closes the radio and flushes
everything still queued before ``run()`` returns.  Everything runs on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np

from bluezone.boottime import LINE_PARTS, Hold, Line, boot_id
from bluezone.clock import CheckedClock, Clock
from bluezone.crypto import bluezone3 as bz3
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.crypto.keys import DailyKey, aem_key, rpi_key
from bluezone.crypto.payload import Metadata
from bluezone.crypto.derivation import aem, rpi
from bluezone.errors import BluezoneError, StoreWriteError
from bluezone.proximity.budget import RpiBudget
from bluezone.proximity.backlog import Backoff, WriteBacklog
from bluezone.proximity.ingest import adverts_to_sightings
from bluezone.proximity.radio import Advert, AdvertListener, Radio
from bluezone.proximity.store import SightingStore

log = logging.getLogger(__name__)
#: Logged at start (``run_daemon``) when this device sends Bluezone v3 IDs (docs/bluezone3.md says the same).
LINKABILITY_WARNING = (
    "also sending Bluezone v3 IDs (--also-bluezone-v3): they change on a fixed 15-minute UTC grid, so an "
    "observer can link them to this device's GAEN adverts across each change, and one published daily key "
    "reveals every later day's IDs; turn it off unless Bluezone v3 phones must hear this device"
)
#: How often listeners of other adverts (venue beacons) are told the time.
LISTENER_TICK = 10.0
#: How often the rotator looks at the wall clock and the stored key (see ``Daemon._until_rotation``).
CHECK_SECONDS = 15.0
#: How long a write on the loop waits for another process's lock on the store (a ``bluezone purge`` deleting, a
#: ``sqlite3`` shell's transaction) before the store refuses it for now: what it would write waits and is tried
#: again (the sightings' backlog, a new key, a venue check-in).  The store's own 10 s stopped the loop that long at
#: each try (no advert taken from the radio, no RPI rotated): 17 of the 25 s another process held the lock.
LOOP_BUSY_SECONDS = 0.1
#: How long the stop's writes (the keys not yet saved, the sightings waiting, the report) wait in all for another
#: process's lock (a `bluezone purge`'s rewrite, a `sqlite3` shell): the store's own 10 s each, in turn, made a 31 s
#: stop, past the shipped unit's TimeoutStopSec=30 (killed: all lost, nothing said); once, then none, lost what a lock
#: released 10-20 s in would have let it write.  20 s leaves the unit 10 s for the radio's close and the exit.
STOP_BUSY_SECONDS = 20.0


@dataclass
class DaemonStats:
    """Counters since the daemon started (``daemon.stats``)."""

    adverts_received: int = 0  # handed to us by the radio
    dropped_queue_full: int = 0  # lost because the writer fell behind
    malformed: int = 0  # wrong UUID, length or RSSI: never stored
    sightings_stored: int = 0
    bluezone3_sightings_stored: int = 0
    bluezone3_ids_sent: int = 0  # Bluezone v3 ID changes (only with bluezone3 advertising on)
    flushes: int = 0
    rpi_rotations: int = 0
    daily_keys_generated: int = 0
    daily_keys_loaded: int = 0
    purged_sightings: int = 0
    write_failures: int = 0  # writes the store refused for now (disk full, I/O, lock); retried
    dropped_backlog_full: int = 0  # lost because more than backlog_size sightings waited for the store
    dropped_over_budget: int = 0  # not stored: past max_rpis_per_minute distinct RPIs (or v3 IDs) in a minute
    lost_at_stop: int = 0  # still waiting for the store when the daemon stopped (a full disk to the end): never written

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def lost(self) -> int:
        """Sightings heard and never stored for want of room: the writer behind, the backlog full, or the store
        refusing them to the end (the budget's are left out on purpose)."""
        return self.dropped_queue_full + self.dropped_backlog_full + self.lost_at_stop


class Daemon:
    """One device's proximity daemon over a radio, a store and a clock."""

    def __init__(
        self,
        radio: Radio,
        store: SightingStore,
        clock: Clock,
        config: DaemonConfig | None = None,
        *,
        rng: random.Random | None = None,
        on_status: Callable[[str], None] | None = None,
        on_started: Callable[[], None] | None = None,
        key_factory: Callable[[float], DailyKey] = DailyKey.generate,
        bluezone3: bool = False,
        listeners: Sequence[AdvertListener] = (),
    ) -> None:
        self.radio = radio
        self.store = store
        self.clock = clock
        self.config = config or DaemonConfig()
        # rotation times must not be predictable by others: the OS CSPRNG unless a test seeds one
        self.rng = rng or random.SystemRandom()
        self.on_status = on_status or (lambda line: log.info("%s", line))
        self.on_started = on_started  # called once the radio advertises and scans
        self.key_factory = key_factory
        self.bluezone3 = bluezone3  # also send Bluezone v3 IDs (opt-in: see docs/bluezone3.md)
        # adverts of other services (venue beacons) go to their listener, not to the sighting store
        self.listeners = {listener.service_uuid.lower(): listener for listener in listeners}
        self.bluezone3_id: bytes | None = None  # the v3 ID on air (tests; never logged)
        self._bluezone3_used_day: int | None = None  # the UTC day the store last heard the chain was used
        self.stats = DaemonStats()
        self.key: DailyKey | None = None
        self.rpi: bytes | None = None  # what we advertise now (tests; never logged)
        self.rotations: list[tuple[float, int]] = []  # (time, interval) of each RPI change
        self._derived: tuple[bytes, bytes] = (b"", b"")  # RPIK, AEMK of self.key
        self._queue: asyncio.Queue[Advert] | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._opening: asyncio.Task[object] | None = None  # run() while it waits for the radio's open: a stop cancels it
        self._last_status = (0.0, 0)
        self._clock_seen: float | None = None  # the clock at the last purge tick (see _purge)
        self._purge_held = False  # the last purge tick was postponed
        self._reported_step = False  # the last report carried a step of the wall clock not believed
        self._reported_line: Line | None = None  # what the clock believed in this boot, as the last report carried it
        self._reported_hold: Hold | None = None  # where the step not believed began to hold, as the last report carried it
        # what the store could not take yet (a full disk): kept, bounded, and written when it can
        self._backlog = WriteBacklog(self.config.backlog_size, min_delay=self.config.flush_interval)
        # what a flood of new RPIs can make us store (budget.py); v3 IDs have a budget of their own
        self._budgets = {
            "gaen": RpiBudget(self.config.max_rpis_per_minute, "rpi", "RPIs"),
            "bluezone3": RpiBudget(self.config.max_rpis_per_minute, "bzid", "Bluezone v3 IDs"),
        }
        self._unsaved_keys: list[tuple[DailyKey, float]] = []  # on air, not yet in the store (oldest first)
        self._unsaved_bluezone3_key: tuple[int, bytes, float] | None = None  # a new v3 chain on air, not yet in the store
        # their saves tried again as the backlog's are: each try under a lock held elsewhere stops the loop up to
        # LOOP_BUSY_SECONDS, so not at every flush
        self._key_retry = Backoff(min_delay=self.config.flush_interval)
        # the report a refused save still owes (a clock step in it: commands purge by it), tried again the same way
        self._state_owed = False
        self._state_retry = Backoff(min_delay=self.config.flush_interval)
        self._refusal: str | None = None  # why the store last refused a write (said with what a stop loses)
        self._stop_deadline: float | None = None  # (monotonic) when the stop's writes stop waiting for a lock
        self._rewrite_due: str | None = None  # the day a purge left the store's rewrite due for (``_rewrite_apart``)
        self._rewriting: asyncio.Future[bool] | None = None  # that rewrite, running (its VACUUM holds the store's lock)
        self._rewrite_wake: asyncio.Event | None = None  # wakes the purge task for a rewrite asked (``_look_for_rewrite``)
        self._ask_taken = False  # a rewrite asked is under way or could not run (no room: left to the day's rewrite)
        # a listener's adverts heard meanwhile: its own handling writes (a check-in its dwell earned), so they wait
        self._held_for_listeners: list[tuple[AdvertListener, Advert]] = []

    # --- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to flush and return (safe from a signal handler on the loop)."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()
        if self._opening is not None:
            self._opening.cancel()

    async def run(self, duration: float | None = None) -> DaemonStats:
        """Run until ``stop()`` or for ``duration`` seconds of the clock from this call, the radio's open included (a
        controller slow to answer, bumble's power-on: up to 10 s, does not lengthen the run); returns the counters."""
        self._queue = asyncio.Queue(self.config.queue_size)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._rewrite_wake = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        ends = None if duration is None else asyncio.get_running_loop().time() + duration
        if not await self._radio_opened(ends):  # stopped (or the run's time up) as it opened: nothing begun or to flush
            return self.stats
        started = False
        try:
            if self._stop_requested:  # asked as the radio (or the store) opened: nothing begun, nothing to flush
                return self.stats
            started = True
            with self.store.waits_at_most(LOOP_BUSY_SECONDS):  # (its last writes, below, wait STOP_BUSY_SECONDS in all)
                await self._serve(ends)
        finally:
            try:
                await self.radio.close()
            finally:
                if started:
                    self._last_writes()  # the radio is closed: nothing more can arrive
        log.info("daemon stopped: %s", self._status_line())
        return self.stats

    def _last_writes(self) -> None:
        """The stop's writes: the unsaved keys, the backlog, the report.  Another process's lock is waited for at most
        ``STOP_BUSY_SECONDS`` in all, each write what is left of it (``_stop_waits``).  What the store refused is
        lost: said in one line (no backlog warning of a retry before it)."""
        self._stop_deadline = time.monotonic() + STOP_BUSY_SECONDS
        self._flush(final=True)
        with self._stop_waits():
            self._save_state(final=True)
        lost = [f"{self._backlog.waiting} sightings"] if self._backlog.waiting else []
        days = [_day(key.rolling_start * INTERVAL_SECONDS) for key, _ in self._unsaved_keys]
        if days:  # (a day, never a key)
            lost.append(f"the daily key of {' and '.join(days)} (sent, never saved: no upload can send it)")
        if self._unsaved_bluezone3_key is not None:
            lost.append("the new Bluezone v3 key chain (sent, never saved)")
        if self._state_owed:
            lost.append("the daemon's report (status shows the one before)")
        if lost:
            log.error("the store refused the stop's writes (%s): lost %s", self._refusal, ", ".join(lost))

    async def _serve(self, ends: float | None) -> None:
        """Begin (the start's purge, the key, the first RPI, scanning) and run the tasks until the stop or the loop's
        time ``ends``, every write on the loop waiting at most ``LOOP_BUSY_SECONDS`` for another process's lock."""
        assert self._stop is not None
        now = self.clock.now()
        # a start purges at the clock, as every command that opens the store does: this process has no
        # earlier reading to doubt it by (the newest record of a daemon stopped a week is a week old,
        # and holding made a restarted daemon keep expired rows for a purge interval)
        self._clock_seen = now
        self._purge(now)
        self._use_key_for(now)
        await self._rotate_rpi()
        if self.bluezone3:
            await self._send_bluezone3(now)
        await self.radio.start_scanning(self._on_advert)
        self._save_state()
        self._last_status = (now, self.stats.sightings_stored)
        if self.on_started is not None:
            self.on_started()
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._writer(), name="bluezone-writer"),
                    tg.create_task(self._rotator(), name="bluezone-rotator"),
                    tg.create_task(self._every(self.config.status_interval, self._status), name="bluezone-status"),
                    tg.create_task(self._purges(), name="bluezone-purge"),
                ]
                if self.bluezone3:
                    tasks.append(tg.create_task(self._bluezone3_rotator(), name="bluezone-v3-rotator"))
                if self.listeners:
                    tasks.append(tg.create_task(self._every(LISTENER_TICK, self._tick_listeners), name="bluezone-listeners"))
                try:
                    async with asyncio.timeout_at(ends):
                        await self._stop.wait()
                except TimeoutError:
                    pass
                for t in tasks:
                    t.cancel()
        except BaseExceptionGroup as group:
            # one failing task is the usual case: surface it as itself (the CLI prints one line)
            errors = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
            if len(errors) == 1:
                raise errors[0] from None
            raise

    async def _radio_opened(self, ends: float | None) -> bool:
        """Open the radio unless a stop comes first, or the loop's time ``ends`` (the run's duration up): a controller
        that never answers (bumble waits for its power-on, a silent TCP or serial transport) held the daemon's stop,
        and since SIGTERM again is the same stop only SIGKILL ended it (attack27); and ``run --duration 5`` on one
        slow to answer ran on for 5 s after its open.  The open runs in ``run``'s own task, which ``stop`` cancels
        meanwhile (in a task of its own it would end a loop step later, and that step moved what a virtual clock's
        tests saw).  Whether it opened; one stopped half-way is closed."""
        if self._stop_requested:  # (asked before the run: nothing to open)
            return False
        task = asyncio.current_task()
        assert task is not None
        self._opening = task
        timeout = asyncio.timeout_at(ends)
        try:
            async with timeout:
                await self.radio.open()
            return True
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise
            task.uncancel()  # (the stop's cancel, taken here)
        except TimeoutError:
            if not timeout.expired():  # (the radio's own)
                raise
        finally:
            self._opening = None
        await self.radio.close()
        return False

    @property
    def _store_held(self) -> bool:
        """Whether the day's rewrite holds the store (its VACUUM, in a thread, has the write lock): every write of
        the daemon waits for its end (sightings in the backlog, a new daily key or v3 chain unsaved, a listener's
        adverts and the report held), since on the loop it would wait for that lock, receiving nothing, and be refused
        (``LOOP_BUSY_SECONDS``) try after try until its end."""
        return self._rewriting is not None

    # --- keys and RPIs ----------------------------------------------------------------------------

    def _use_key_for(self, now: float) -> None:
        """The key valid now: the stored one if any (a restart, or another process's change),
        else a new one, saved.  Called at start and before every RPI rotation, so a key whose
        period was cut short (released early) is replaced by a key for the rest of the day."""
        interval = self._interval_at(now)
        key = self._key_covering(interval)
        if key is not None:
            if key != self.key:
                self.stats.daily_keys_loaded += 1
        else:
            key = self.key_factory(now)
            day = rolling_start(now)
            if self.store.key_for_day(day) is not None or not key.covers(interval):
                key = DailyKey(key.key, interval, day + ROLLING_PERIOD - interval)
            if self._store_held:  # (saved at the first flush after the rewrite)
                self._unsaved_keys.append((key, now))
            else:
                try:
                    self.store.save_daily_key(key, created_at=now)
                except StoreWriteError as exc:  # a full disk: advertise it anyway, save it when the store can
                    self._unsaved_keys.append((key, now))
                    self._key_retry.failed(now)
                    log.warning("cannot save the new daily key yet (%s); it is on air and saved later", exc)
            self.stats.daily_keys_generated += 1
            log.info("new daily key for %s", _day(now))
        if key != self.key:
            self.key = key
            self._derived = (rpi_key(key.key), aem_key(key.key))

    def _key_covering(self, interval: int) -> DailyKey | None:
        """The stored key valid at ``interval``, or the new key the store could not take yet."""
        stored = self.store.key_covering(interval)
        for pending, _ in reversed(self._unsaved_keys):
            if pending.covers(interval) and (stored is None or stored.rolling_start < pending.rolling_start):
                return pending
        return stored

    def _save_unsaved_keys(self, now: float) -> None:
        """Save every key sent while the store refused it (a disk full over several midnights
        leaves one per day: each must reach an upload), and a v3 chain begun meanwhile; a refusal
        backs off the next try (``_key_retry``)."""
        if self._unsaved_bluezone3_key is not None:
            day, chain, begun = self._unsaved_bluezone3_key
            try:
                self.store.save_bluezone3_key(day, chain, begun)
                self._unsaved_bluezone3_key = None
                self._bluezone3_used_day = day
            except StoreWriteError as exc:
                log.debug("the new Bluezone v3 key chain waits for the store: %s", exc)
                self._key_retry.failed(now)
                self._refusal = str(exc)
                return
        while self._unsaved_keys:
            key, created = self._unsaved_keys[0]
            try:
                self.store.save_daily_key(key, created_at=created)
            except StoreWriteError as exc:
                self._key_retry.failed(now)
                self._refusal = str(exc)
                return
            self._unsaved_keys.pop(0)
            log.info("a daily key sent while the store refused writes is saved now")
        self._key_retry.succeeded()

    def _interval_at(self, now: float) -> int:
        """The interval whose key should be on air: never one before the key already on air, so a
        wall clock stepped back (NTP) cannot bring an older key, or a released one, back on air."""
        interval = interval_number(now)
        return interval if self.key is None else max(interval, self.key.rolling_start)

    async def _rotate_rpi(self, when: float | None = None) -> None:
        assert self.key is not None
        now = self.clock.now() if when is None else when
        # at a key change the clock may read a hair before the new key's first interval
        interval = min(max(interval_number(now), self.key.rolling_start), self.key.end - 1)
        rpik, aemk = self._derived
        value = rpi(rpik, interval)
        metadata = bytes(Metadata(self.config.tx_power))
        await self.radio.advertise(value + aem(aemk, value, metadata), self.config.tx_power)
        self.rpi = value
        self.rotations.append((now, interval))
        self.stats.rpi_rotations += 1
        log.debug("RPI rotated at interval %d", interval)

    async def _rotator(self) -> None:
        cfg = self.config
        while True:
            next_rpi = self.clock.now() + self.rng.uniform(cfg.rpi_rotation_min, cfg.rpi_rotation_max)
            when = await self._until_rotation(next_rpi)
            self._use_key_for(when)
            await self._rotate_rpi(when)

    async def _until_rotation(self, next_rpi: float) -> float:
        """Wait until the next RPI is due or the key ends; returns the moment to rotate at.

        Looks at the wall clock and the stored key every ``CHECK_SECONDS``: asyncio's clock stands
        still while the machine is suspended (yesterday's key must not outlive a night with the lid
        shut), and ``bluezone upload`` in another process may have released today's key, whose
        last RPI must leave the air when its cut period ends, before the server publishes it."""
        while True:
            assert self.key is not None
            now = self.clock.now()
            stored = self._key_covering(self._interval_at(now))
            if stored is None or stored.key != self.key.key:
                return now  # the key is over (a suspend, a cut in the past): the right one now
            self.key = stored  # its period may have been cut since
            key_end = stored.end * INTERVAL_SECONDS
            if now >= next_rpi:
                return now
            if key_end <= next_rpi and now >= key_end - 1e-6:
                return max(now, key_end)  # (float arithmetic may land a hair early: act at the end)
            # a cut always ends on an interval boundary: look again there, not up to CHECK_SECONDS later
            boundary = (interval_number(now) + 1) * INTERVAL_SECONDS
            await asyncio.sleep(max(min(CHECK_SECONDS, boundary - now, next_rpi - now, key_end - now), 1e-3))

    # --- Bluezone v3 (opt-in) -------------------------------------------------------------------

    def _bluezone3_key_for(self, now: float) -> bytes:
        """Today's Bluezone v3 daily key: the stored chain start hashed forward, or a new random chain.

        The store keeps the daily key of the oldest day within the retention (moved forward as
        days are purged), so ``bluezone keys export --protocol bluezone3`` can list those days."""
        day = int(now // DAY_SECONDS)
        unsaved = self._unsaved_bluezone3_key
        stored = self.store.bluezone3_key() if unsaved is None else unsaved[:2]
        if stored is not None and stored[0] <= day:
            if self._bluezone3_used_day != day and not self._store_held and unsaved is None:
                with contextlib.suppress(StoreWriteError):  # (a full disk: tried again at the next look)
                    self.store.mark_bluezone3_key_used(now)  # once a day: the chain is in use, keep it
                    self._bluezone3_used_day = day
            return bz3.daily_key(stored[1], day - stored[0])
        # none yet, or a clock stepped back before the chain's first day: start a new chain, on air at once and saved
        # as a new daily key is (after the rewrite, once a full disk has room; until then it is the chain looked at)
        key = os.urandom(bz3.DAILY_KEY_LENGTH)
        self._unsaved_bluezone3_key = (day, key, now)
        if not self._store_held:
            self._save_unsaved_keys(now)
        log.info("new Bluezone v3 key chain")
        return key

    async def _send_bluezone3(self, now: float) -> None:
        key = self._bluezone3_key_for(now)
        slot = bz3.slot_of(now)
        value = bz3.ids_for_keys([key], slot + 1)[0, slot].tobytes()
        if value != self.bluezone3_id:
            await self.radio.advertise_bluezone3(value, self.config.tx_power)
            self.bluezone3_id = value
            self.stats.bluezone3_ids_sent += 1

    async def _bluezone3_rotator(self) -> None:
        """Change the v3 ID on the app's fixed UTC grid (every 15 minutes), looking at the wall
        clock at least every CHECK_SECONDS so a suspend cannot keep an old ID on air."""
        step = bz3.slot_ms() / 1000
        while True:
            now = self.clock.now()
            boundary = (now // step + 1) * step
            await asyncio.sleep(max(min(CHECK_SECONDS, boundary - now), 1e-3))
            await self._send_bluezone3(self.clock.now())

    # --- ingest -------------------------------------------------------------------------------------

    def _on_advert(self, advert: Advert) -> None:
        """The radio's callback: O(1), never blocks."""
        self.stats.adverts_received += 1
        if self.listeners:
            listener = self.listeners.get(advert.service_uuid.lower())
            if listener is not None:
                if not self._store_held:
                    listener.on_advert(advert)
                elif len(self._held_for_listeners) < self.config.queue_size:  # (replayed in order after it)
                    self._held_for_listeners.append((listener, advert))
                else:
                    self.stats.dropped_queue_full += 1
                return
        assert self._queue is not None and self._wake is not None
        try:
            self._queue.put_nowait(advert)
        except asyncio.QueueFull:
            self.stats.dropped_queue_full += 1
            return
        if self._queue.qsize() >= self.config.flush_size:
            self._wake.set()

    async def _writer(self) -> None:
        assert self._wake is not None
        while True:
            try:
                async with asyncio.timeout(self.config.flush_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._flush()
            self._report_clock_step()
            self._look_for_rewrite()

    def _flush(self, final: bool = False) -> None:
        """Write everything queued, one transaction per table; what the store refuses for now
        (a full disk) waits in the bounded backlog for the next try (``final``: the last one)."""
        q = self._queue
        if q is not None and not q.empty():
            batch = [q.get_nowait() for _ in range(q.qsize())]
            ingested = adverts_to_sightings(batch)
            self.stats.malformed += ingested.malformed
            if ingested.malformed:
                log.debug("dropped %d malformed adverts", ingested.malformed)
            for kind, rows, addresses in (
                ("gaen", ingested.sightings, ingested.addresses),
                ("bluezone3", ingested.bluezone3, ingested.bluezone3_addresses),
            ):
                self._backlog.add(kind, *self._budgets[kind].filter(rows, addresses))
            self.stats.dropped_over_budget = sum(b.dropped for b in self._budgets.values())
        if self._store_held and not final:  # they wait in the backlog, written after it
            self.stats.dropped_backlog_full = self._backlog.dropped
            return
        now = self.clock.now()
        if final or self._key_retry.due(now):  # (a device that hears no one has no backlog to retry with)
            with self._stop_waits():
                self._save_unsaved_keys(now)
        if not (self._backlog.due(now) or (final and self._backlog.waiting)):
            self.stats.dropped_backlog_full = self._backlog.dropped
            return
        with self._stop_waits():
            written = self._backlog.write(self._write, now, last=final)
        self._refusal = self._backlog.error or self._refusal
        self.stats.sightings_stored += written.get("gaen", 0)
        self.stats.bluezone3_sightings_stored += written.get("bluezone3", 0)
        self.stats.write_failures = self._backlog.failures
        self.stats.dropped_backlog_full = self._backlog.dropped
        if written:
            self.stats.flushes += 1
        if final and self._backlog.waiting:
            self.stats.lost_at_stop = self._backlog.waiting  # (said by _last_writes)

    def _stop_waits(self) -> contextlib.AbstractContextManager[object]:
        """At the stop, a write waits for another process's lock only what is left of the stop's ``STOP_BUSY_SECONDS``
        (SQLite waits in real time: the monotonic clock, not the daemon's); before it, the connection's own wait."""
        if self._stop_deadline is None:
            return contextlib.nullcontext()
        return self.store.waits_at_most(max(0.0, self._stop_deadline - time.monotonic()))

    def _write(self, kind: str, rows: np.ndarray, addresses: Sequence[str | None]) -> int:
        what = "sightings" if kind == "gaen" else "Bluezone v3 sightings"
        # which adapter heard them ("": one that cannot say), so that a check corrects only the calibrated one's
        adapter = self.radio.adapter_address or ""
        try:
            if kind == "gaen":
                return self.store.add_sightings(rows, addresses, adapter)
            return self.store.add_bluezone3_sightings(rows, addresses, adapter)
        except StoreWriteError:
            raise  # the backlog keeps them and tries again
        except Exception as exc:
            raise BluezoneError(f"cannot write {what} to {self.store.path}: {exc}") from exc

    # --- housekeeping ----------------------------------------------------------------------------------

    async def _every(self, seconds: float, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            job()

    def _tick_listeners(self) -> None:
        if self._store_held:  # (their check-ins wait for the next tick after the rewrite)
            return
        now = self.clock.now()
        for listener in self.listeners.values():
            listener.tick(now)

    def _purge_now(self) -> None:
        self._purge(self.clock.now())

    async def _purges(self) -> None:
        """A purge every ``purge_interval``, and the rewrite one left due (the day's first, or the start's) in a
        thread: on the loop, the VACUUM stopped it for its whole length (at 1M sightings up to 3 s on a loaded Xeon,
        an estimated 4-8 s on a Raspberry Pi 4's SD card), during which no advert was taken from the radio."""
        assert self._rewrite_wake is not None
        while True:
            if self._rewrite_due is not None:
                await self._rewrite_apart(self._rewrite_due)
            try:
                async with asyncio.timeout(self.config.purge_interval):
                    await self._rewrite_wake.wait()
                self._rewrite_wake.clear()  # (asked: the rewrite now, the next purge an interval on)
            except TimeoutError:
                self._purge_now()

    def _look_for_rewrite(self) -> None:
        """The rewrite ``bluezone purge`` asked for (``rewrite_asked``), run in the thread now, not at the next
        purge's (an hour on): the command's own VACUUM held the store's lock, and the writes on the loop waited."""
        if self._rewrite_due is not None or self._store_held or self._rewrite_wake is None or self._ask_taken:
            return
        try:
            due = self.store.rewrite_asked(self.clock.now(), self.config.retention_days)
        except StoreWriteError:  # (a lock held past LOOP_BUSY_SECONDS: the next flush looks again)
            return
        if due is not None:
            self._rewrite_due, self._ask_taken = due, True  # (not looked for again until a rewrite is done, ask and all)
            self._rewrite_wake.set()

    async def _rewrite_apart(self, day: str) -> None:
        """The store's rewrite in a thread, on a connection of its own; meanwhile the loop receives and the writer
        keeps what it gets (in the bounded backlog; so do the report, a new key and the listeners' adverts, whose
        handling may write a check-in),
        written once it is done: the VACUUM holds the store's lock, which they would wait for.  A stop ends it
        (rolled back, still owed) and waits for its thread before the final flush."""
        self._rewrite_due = None
        stopping = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(self.store.rewrite_apart, day, stopping))
        self._rewriting = work
        try:
            await asyncio.shield(work)
        finally:
            if not work.done():  # cancelled: the daemon stops
                stopping.set()
                await asyncio.wait({work})
            self._rewriting = None
            if not work.cancelled() and work.exception() is None and work.result():
                self._ask_taken = False
            held, self._held_for_listeners = self._held_for_listeners, []
            for listener, advert in held:  # as heard: a listener goes by each advert's time, not the clock's
                listener.on_advert(advert)
        self._save_state()
        assert self._wake is not None
        self._wake.set()  # what waited is written now

    def _purge(self, now: float) -> None:
        """Delete what is older than the retention, but not on a clock reading that just jumped:
        a glitch ahead (a bad RTC, an NTP step) would take every sighting and this device's own
        daily keys at once.  A purge that finds the clock far past its last reading (``run`` starts
        with its first reading; before it, the newest record) waits one tick; the next purges whatever it reads."""
        previous = self._clock_seen if self._clock_seen is not None else self.store.newest_time()
        self._clock_seen = now
        if previous is not None and now > previous + 2 * self.config.purge_interval + 60 and not self._purge_held:
            # once: the next tick purges either way (the glitch is over, or the time was real: a laptop
            # that suspends between ticks would otherwise never purge)
            self._purge_held = True
            log.warning(
                "clock jumped %.0f s ahead of the last reading; purge postponed to the next tick", now - previous
            )
            return
        self._purge_held = False
        try:
            result = self.store.purge(now, self.config.retention_days, rewrite="apart")
        except StoreWriteError as exc:  # a full disk: deleting needs room in the journal too; next tick
            log.warning("retention purge postponed: %s", exc)
            return
        self.stats.purged_sightings += result["sightings_deleted"]
        self._rewrite_due = self.store.rewrite_due(now, self.config.retention_days)

    def _report_clock_step(self) -> None:
        """A step of the wall clock not believed (or believed again) reported within a flush, not at the next
        status line: a command opening the store meanwhile purges at the time the report says, and without
        it purged at the stepped clock (a year ahead: every sighting).  So is a new line of what the clock believes
        (its first anchor, a step believed): a daemon restarted in this boot counts on from it; and where a step not
        believed began to hold (again: the kernel said unsynchronised), which a command judges the step by."""
        clock = self.clock
        news = isinstance(clock, CheckedClock) and (
            (clock.mark() is not None) != self._reported_step or clock.line() != self._reported_line
            or clock.held() != self._reported_hold
        )
        if news or self._state_owed:
            self._save_state()

    def _status(self) -> None:
        self.on_status(self._status_line())
        self._save_state()

    def _save_state(self, final: bool = False) -> None:
        """Leave the radio's health and our counters where ``bluezone status`` can read them (after the rewrite,
        while one runs: ``_rewrite_apart`` saves it then).  One the store refuses for now (another process's lock, a
        full disk) is owed, and tried again at a flush once ``_state_retry`` says (``final``: the last, at the stop)."""
        if self._store_held or not (final or self._state_retry.due(self.clock.now())):
            return
        health = self.radio.health()
        state = {
            "backend": self.radio.name,
            "rotates_address": bool(health.get("rotates_address", self.radio.rotates_address)),
            "tx_power": self.config.tx_power,
            "rssi_correction": self.config.rssi_correction,
            "calibration": self.config.calibration,
            "calibration_adapter": self.config.calibration_adapter,
            "adapter_address": self.radio.adapter_address,
            "radio": health,
            "counters": self.stats.as_dict(),
            "backlog": self._backlog.as_dict(),
        }
        clock = self.clock
        mark = clock.mark() if isinstance(clock, CheckedClock) else None
        if mark is not None and isinstance(clock, CheckedClock):  # a command opening the store meanwhile purges at
            state["clock"] = {  # this measured time too (store.open), and a restarted daemon counts from it
                "off_by": clock.off_by, "measured": mark[0], "boot_seconds": mark[1], "boot_id": boot_id(),
                "hold": clock.held(),  # a restarted daemon holds on from it; a command believes the step once it held
            }
        hold = clock.held() if isinstance(clock, CheckedClock) else None
        line = clock.line() if isinstance(clock, CheckedClock) else None
        if line is not None:  # a daemon restarted in this boot counts on from it (the bound on believed steps is the boot's)
            state["clock_line"] = {**dict(zip(LINE_PARTS, line)), "boot_id": boot_id()}
        now = self.clock.now()
        try:
            self.store.save_daemon_state(state, now)
        except Exception as exc:  # status is best effort, sightings are what must not be lost; a lock held past
            # LOOP_BUSY_SECONDS stops the loop that long at each try, so not at every flush; a stop's, with what it loses
            if not (self._state_owed or final):
                log.warning("cannot record daemon state yet (%s); tried again", exc)
            self._state_owed = True
            self._state_retry.failed(now)
            self._refusal = str(exc)
            return
        if self._state_owed:
            log.info("daemon state recorded again")
        self._state_owed = False
        self._state_retry.succeeded()
        self._reported_step, self._reported_hold, self._reported_line = mark is not None, hold, line

    def _status_line(self) -> str:
        now = self.clock.now()
        then, stored_then = self._last_status
        self._last_status = (now, self.stats.sightings_stored)
        minutes = max(now - then, 1e-9) / 60.0
        rate = (self.stats.sightings_stored - stored_then) / minutes
        s = self.stats
        day = _day(self.key.rolling_start * INTERVAL_SECONDS) if self.key else "-"
        keys = self.store.count_daily_keys()
        return (
            f"{datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S} UTC  daily keys {keys} (in use: {day})  "
            f"RPIs sent {s.rpi_rotations}  sightings {s.sightings_stored} ({rate:.0f}/min)  "  # ("RPIs 1" read as one heard)
            + (f"Bluezone v3 {s.bluezone3_sightings_stored}  " if s.bluezone3_sightings_stored or self.bluezone3 else "")
            + f"queued {self._queue.qsize() if self._queue else 0}  malformed {s.malformed}  "
            f"dropped {s.dropped_queue_full}"
            + (f"  over the RPI budget {s.dropped_over_budget}" if s.dropped_over_budget else "")
            + (
                f"  STORE REFUSES WRITES ({self._backlog.error}): {self._backlog.waiting} sightings waiting in memory"
                f" (at most {self._backlog.limit}), {self._backlog.dropped} dropped, retrying"
                if self._backlog.error
                else ""
            )
        )


def _day(t: float) -> str:
    return datetime.fromtimestamp(t // DAY_SECONDS * DAY_SECONDS, UTC).strftime("%Y-%m-%d")
