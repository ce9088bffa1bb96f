"""Receiver self-calibration: how weakly does *this* phone hear everyone, per day?

A phone in a bag or a pocket hears every neighbour several dB weaker than one in a hand, and
a model's RSSI residual does the same to all its links.  A phone under GAEN cannot tell,
but a daemon that stores every advert it hears can: how loud its *closest* company of the
day sounded (not only the diagnosis keys' links) is its own offset plus the day's geometry.
``receiver_context`` computes that reference from the stored sightings; a scorer that
supports it (``BluezoneScorer.for_receiver``) shifts its threshold by part of the difference
from a nominal reference, bounded (the geometry part is not the phone's fault).

The reference: sightings are grouped per (RPI, minute) (an RPI is one neighbour for 10-20
minutes), each group with at least ``min_sightings`` gives its ``percentile``-th attenuation
(TX power taken as ``nominal_tx_power``: other phones' AEMs cannot be decrypted), and the
day's reference is the ``quantile``-th percentile of those per-minute values.  The default
quantile is low (5): most days bring someone within about a metre, in a classroom as in a
market, so the low end of the day's link-minutes moves with the phone's own carriage and far
less with the room than the median does (docs/simulation.md, "Receiver self-calibration").
A low quantile has one trap: a long close contact can *be* the day's closest company, and
would then make its own receiver stricter.  So a scorer asks for the reference *without* the
link it judges (``reference(day, exclude=window.sighting_index)``): the other company's level.

Both references can be asked to count only links heard in a run of ``min_run`` consecutive minutes
(``value_run``): a transmitter inventing RPIs that each live a minute is company a receiver would
otherwise count, and weak invented company makes every real link look relatively near
(docs/radio-model.md, "The same-minute reference against an active attacker").  A transmitter that keeps
its RPIs alive as long as a phone does is not told apart by this: only the scorer's clip bounds it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.matching.linkminute import MIN_SIGHTINGS
from bluezone.matching.matcher import DEFAULT_TX_POWER, expand_ranges
from bluezone.matching.scoring import change_points


#: The longest run of minutes a reference may ask for (``min_run``): a stored context reads this many
#: slots beyond a day, so that a run crossing midnight is seen whole up to that length.
MAX_RUN = 16


@dataclass(frozen=True)
class ReceiverContext:
    """Every link-minute the receiver stored: its value (dB), its UTC day, and which link-minute
    each sighting fell in (so that ``reference`` can leave out the sightings of the judged link).

    ``uniform`` builds one by hand (tests, what-ifs): ``count`` link-minutes at one level.
    """

    values: np.ndarray = field(default_factory=lambda: np.empty(0))  # per link-minute, dB
    value_day: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # Unix seconds of its midnight
    link_minute_of: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # per sighting; -1: none
    quantile: float = 5.0
    value_slot: np.ndarray | None = None  # per link-minute, its slot (Unix seconds // slot_seconds); None: unknown
    slot_seconds: float = 60.0  # the slot length ``value_slot`` counts in: a scorer must judge in the same
    # per link-minute, how many consecutive slots its RPI made link-minutes in, this one's run (None: unknown,
    # every link-minute counts whatever ``min_run``)
    value_run: np.ndarray | None = None

    @classmethod
    def uniform(cls, day: int, level_db: float, count: int, quantile: float = 5.0) -> ReceiverContext:
        return cls(np.full(count, float(level_db)), np.full(count, day, np.int64), quantile=quantile)

    def days(self) -> list[int]:
        return [int(d) for d in np.unique(self.value_day)]

    def link_minutes(self, day: int) -> int:
        """How many (RPI, minute) groups back ``day``'s reference."""
        return int(np.count_nonzero(self.value_day == day))

    def _kept(self, keep: np.ndarray, exclude: np.ndarray | None, min_run: int) -> np.ndarray:
        """``keep`` without the link-minutes of ``exclude``'s sightings and those in runs under ``min_run``."""
        if exclude is not None and len(exclude) and len(self.link_minute_of):
            dropped = self.link_minute_of[np.asarray(exclude, np.int64)]
            keep[dropped[dropped >= 0]] = False
        if min_run > 1 and self.value_run is not None:
            keep &= self.value_run >= min_run
        return keep

    def reference(
        self, day: int, min_link_minutes: int = 1, exclude: np.ndarray | None = None, min_run: int = 1
    ) -> float | None:
        """The day's reference, or None when too few link-minutes back it.

        ``exclude``: indices of sightings (as in ``ExposureWindow.sighting_index``) whose
        link-minutes are left out, e.g. the judged link's own; ``min_run``: only link-minutes in
        runs of at least that many consecutive minutes count.

        Asked by every window with a minute of too few other links (a third of a market's), each leaving
        out its own link: the days are sorted once (``_by_day``) and a window's link-minutes left out by
        their places in that order, not by a ``np.percentile`` over a copy of the day (40-60 us a
        window); the same number (``percentile_without``).
        """
        ordered, day_of, position, bounds = self._by_day(min_run if min_run > 1 and self.value_run is not None else 1)
        if day not in bounds:
            bounds[day] = (int(np.searchsorted(day_of, day, "left")), int(np.searchsorted(day_of, day, "right")))
        start, stop = bounds[day]
        gone = np.empty(0, np.intp)
        if exclude is not None and len(exclude) and len(self.link_minute_of):
            # their link-minutes' places among the day's sorted values, each once (-1: none, or not kept)
            at = np.sort(position[self.link_minute_of[np.asarray(exclude, np.int64)]])
            i, j = at.searchsorted((start, stop))
            if j > i:
                gone = at[i:j][change_points(at[i:j])] - start
        if stop - start - len(gone) < max(min_link_minutes, 1):
            return None
        return percentile_without(ordered[start:stop], gone, self.quantile)

    def minute_reference(
        self, slots: np.ndarray, quantile: float, exclude: np.ndarray | None = None, min_run: int = 1,
        strongest: int = 0, above: float = -np.inf,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(reference, how many link-minutes back it) for each of ``slots``: the ``quantile``-th
        percentile of the other links heard in that same minute (nan where none was heard), of those
        in runs of at least ``min_run`` minutes; with ``strongest`` = k, never weaker than the k-th
        strongest of them (the weakest when fewer were heard) or ``above`` dB, whichever is weaker.

        Everyone heard in one minute shares this receiver's carriage and the room's level at that
        moment, so a link judged against them has both cancelled (docs/radio-model.md).  A percentile
        climbs as weak links are added, and a transmitter can invent weak company; the k-th strongest
        does not move however many weaker links join it, so the bound caps what they can do.
        """
        return reference_of(self.minute_levels(slots, quantile, exclude, min_run, strongest_of(strongest)), strongest, above)

    def minute_levels(
        self, slots: np.ndarray, quantile: float, exclude: np.ndarray | None = None, min_run: int = 1,
        strongest: tuple[int, ...] = (),
    ) -> MinuteLevels:
        """The same minutes' company as ``minute_reference`` sees it, unbounded: its ``quantile``-th
        percentile, how many link-minutes, and the k-th strongest for each k of ``strongest`` (all nan
        where none was heard).  One pass for a scorer that reads the company twice (the verdict's
        reference and the ranking's): a stored context reads the store once, not once per reading."""
        slots = np.asarray(slots, np.int64)
        ref = np.full(len(slots), np.nan)
        count = np.zeros(len(slots), np.int64)
        kths = tuple(np.full(len(slots), np.nan) for _ in strongest)
        if self.value_slot is None or len(self.values) == 0 or len(slots) == 0:
            return MinuteLevels(ref, count, kths)
        if len(slots) > 1 and not bool((slots[1:] > slots[:-1]).all()):  # scorers ask for each slot once, in order
            unique, inverse = np.unique(slots, return_inverse=True)
            got = self.minute_levels(unique, quantile, exclude, min_run, strongest)
            return MinuteLevels(got.reference[inverse], got.links[inverse], tuple(k[inverse] for k in got.kth))
        # the slots' link-minutes, found in the context sorted once (a stable sort of all of them keeps
        # the order a stable sort of these few would give, so every percentile has the same bits)
        order, at_slot, value = self._by_slot
        which, at = expand_ranges(np.searchsorted(at_slot, slots, "left"), np.searchsorted(at_slot, slots, "right"))
        if exclude is not None or min_run > 1:
            kept = self._kept(np.ones(len(self.values), bool), exclude, min_run)[order[at]]
            which, at = which[kept], at[kept]
        count = np.bincount(which, minlength=len(slots))
        found = count > 0
        first = np.cumsum(count) - count
        ref[found] = group_percentile(value[at], first[found], count[found], quantile)
        for k, kth in zip(strongest, kths, strict=True):  # each minute's values are sorted, strongest (least attenuated) first
            kth[found] = value[at][first[found] + np.minimum(count[found], k) - 1]
        return MinuteLevels(ref, count, kths)

    def _by_day(self, min_run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[Any, tuple[int, int]]]:
        """(values, day of each, place of each link-minute, each day's (start, stop)) of the link-minutes in
        runs of ``min_run``, sorted by day then value, built once per ``min_run``: a link-minute's place
        is -1 when it is not among them, as is the place of the last entry, where a sighting of no
        link-minute (-1) looks."""
        if min_run not in self._day_orders:
            kept = np.flatnonzero(self._kept(np.ones(len(self.values), bool), None, min_run))
            kept = kept[np.lexsort((self.values[kept], self.value_day[kept]))]
            position = np.full(len(self.values) + 1, -1, np.intp)
            position[kept] = np.arange(len(kept))
            self._day_orders[min_run] = (self.values[kept], self.value_day[kept], position, {})
        return self._day_orders[min_run]

    @functools.cached_property
    def _day_orders(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, dict[Any, tuple[int, int]]]]:
        return {}

    @functools.cached_property
    def _by_slot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(order, slot, value) of every link-minute sorted by slot then value: built once per context,
        where each window's ``np.isin`` passed over all of them."""
        assert self.value_slot is not None
        order = np.lexsort((self.values, self.value_slot))
        return order, self.value_slot[order], self.values[order]


class MinuteLevels(NamedTuple):
    """Per judged slot, the receiver's other links heard in it (``minute_levels``): their percentile,
    how many, and their k-th strongest for each k asked (nan where none was heard)."""

    reference: np.ndarray
    links: np.ndarray  # how many link-minutes back each
    kth: tuple[np.ndarray, ...]


def strongest_of(k: int) -> tuple[int, ...]:
    """``minute_levels``'s ``strongest`` for one bound k (0: none)."""
    return (k,) if k > 0 else ()


def bounded(reference: np.ndarray, kth: np.ndarray | None, above: float = -np.inf) -> np.ndarray:
    """``minute_reference``'s reference from its levels: the percentile, never weaker than the k-th
    strongest (None: no bound) or ``above``, whichever is weaker (the same bits as bounding while grouping)."""
    return reference if kth is None else np.minimum(reference, np.maximum(kth, above))


def reference_of(levels: MinuteLevels, strongest: int, above: float) -> tuple[np.ndarray, np.ndarray]:
    """``minute_reference``'s answer from ``minute_levels(..., strongest_of(strongest))``."""
    return bounded(levels.reference, levels.kth[0] if strongest > 0 else None, above), levels.links


def group_percentile(values: np.ndarray, first: np.ndarray, counts: np.ndarray, percentile: float) -> np.ndarray:
    """The ``percentile`` of each group of ``values`` (sorted within groups; groups start at
    ``first`` with ``counts`` members), by linear interpolation on ranks, as numpy's default."""
    pos = first + (counts - 1) * (percentile / 100.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, first + counts - 1)
    return values[lo] * (1 - (pos - lo)) + values[hi] * (pos - lo)


def percentile_without(ordered: np.ndarray, gone: np.ndarray, percentile: float) -> float:
    """``np.percentile`` (its default, linear interpolation) of ``ordered`` (sorted, NaN last) without the
    places ``gone`` (sorted, each once), the same number: numpy's rank ((n - 1) * q), its two neighbours
    and its interpolation from the nearer one, found among the places left without copying them.
    (Only a zero's sign may differ, where both signs are among the values: a partition picks either.)"""
    q = np.true_divide(percentile, 100)
    if not 0 <= q <= 1:
        raise ValueError("Percentiles must be in the range [0, 100]")
    n = len(ordered) - len(gone)
    rank = (n - 1) * q
    below = -1 if rank >= n - 1 else math.floor(rank)  # numpy's index of the last value: -1
    gamma = rank - below
    at = np.array([n - 1, n - 1, n - 1] if below < 0 else [below, below + 1, n - 1])
    if len(gone):  # the k-th place left is k plus the places gone up to it
        at += np.searchsorted(gone - np.arange(len(gone)), at, "right")
    lo, hi, last = ordered[at]
    if last != last:  # a NaN among them: numpy's answer is NaN
        return float(last)
    diff = hi - lo
    return float(hi - diff * (1 - gamma) if gamma >= 0.5 else lo + diff * gamma)


def _percentile_within(values: np.ndarray, first: np.ndarray, counts: np.ndarray, percentile: float) -> np.ndarray:
    """``group_percentile`` with each rank taken within its group, so that a group's value does not
    depend on what lies before it: a context read a day or a few minutes at a time
    (``StoredReceiverContext``) then has the very bits a context of all days has."""
    rank = (counts - 1) * (percentile / 100.0)
    below = np.floor(rank)
    lo = first + below.astype(np.int64)
    hi = np.minimum(lo + 1, first + counts - 1)
    return values[lo] * (1 - (rank - below)) + values[hi] * (rank - below)


def receiver_context(
    sightings: np.ndarray,
    *,
    rssi_correction: int = 0,
    nominal_tx_power: int = DEFAULT_TX_POWER,
    percentile: float = 10.0,
    quantile: float = 5.0,
    min_sightings: int = MIN_SIGHTINGS,
    slot_seconds: float = 60.0,
) -> ReceiverContext:
    """The per-day reference attenuation of everything in ``sightings`` (SIGHTING_DTYPE)."""
    if len(sightings) == 0:
        return ReceiverContext()
    times = np.asarray(sightings["time"], np.float64)
    att = nominal_tx_power - (np.asarray(sightings["rssi"], np.float64) + rssi_correction)
    words = np.ascontiguousarray(sightings["rpi"]).view("<u8").reshape(-1, 2)
    slots = np.floor(times / slot_seconds).astype(np.int64)
    order = np.lexsort((att, words[:, 1], words[:, 0], slots))
    slots, att, w0, w1 = slots[order], att[order], words[order, 0], words[order, 1]
    new = np.r_[True, (np.diff(slots) != 0) | (np.diff(w0) != 0) | (np.diff(w1) != 0)]
    first = np.flatnonzero(new)
    counts = np.diff(np.r_[first, len(att)])
    value = _percentile_within(att, first, counts, percentile)
    keep = counts >= min_sightings
    value = value[keep]
    days = (np.floor_divide(slots[first][keep] * slot_seconds, DAY_SECONDS) * DAY_SECONDS).astype(np.int64)
    # which kept link-minute each original sighting belongs to (-1: its minute had too few sightings)
    kept_number = np.where(keep, np.cumsum(keep) - 1, -1)
    link_minute_of = np.empty(len(att), np.int64)
    link_minute_of[order] = np.repeat(kept_number, counts)
    kept_slots = slots[first][keep]
    run = run_lengths(kept_slots, w0[first][keep], w1[first][keep])
    return ReceiverContext(value, days, link_minute_of, quantile, kept_slots, float(slot_seconds), run)


def run_lengths(slots: np.ndarray, w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """For each link-minute (its slot and its RPI's two 8-byte words), the length of its RPI's run of
    link-minutes in consecutive slots that it belongs to."""
    if len(slots) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((slots, w1, w0))
    s, a, b = slots[order], w0[order], w1[order]
    starts = np.r_[True, (np.diff(s) != 1) | (np.diff(a) != 0) | (np.diff(b) != 0)]
    run_id = np.cumsum(starts) - 1
    out = np.empty(len(slots), np.int64)
    out[order] = np.bincount(run_id)[run_id]
    return out


class SightingSource(Protocol):
    """What ``StoredReceiverContext`` reads from (``SightingStore`` is one): usable sightings with
    ``since <= time < until`` as (rows, store id of each row), ordered by time, all of them or
    those of some RPIs; and how many sightings a span holds."""

    def usable_sightings(self, since: float, until: float) -> tuple[np.ndarray, np.ndarray]: ...

    def sightings_with_rpis(self, rpis: np.ndarray, since: float, until: float) -> tuple[np.ndarray, np.ndarray]: ...

    def count_sightings(self, since: float, until: float, at_most: int | None = None) -> int: ...


@dataclass(frozen=True)
class _Read:
    """One read of the store: its receiver context and the store id of each row it read."""

    context: ReceiverContext
    ids: np.ndarray

    @functools.cached_property
    def _by_id(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, ids in that order): sorted once per read, where every window's call sorted its
        day's ids again (a day's read is kept for every window of that day)."""
        order = np.argsort(self.ids)
        return order, self.ids[order]

    def rows_of(self, wanted: np.ndarray) -> np.ndarray:
        """The rows of this read that hold the store ids ``wanted`` (those it holds, in ``wanted``'s order)."""
        order, ordered = self._by_id
        at = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
        return order[at[ordered[at] == wanted]]


#: ``StoredReceiverContext``'s reads of whole days, by day.
DaysRead = dict[int, _Read]


class StoredReceiverContext:
    """``receiver_context`` of everything a store holds in ``bounds``, read only where a scorer
    asks: the minutes of the window it judges (``minute_reference``) and, for the day-level
    reference, that day (``reference``, read once per day).

    The answers are those of a ``ReceiverContext`` built over all of ``bounds``: each link-minute
    is made from the sightings of its own slot, so a context over whole slots gives the same
    values for them; and only RPIs heard at least ``MIN_SIGHTINGS`` times (``repeated``, from
    ``SightingStore.heard_rpis``) can make a link-minute, so a day is read as their rows alone
    when they are few.  ``exclude`` names sightings as windows do (rows of the array the matcher
    was given); ``ids`` translates them into store ids, which every read also returns.
    """

    def __init__(
        self,
        source: SightingSource,
        ids: np.ndarray,
        bounds: tuple[float, float],
        repeated: np.ndarray | None = None,
        *,
        rssi_correction: int = 0,
        slot_seconds: float = 60.0,
        days_read: DaysRead | None = None,
    ) -> None:
        self.source = source
        self.ids = np.asarray(ids, np.int64)
        self.bounds = bounds
        self.repeated = repeated  # None: unknown, read whole days
        self.rssi_correction = rssi_correction
        self.slot_seconds = float(slot_seconds)
        # shared, when given, with contexts of other rows of the same source, bounds and settings (a
        # check scoring its windows a batch of keys at a time): a day's read does not depend on the rows
        self._days: DaysRead = {} if days_read is None else days_read

    @property
    def value_slot(self) -> np.ndarray:
        """Not kept (read per window); present so a scorer knows slots are counted in ``slot_seconds``."""
        return np.empty(0, np.int64)

    def _context(self, since: float, until: float, by_rpi: bool = False) -> _Read:
        since, until = max(since, self.bounds[0]), min(until, self.bounds[1])
        if by_rpi and self.repeated is not None:
            rows, ids = self.source.sightings_with_rpis(self.repeated, since, until)
        else:
            rows, ids = self.source.usable_sightings(since, until)
        return _Read(receiver_context(rows, rssi_correction=self.rssi_correction, slot_seconds=self.slot_seconds), ids)

    def _day(self, day: int) -> _Read:
        """The context of ``day``'s link-minutes: its slots read whole (``MAX_RUN`` slots more on each
        side, so that no rounding of a slot's edge leaves a sighting out and a run across midnight is
        seen), as the rows of the repeated RPIs when there are far fewer of those than sightings (each
        costs an index seek)."""
        if day not in self._days:
            margin = MAX_RUN * self.slot_seconds
            since, until = day - margin, day + DAY_SECONDS + margin
            # (the day's sightings counted only as far as the answer needs)
            few = self.repeated is not None and len(self.repeated) * 4 < self.source.count_sightings(
                since, until, at_most=len(self.repeated) * 4 + 1
            )
            self._days[day] = self._context(since, until, by_rpi=few)
        return self._days[day]

    def _local(self, exclude: np.ndarray | None, read: _Read) -> np.ndarray | None:
        """``exclude`` (rows of the matcher's array) as rows of ``read``."""
        if exclude is None or len(exclude) == 0 or len(read.ids) == 0:
            return None
        return read.rows_of(self.ids[np.asarray(exclude, np.int64)])

    def reference(
        self, day: int, min_link_minutes: int = 1, exclude: np.ndarray | None = None, min_run: int = 1
    ) -> float | None:
        """As ``ReceiverContext.reference`` (``min_run`` at most ``MAX_RUN``)."""
        read = self._day(int(day))
        return read.context.reference(day, min_link_minutes, self._local(exclude, read), check_run(min_run))

    def minute_reference(
        self, slots: np.ndarray, quantile: float, exclude: np.ndarray | None = None, min_run: int = 1,
        strongest: int = 0, above: float = -np.inf,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As ``ReceiverContext.minute_reference`` (``minute_levels``, bounded)."""
        return reference_of(self.minute_levels(slots, quantile, exclude, min_run, strongest_of(strongest)), strongest, above)

    def minute_levels(
        self, slots: np.ndarray, quantile: float, exclude: np.ndarray | None = None, min_run: int = 1,
        strongest: tuple[int, ...] = (),
    ) -> MinuteLevels:
        """As ``ReceiverContext.minute_levels``: reads the slots' span and ``min_run`` slots on each
        side, whole (or uses their day's, if read)."""
        slots = np.asarray(slots, np.int64)
        if len(slots) == 0:
            return ReceiverContext().minute_levels(slots, quantile, strongest=strongest)
        s = self.slot_seconds
        first, last = float(slots.min() * s), float((slots.max() + 1) * s)
        day = int(first // DAY_SECONDS * DAY_SECONDS)
        if day in self._days and last <= day + DAY_SECONDS:
            read = self._days[day]
        else:
            margin = check_run(min_run) * s
            read = self._context(first - margin, last + margin)
        return read.context.minute_levels(slots, quantile, self._local(exclude, read), min_run, strongest)


def check_run(min_run: int) -> int:
    """``min_run`` if a stored context can answer for it (1 to ``MAX_RUN``), else a ValueError."""
    if not 1 <= min_run <= MAX_RUN:
        raise ValueError(f"min_run must be 1-{MAX_RUN}, got {min_run}")
    return min_run


def context_for(scorer: Any, sightings: np.ndarray, *, rssi_correction: int = 0) -> ReceiverContext:
    """``receiver_context`` of ``sightings`` in ``scorer``'s own slots (its ``config.slot_seconds``,
    else a minute): a same-minute reference counted in other slots would match no minute at all."""
    return receiver_context(sightings, rssi_correction=rssi_correction, slot_seconds=slot_seconds_of(scorer))


def slot_seconds_of(scorer: Any) -> float:
    """The slot length ``scorer`` judges in (its ``config.slot_seconds``, else a minute)."""
    return float(getattr(getattr(scorer, "config", None), "slot_seconds", 60.0))


def for_receiver(scorer: Any, context: ReceiverContext | StoredReceiverContext | None) -> Any:
    """``scorer`` told about its receiver when it supports that (a ``for_receiver`` method), else itself.

    Scorers stay plain ``Scorer`` objects (``score(window)``); receiver context is opt-in.
    """
    bind: Callable[[ReceiverContext | StoredReceiverContext], Any] | None = getattr(scorer, "for_receiver", None)
    if context is None or bind is None:
        return scorer
    return bind(context)
