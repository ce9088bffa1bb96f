"""The copies of a beacon set's chunks a receiver keeps, and which combinations of them it tries to open.

Anyone who hears a venue's beacon knows its set id, frame count and which frame comes when, and can send other
bytes under them.  A set that kept the latest copy of each chunk never opened when junk followed the genuine frame
of two indices each round (two frames in nine seconds, venue20: ``research/beacon_junk.py``).  So a set keeps every
distinct copy it hears (up to ``MAX_EXTRA_COPIES`` beyond one an index) and tries combinations of them until one
opens; but each try costs AES-GCM openings (one per padding that fits), so junk must not buy tries without bound:

* **the latest copies** (one an index), whenever they change and were not tried lately: what was tried before, and
  what opens when junk comes before the genuine frames;
* **every combination once, best first** (a search): a new copy brings the combinations of it with the copies heard
  before it, so every combination is the search's once, as its newest copy's (nothing to remember of those tried);
  copies' combinations are tried in the order the copies came (the newest last), and within one copy's, the copies
  heard most often first at every other index (the earliest heard of equals: what opens when junk comes after the
  genuine frames), the fewest departures from those first;
* **a budget per set and per second**, for each: ``LATEST_OPENINGS`` a second for the latest copies,
  ``SEARCH_OPENINGS_PER_SECOND`` for the search (``SEARCH_SAVED`` saved up at most); a combination waits for its
  openings.  However many frames junk sends, a receiver spends at most that on each set it keeps (256 sets, ~0.2-0.35 s
  of CPU a second at worst, load 5), and junk takes none of an honest combination's tries: it only adds combinations tried after
  it, unless its copies are heard more often than the genuine frame at their index (docs/venues.md);
* **bounded memory**: beyond ``MAX_EXTRA_COPIES`` extra copies, the ``FORGET_AT_ONCE`` heard fewest times are
  forgotten (the oldest of those; never an index's only copy, nor the copy just heard): a genuine frame heard twice
  outlives any number of fresh junk copies, and junk heard once must come some 24-32 times in a round to push out a
  genuine copy before it is heard again.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

#: Copies kept beyond one an index, per set (~5 kB a set): one index holding the genuine chunk among 32 copies is
#: 32 combinations; junk spread over many indices multiplies them, which the budget below meters.
MAX_EXTRA_COPIES = 32
#: Copies forgotten at once when there are too many.
FORGET_AT_ONCE = 8
#: Openings (~20 us each) a set may spend on the latest copies: one combination at each of a chunk's 13 possible
#: paddings when let in, as much again a second (the beacon's cadence), no more saved up.
LATEST_OPENINGS = 13
#: Openings a set may spend on the search: as many when let in, this many more a second, ``SEARCH_SAVED`` at most.
#: 256 sets under junk cost at most (13 + 24) x 256 openings a second, ~0.2-0.35 s of CPU (docs/benchmarks.md).
SEARCH_OPENINGS_PER_SECOND = 24
SEARCH_SAVED = 64
#: Combinations the search may look at, tried or skipped (a copy forgotten meanwhile), per set: as many when let in,
#: as many more a second, no more saved up.  Once per frame, junk at 1,000 frames a second bought ~170 skipped steps a
#: frame, 1-2.5 s of CPU a second on one set (attack21).
MAX_STEPS = 4 * SEARCH_SAVED
#: Combinations of the latest copies remembered as tried, so that junk alternating with the genuine frame does not buy
#: the same few again and again, and the search does not open them again (attack21).
LATEST_REMEMBERED = 64


class Budget:
    """Openings to spend: ``first`` at the start, ``rate`` more a second, ``most`` at most."""

    def __init__(self, first: float, rate: float, most: float, t: float) -> None:
        self.left, self.rate, self.most, self._t = first, rate, most, t

    def take(self, cost: int, t: float) -> bool:
        """Spend ``cost`` openings at ``t`` if there are as many (a clock stepped back gains nothing until it passes
        the last time again)."""
        self.left = min(self.most, self.left + self.rate * max(0.0, t - self._t))
        self._t = max(self._t, t)
        if cost > self.left:
            return False
        self.left -= cost
        return True


def paddings(last: bytes) -> range:
    """The zero bytes a blob ending in the chunk ``last`` may have been padded with, the likeliest first: only
    trailing zeros can be padding, and the longest run is the padding unless the blob itself ends in a zero byte
    (one time in 256).  (Each of the 13 was tried, 12 openings where one does.)"""
    zeros = len(last) - len(last.rstrip(b"\0"))
    return range(min(zeros, len(last) - 1), -1, -1)


def best_first(sizes: Sequence[int]) -> Iterator[list[int]]:
    """Every vector of ranks (rank i below ``sizes[i]``), by their sum: the fewest departures from rank 0 first."""
    disputed = [i for i, size in enumerate(sizes) if size > 1]
    room = [sizes[i] - 1 for i in disputed]
    out = [0] * len(sizes)
    for total in range(sum(room) + 1):
        ranks = _fill([0] * len(room), room, 0, total)
        while ranks is not None:
            for i, rank in zip(disputed, ranks, strict=True):
                out[i] = rank
            yield list(out)
            ranks = _following(ranks, room)


def _fill(ranks: list[int], room: list[int], start: int, total: int) -> list[int] | None:
    """``ranks`` from ``start`` on set to the first vector (in lexicographic order) within ``room`` that sums to
    ``total``: the most at the end; None if none does."""
    for i in range(len(ranks) - 1, start - 1, -1):
        ranks[i] = min(room[i], total)
        total -= ranks[i]
    return ranks if total == 0 else None


def _following(ranks: list[int], room: list[int]) -> list[int] | None:
    """The next vector after ``ranks`` within ``room`` with the same sum, in lexicographic order (None: the last)."""
    after = 0
    for i in range(len(ranks) - 1, -1, -1):
        if after > 0 and ranks[i] < room[i]:
            ranks[i] += 1
            return _fill(ranks, room, i + 1, after - 1)
        after += ranks[i]
    return None


@dataclass(eq=False, slots=True)
class Copy:
    """One distinct chunk heard at an index, and how often."""

    index: int
    chunk: bytes
    serial: int  # the order copies came in
    heard: int = 1
    kept: bool = True


class Copies:
    """A set's copies by index, the combinations still to try, and its budget of openings.

    Kept small (a full table of sets of 255 chunks is what a flood makes): an index heard with one chunk holds that
    copy alone, one with more a list whose last is the copy heard last; what trying needs is made once complete."""

    def __init__(self, count: int, t: float) -> None:
        self.count = count
        self._one: dict[int, Copy] = {}  # indices heard with one chunk
        self._many: dict[int, list[Copy]] = {}  # indices heard with more, the copy heard last at the end
        self._serial = 0
        self._extra = 0
        self._let_in = t
        self._trial: _Trial | None = None  # made once complete

    @property
    def complete(self) -> bool:
        """A copy heard at every index."""
        return len(self._one) + len(self._many) == self.count

    def add(self, index: int, chunk: bytes) -> None:
        """One frame's chunk heard at ``index``."""
        one = self._one.get(index)
        if one is not None and one.chunk == chunk:
            one.heard += 1
            return
        many = self._many.get(index)
        if many is not None:
            for i, copy in enumerate(many):
                if copy.chunk == chunk:
                    copy.heard += 1
                    many.append(many.pop(i))  # (the copy heard last at the end)
                    return
        copy = Copy(index, chunk, self._serial)
        self._serial += 1
        if one is not None:
            many = self._many[index] = [self._one.pop(index)]
        if many is None:
            self._one[index] = copy
        else:
            many.append(copy)
            self._extra += 1
        if self.complete:  # (a copy heard before has no combination of its own: some index had no older copy)
            if self._trial is None:
                self._trial = _Trial(self._let_in)
            self._trial.untried.append(copy)
        if self._extra > MAX_EXTRA_COPIES:
            self._forget_some(copy)

    def holds(self, index: int, chunk: bytes) -> bool:
        """Whether ``chunk`` is a copy kept at ``index``."""
        return any(c.chunk == chunk for c in self._at(index))

    def _forget_some(self, new: Copy) -> None:
        """Forget the extra copies heard fewest times (the oldest of those; not ``new``), ``FORGET_AT_ONCE`` of them
        (one at a time, looking at all, cost ~40 us a junk frame)."""
        for least in sorted((c for many in self._many.values() for c in many if c is not new), key=lambda c: (c.heard, c.serial)):
            many = self._many.get(least.index)
            if many is None:
                continue  # (down to one copy already)
            many.remove(least)
            least.kept = False
            if len(many) == 1:
                self._one[least.index] = self._many.pop(least.index)[0]
            self._extra -= 1
            if self._extra <= MAX_EXTRA_COPIES - FORGET_AT_ONCE:
                return

    def _at(self, index: int) -> list[Copy]:
        one = self._one.get(index)
        return [one] if one is not None else self._many.get(index, [])

    def tries(self, t: float) -> Iterator[tuple[Copy, ...]]:
        """The combinations to try at ``t`` (one copy an index, in index order), each charged its openings
        (``paddings`` of its last chunk) before it is given: the latest copies if not tried lately, then the search."""
        trial = self._trial
        if trial is None:
            return
        latest = tuple([self._one.get(i) or self._many[i][-1] for i in range(self.count)])
        key = _key(latest)
        if key not in trial.latest_seen and trial.latest.take(len(paddings(latest[-1].chunk)), t):
            if len(trial.latest_tried) == LATEST_REMEMBERED:
                trial.latest_seen.discard(trial.latest_tried[0])
            trial.latest_tried.append(key)
            trial.latest_seen.add(key)
            yield latest
        while trial.held is not None or trial.steps.take(1, t):
            combination = trial.held or self._search(trial)
            if combination is None:
                return
            trial.held = None
            if not all(c.kept for c in combination) or _key(combination) in trial.latest_seen:
                continue  # (a copy forgotten; or the latest copies tried it: the same bytes, the same answer)
            if not trial.search.take(len(paddings(combination[-1].chunk)), t):
                trial.held = combination
                return
            yield combination

    def _search(self, trial: _Trial) -> tuple[Copy, ...] | None:
        """The next combination of the search (each once, best first)."""
        while True:
            if trial.trying is not None:
                combination = next(trial.trying, None)
                if combination is not None:
                    return combination
            trial.trying = None
            while trial.untried and not trial.untried[0].kept:
                trial.untried.popleft()
            if not trial.untried:
                return None
            trial.trying = self._combinations(trial.untried.popleft())

    def _combinations(self, newest: Copy) -> Iterator[tuple[Copy, ...]]:
        """The combinations of ``newest`` with copies heard before it, those heard most often first (only the indices
        holding more than one are kept apart: a set of 255 chunks being searched holds one list, not 255)."""
        best: list[Copy] = []
        where: list[int] = []
        ranked: list[list[Copy]] = []
        for index in range(self.count):
            older = [newest] if index == newest.index else [c for c in self._at(index) if c.serial < newest.serial]
            if not older:
                return iter(())  # the set was not complete then: these combinations are a newer copy's
            if len(older) > 1:
                older.sort(key=lambda c: (-c.heard, c.serial))
                where.append(index)
                ranked.append(older)
            best.append(older[0])
        return self._spread(best, where, ranked)

    @staticmethod
    def _spread(best: list[Copy], where: list[int], ranked: list[list[Copy]]) -> Iterator[tuple[Copy, ...]]:
        for ranks in best_first([len(r) for r in ranked]):
            combination = list(best)
            for index, copies, rank in zip(where, ranked, ranks, strict=True):
                combination[index] = copies[rank]
            yield tuple(combination)


