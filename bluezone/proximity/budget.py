"""A bound on what a flood of adverts can make the daemon store: distinct RPIs per minute.

A phone advertises one RPI for 10-20 minutes, several times a second, so even a crowded market
(a few hundred phones in range) shows the scanner a few hundred distinct RPIs in a minute, each
heard many times.  A transmitter inventing a new RPI for every advert (100 a second fill ~1 GB
of sightings a day) shows thousands, each heard once.  ``RpiBudget`` lets at most ``per_minute``
distinct RPIs a minute (of advert time) into the store: an RPI let in stays in for the rest of
that minute, and when more new ones arrive than there is room for, those heard most often in the
batch go first, then those heard the minute before, then the strongest; and those heard once in
their batch fill half the budget at most.  A real phone, heard several times in the seconds a
batch spans, comes before flood RPIs heard once, and finds room even late in a flooded minute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

MINUTE = 60.0


#: Minutes whose windows are kept (a clock stepped back finds its minute still counted).
WINDOWS = 8


@dataclass
class _Window:
    """The values let in during one minute, and how many of them were let in without being heard
    twice in their batch (all of a batch that left the window at most half full: not counted)."""

    admitted: set[bytes] = field(default_factory=set)
    singles: int = 0


class RpiBudget:
    """Which rows of a batch to store, keeping each minute to ``per_minute`` distinct values of
    ``field`` (``"rpi"`` of SIGHTING_DTYPE, ``"bzid"`` of BLUEZONE3_SIGHTING_DTYPE)."""

    def __init__(self, per_minute: int, field: str = "rpi", what: str = "RPIs") -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self.field = field
        self.what = what
        self.dropped = 0  # rows refused so far
        self._told = False  # the flood is logged once, not per advert or minute
        self._windows: dict[int, _Window] = {}

    def admit(self, rows: np.ndarray) -> np.ndarray:
        """A boolean mask of ``rows`` to store; the others are counted in ``dropped``."""
        keep = np.ones(len(rows), bool)
        if not len(rows):
            return keep
        minutes = np.floor(rows["time"] / MINUTE)
        values = rows[self.field].tolist()  # bytes, one per row
        if minutes[0] == minutes[-1] and (minutes == minutes[0]).all():  # a daemon's 5 s batch, mostly
            groups = [(int(minutes[0]), np.arange(len(rows)))]
        else:  # rows of several minutes (a batch across a minute's end, or a backlog written late)
            order = np.argsort(minutes, kind="stable")
            starts = np.flatnonzero(np.diff(minutes[order], prepend=np.nan) != 0)
            groups = [(int(minutes[order[a]]), order[a:b]) for a, b in zip(starts, [*starts[1:], len(rows)], strict=True)]
        for minute, at in groups:
            part = values if len(at) == len(rows) else [values[i] for i in at.tolist()]
            refused = self._refused(minute, part, lambda: rows["rssi"][at].tolist())
            if refused:
                keep[at[np.fromiter((v in refused for v in part), bool, len(part))]] = False
        self.dropped += int(len(rows) - np.count_nonzero(keep))
        return keep

    def filter(self, rows: np.ndarray, addresses: list[str | None]) -> tuple[np.ndarray, list[str | None]]:
        """``rows`` and their senders' ``addresses`` without what ``admit`` refuses."""
        keep = self.admit(rows)
        if keep.all():
            return rows, addresses
        return rows[keep], [a for a, k in zip(addresses, keep.tolist(), strict=True) if k]

    def _window(self, minute: int) -> _Window:
        window = self._windows.get(minute)
        if window is None:
            window = self._windows[minute] = _Window()
            if len(self._windows) > WINDOWS:  # the farthest from now: after the clock stepped back, not this one
                del self._windows[max(self._windows, key=lambda m: abs(m - minute))]
        return window

    def _refused(self, minute: int, values: list[bytes], rssi: Callable[[], list[int]]) -> set[bytes]:
        """Let in this minute's new values while there is room; the values left out.

        Values heard once in their batch (what a flood of new RPIs looks like; a phone is heard
        several times in the seconds a batch spans) may fill half the minute's budget at most, so a
        phone that changes its RPI late in a flooded minute still finds room."""
        window = self._window(minute)
        new = set(values) - window.admitted
        room = self.per_minute - len(window.admitted)
        if len(new) <= room - (self.per_minute + 1) // 2:  # at most half full after: no limit can bind
            window.admitted |= new
            window.singles += len(new)  # (not counted: each might have been heard once)
            return set()
        heard: dict[bytes, int] = {}
        strongest: dict[bytes, int] = {}
        for value, r in zip(values, rssi(), strict=True):
            if value in new:
                heard[value] = heard.get(value, 0) + 1
                strongest[value] = max(strongest.get(value, -1000), r)
        before = self._windows.get(minute - 1, _Window()).admitted
        ranked = sorted(new, key=lambda v: (heard[v], v in before, strongest[v], v), reverse=True)
        single_room = (self.per_minute + 1) // 2 - window.singles
        refused = set()
        for value in ranked:
            single = heard[value] == 1
            if room > 0 and (not single or single_room > 0):
                window.admitted.add(value)
                room -= 1
                if single:
                    window.singles += 1
                    single_room -= 1
            else:
                refused.add(value)
        if refused and not self._told:
            self._told = True
            log.warning(
                "more than %d distinct %s heard in a minute (a flood of adverts?): each minute, at most %d are"
                " stored, those heard most often first; the others' adverts are not (dropped_over_budget in status)",
                self.per_minute, self.what, self.per_minute,
            )
        return refused
