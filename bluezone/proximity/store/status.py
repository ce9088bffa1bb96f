"""What ``bluezone status`` shows: the daemon's last report, and the store's counts, span and size."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from bluezone.boottime import (
    BELIEVED_STEP,
    HOLD_SECONDS,
    LINE_PARTS,
    STEP_TOLERANCE,
    Hold,
    Line,
    Reading,
    boot_id,
    boot_seconds,
    kernel_clock_synced,
    on_line,
)
from bluezone.crypto.intervals import DAY_SECONDS, interval_number
from bluezone.proximity.store.base import StoreBase
from bluezone.proximity.store.daemonlock import daemon_runs_on
from bluezone.proximity.store.schema import NUMERIC_TIME, VACUUM_OWED

log = logging.getLogger(__package__)  # the store's one logger, as before it was a package


def _reading(value: Any) -> Reading:
    """A kept (wall, boot seconds) pair, refused (ValueError) unless two finite numbers: a damaged "nan" would count
    from a time that is no time."""
    wall, steady = (float(v) for v in value)
    if not (math.isfinite(wall) and math.isfinite(steady)):
        raise ValueError(value)
    return wall, steady


class StoreStatus(StoreBase):
    """The daemon's report, kept for ``status``, and ``stats``."""

    def save_daemon_state(self, state: dict[str, Any], now: float) -> None:
        """Record the daemon's latest report (radio backend, health counters, daemon counters)."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO daemon_state (name, value, updated_at) VALUES ('daemon', ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (json.dumps(state, default=str), float(now)),
            )

    def holds_nothing(self) -> bool:
        """Whether no table holds a row but the daemon's report: a store a run made can go without a loss only then
        (another command may have written a check-in or a key server's pin in it meanwhile)."""
        tables = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'daemon_state'"
        ).fetchall()
        return not any(self._conn.execute(f"SELECT EXISTS (SELECT 1 FROM [{name}])").fetchone()[0] for (name,) in tables)

    def daemon_state(self) -> dict[str, Any] | None:
        """The daemon's latest report with its ``updated_at``, or None if no daemon ran here."""
        row = self._conn.execute("SELECT value, updated_at FROM daemon_state WHERE name = 'daemon'").fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[0])
            return {**state, "updated_at": float(row[1])}
        except (TypeError, ValueError):  # advisory only: a damaged report must not hide the rest
            log.warning("the daemon's last report in %s cannot be read; ignored", self.path)
            return None

    def measured_clock(self) -> tuple[float, float] | None:
        """(the time the daemon measured, ``boot_seconds`` then) from its last report, when it did not believe a
        step of the wall clock (``CheckedClock``) in this boot; else None."""
        clock = (self.daemon_state() or {}).get("clock")
        if not isinstance(clock, dict):
            return None
        try:
            if clock["boot_id"] and clock["boot_id"] == boot_id():
                mark = float(clock["measured"]), float(clock["boot_seconds"])
                if all(math.isfinite(v) for v in mark):  # a damaged "nan" would purge at a time that is no time
                    return mark
        except (KeyError, TypeError, ValueError):
            pass
        return None

    def clock_hold(self) -> Hold | None:
        """Where the step the daemon did not believe began to hold (``CheckedClock.held``), from its last report of
        this boot; None without one, or a damaged one."""
        clock = (self.daemon_state() or {}).get("clock")
        if not isinstance(clock, dict) or not clock.get("boot_id") or clock.get("boot_id") != boot_id():
            return None
        try:
            return None if clock.get("hold") is None else _reading(clock["hold"])
        except (TypeError, ValueError):
            return None

    def believed_line(self) -> Line | None:
        """What the daemon's clock believed in this boot (``CheckedClock.line``), from its last report; None from
        another boot (its boot clock measures nothing against ours), a report without one, or a damaged one."""
        kept = (self.daemon_state() or {}).get("clock_line")
        if not isinstance(kept, dict) or not kept.get("boot_id") or kept.get("boot_id") != boot_id():
            return None
        try:
            anchor, origin, left = (None if kept[name] is None else _reading(kept[name]) for name in LINE_PARTS)
        except (KeyError, TypeError, ValueError):
            return None
        return None if anchor is None else (anchor, origin, left)

    def clock_step(self, now: float) -> float | None:
        """How far ``now`` reads from the time the daemon measured while it did not believe a step of this boot's
        wall clock; None when there is no such mark or ``now`` agrees with it again (a stopped daemon's old mark
        after the clock was put right: ``status`` and ``doctor`` warned from it for the rest of the boot).  Without a
        mark, how far ``now`` reads from the daemon's line where no daemon would believe it (``_past_the_bound``)."""
        mark = self.measured_clock()
        if mark is None:
            return self._past_the_bound(now)
        step = now - (mark[0] + boot_seconds() - mark[1])
        return step if abs(step) > STEP_TOLERANCE and not self._held_long_enough(now) else None

    def _held_long_enough(self, now: float) -> bool:
        """Whether ``now`` keeps to the step the daemon was holding (``clock_hold``) and has for ``HOLD_SECONDS``,
        within the bound of the boot's line, the kernel saying synchronised now: what the daemon would believe.  A
        daemon stopped mid-hold left commands on the measured time for the rest of the boot (up to 3 days behind:
        purging late, "clock NOT BELIEVED"), though without its report they believe such a step at once.  A running
        daemon reports a hold begun again (the kernel said unsynchronised) within a flush; while none runs nobody
        asked, so the kernel is asked here, as a daemon restarted then asks it first: a date set by hand keeps it
        unsynchronised, and believed without asking, it purged up to 3 days early a step no daemon believed."""
        hold, line, steady = self.clock_hold(), self.believed_line(), boot_seconds()
        if hold is None or line is None or not hold[1] <= steady - HOLD_SECONDS or not on_line(hold, now, steady):
            return False
        start = line[1] or line[0]  # where the boot's believed steps began: they add up from it
        return 0 < now - (start[0] + steady - start[1]) <= BELIEVED_STEP and kernel_clock_synced()

    def _past_the_bound(self, now: float) -> float | None:
        """How far ``now`` reads from the time measured on the line the daemon believed in this boot, where it lies
        further ahead than any step the daemon could believe (``BELIEVED_STEP`` past where its believed steps began):
        a daemon stopped while it believed the clock, then a bad answer a year ahead, and the first command purged
        every sighting and this device's daily keys.  None otherwise: within the bound only the daemon can tell a
        pause put right from a bad answer (the hold)."""
        line = self.believed_line()
        if line is None:
            return None
        anchor, origin, _ = line
        start, steady = origin or anchor, boot_seconds()
        if max(start[1], anchor[1]) > steady or now - (start[0] + steady - start[1]) <= BELIEVED_STEP + STEP_TOLERANCE:
            return None  # (a line read later than now is none of this boot's: damaged)
        return now - (anchor[0] + steady - anchor[1])

    def believed_time(self, now: float, *, quiet: bool = False) -> float:
        """``now``, unless the daemon does not believe the wall clock (it stepped since it was synchronised in this boot): then the
        time it measured, so that a command opening the store meanwhile purges no more than the daemon does
        (``quiet``: the open said so already)."""
        step = self.clock_step(now)
        if step is None:
            return now
        if not quiet:
            log.warning("this clock reads %+.0f s from the time the daemon measured since the clock last agreed (it stepped"
                        " since it was synchronised): the store is purged at the measured time", step)
        return now - step

    def _disk_free(self) -> int | None:
        """Free bytes where the database lives (a full disk is why writes fail)."""
        import shutil  # as failures.py: not in a check's start

        if self.path is None:
            return None
        try:
            return shutil.disk_usage(Path(self.path).resolve().parent).free
        except OSError:
            return None

    def daemon_running(self) -> bool:
        """Whether a daemon records into this store now (it holds the store's lock): the daemon's last report alone
        read the same days after it stopped, and a device left running for weeks is asked exactly that."""
        return self.path is not None and daemon_runs_on(self.path)

    def stats(self) -> dict[str, Any]:
        """What is stored: counts, time span, days covered, file size."""
        conn = self._conn
        kept = f"{NUMERIC_TIME} AND time >= ?"  # (within the retention, whatever the purge did: ``retained_since``)
        retained = [-math.inf if self.retained_since is None else self.retained_since]
        n, first, last = conn.execute(f"SELECT COUNT(*), MIN(time), MAX(time) FROM sightings WHERE {kept}", retained).fetchone()
        days = 0
        if n and last // DAY_SECONDS - first // DAY_SECONDS > 60:
            days = conn.execute(
                f"SELECT COUNT(DISTINCT CAST(time / {DAY_SECONDS} AS INTEGER)) FROM sightings WHERE {kept}", retained
            ).fetchone()[0]
        elif n:
            # One indexed probe per UTC day in the span (at most ~15): cheap even with millions of rows.
            for day in range(int(first // DAY_SECONDS), int(last // DAY_SECONDS) + 1):
                lo = float(day * DAY_SECONDS)  # a float: a damaged time of 1e200 is no SQLite integer
                hit = conn.execute(
                    "SELECT 1 FROM sightings WHERE time >= ? AND time < ? LIMIT 1", (lo, lo + DAY_SECONDS)
                ).fetchone()
                days += hit is not None
        keys, first_key, last_key = conn.execute(  # (within the retention too: ``daily_keys``' rule)
            "SELECT COUNT(*), MIN(rolling_start), MAX(rolling_start) FROM daily_keys WHERE rolling_start + rolling_period > ?",
            (-1 if self.retained_since is None else interval_number(self.retained_since),),
        ).fetchone()
        size = 0
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                f = Path(str(self.path) + suffix)
                if f.exists():
                    size += f.stat().st_size
        return {
            "db_path": str(self.path) if self.path else ":memory:",
            "db_bytes": size,
            "schema_version": self.schema_version,
            "sightings": int(n),
            "first_sighting": first,
            "last_sighting": last,
            "days_covered": int(days),
            "daily_keys": int(keys),
            "bluezone3_sightings": int(conn.execute(f"SELECT COUNT(*) FROM bluezone3_sightings WHERE {kept}", retained).fetchone()[0]),
            "checkins": int(conn.execute("SELECT COUNT(*) FROM checkins WHERE end_time >= ?", retained).fetchone()[0]),
            "first_key_rolling_start": first_key,
            "last_key_rolling_start": last_key,
            "disk_free_bytes": self._disk_free(),
            "daemon": self.daemon_state(),
            "daemon_running": self.daemon_running(),
            # a migration's deleted secrets still in free pages (paid by an open that can write the file)
            "vacuum_owed": conn.execute("SELECT 1 FROM daemon_state WHERE name = ?", (VACUUM_OWED,)).fetchone() is not None,
            "secure_delete": self.secure_delete or self.path is None,  # False: this SQLite build cannot zero deletions
            "server_keys_unconfirmed": [
                {"server": str(server), "key_id": key_id, "given_at": float(at)}
                for server, key_id, at in conn.execute(
                    "SELECT server, key_id, given_at FROM keyserver_given_keys ORDER BY server"
                ).fetchall()
            ],
        }