def _key(combination: tuple[Copy, ...]) -> bytes:
    """A combination's copies (by serial) in 16 bytes: no collision skips an untried combination (a tuple of a set's
    255 serials is ~2 kB, and 64 are remembered a set), and none can be aimed at (Python's hash of ints could)."""
    return hashlib.blake2b(array("Q", [c.serial for c in combination]).tobytes(), digest_size=16).digest()


class _Trial:
    """What a complete set needs to try combinations: the copies whose combinations are still to try (the oldest
    first), the search under way, and its budgets (openings, steps)."""

    __slots__ = ("untried", "trying", "held", "search", "steps", "latest", "latest_tried", "latest_seen")

    def __init__(self, let_in: float) -> None:
        self.untried: deque[Copy] = deque()
        self.trying: Iterator[tuple[Copy, ...]] | None = None  # the current copy's combinations
        self.held: tuple[Copy, ...] | None = None  # the search's next, waiting for its openings
        self.search = Budget(SEARCH_OPENINGS_PER_SECOND, SEARCH_OPENINGS_PER_SECOND, SEARCH_SAVED, let_in)
        self.steps = Budget(MAX_STEPS, MAX_STEPS, MAX_STEPS, let_in)  # the search's combinations looked at
        self.latest = Budget(LATEST_OPENINGS, LATEST_OPENINGS, LATEST_OPENINGS, let_in)
        self.latest_tried: deque[bytes] = deque(maxlen=LATEST_REMEMBERED)  # by ``_key``
        self.latest_seen: set[bytes] = set()  # the same, to look up (the search skips them)
