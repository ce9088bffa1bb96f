"""Whether an export may trust its clock, for ``server run``'s schedule and ``server export`` alike.

A clock read far past the last export's (an NTP step, a bad real-time clock) would delete every key
and file as past the retention, export today's keys before their validity ends, and name its files
(and keep them) a month ahead.  Such an export does nothing and says so; the next one does everything
whatever its clock reads, so a server really off for a month keeps its retention one export late.  As
the node's daemon holds its purge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.signing import Signer
from bluezone.server.storage import BatchRecord, Storage

#: Export runs remembered: a cron job's period is the longest gap between them.
KEPT_RUNS = 4
#: Leeway past two periods: a slow export, a cron job's start.
LEEWAY_SECONDS = 60.0
#: ``server export``'s exit code when it held (``ExportRun.jump``): not 0, so cron mails its one line on
#: stderr (a held export under cron exited 0 and said so only in the log nobody reads), not 1 or 2 (a failure,
#: a usage error), so a wrapper can tell "nothing done this time, by design" from them.
HELD_EXIT = 3
#: The shortest period read from ``server export``'s runs: one run by hand at odd hours is not held
#: (a jump under two days deletes little that would not go within those days anyway).
MIN_READ_PERIOD = DAY_SECONDS


def clock_jump(now: float, runs: Sequence[float], every: float | None = None) -> float | None:
    """Seconds ``now`` is past the last of ``runs`` if more than two periods and a minute, else None.

    ``every``: the schedule's period (``server run --export-every``); None (``server export`` from
    cron or by hand, whose period nobody states): the longest gap between ``runs``, so a weekly job is
    not held for running weekly, and at least ``MIN_READ_PERIOD``."""
    if not runs:
        return None
    if every is None:
        every = max([MIN_READ_PERIOD, *(b - a for a, b in zip(runs, runs[1:]))])
    jump = now - runs[-1]
    return jump if jump > 2 * every + LEEWAY_SECONDS else None


@dataclass(frozen=True)
class ExportRun:
    """What one export did: the files it wrote, or ``jump`` (held: nothing written or deleted)."""

    batches: list[BatchRecord] = field(default_factory=list)
    jump: float | None = None  # seconds past the last export's clock, when held

    def held_sentence(self) -> str:
        """What a held export says (the log of ``server run``, ``server export``'s output)."""
        return (
            f"clock {self.jump:.0f} s past the last export's (an NTP step, a bad real-time clock?): nothing"
            " exported or deleted this time; the next export goes ahead whatever its clock reads"
        )


def export_unless_clock_jumped(
    storage: Storage,
    signer: Signer,
    out_dir: str | Path,
    now: float,
    config: ExportConfig = ExportConfig(),
    *,
    every: float | None = None,
) -> ExportRun:
    """``export_batches``, held (``hold``: nothing exported, deleted or rolled up; the index lists every
    file kept) when ``now`` is far past the last export's clock (``clock_jump``); either way the run is
    noted, so the next export compares with it and goes ahead.  The caller says when it held
    (``ExportRun.held_sentence``)."""
    jump = clock_jump(now, storage.export_runs(KEPT_RUNS), every)
    run = ExportRun(export_batches(storage, signer, out_dir, now, config, hold=jump is not None), jump)
    storage.note_export_run(now, KEPT_RUNS)
    return run
