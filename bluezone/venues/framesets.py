"""The incomplete venue-beacon frame sets a receiver keeps (bounded), and which it forgets first under a flood.

Anyone can send frames with made-up set ids, so the table of sets being collected is bounded, and a new set
pushes out the one heard at the *lowest rate lately*: its frames heard, each weighing half as much every
``HEARD_HALF_LIFE`` seconds, over the time it has been heard (weighed the same way; one second at least, a
beacon's cadence).  Until a set opens nothing tells a made-up set from a beacon's, so a flood can keep a set out
only by keeping every other set heard at a higher rate: a receiver hearing its beacon's frames at q a second
is kept out by about ``MAX_PARTIAL_SETS`` x q frames a second, for as long as the flood goes on (docs/venues.md).
(Ranked by frames heard lately, as until now, a new set weighed 2 against sets the flood kept just above it:
255 sets heard a frame each every 32 s, 8 frames a second round and round, plus one new set a second, kept every
beacon's set out, however often its receiver heard it.)

A frame under a set id and count that opened in this epoch (the opened frames are known by their bytes: these are
junk, or another venue sealed under them) is let in only at its second hearing: a beacon sends every frame each round,
junk sent once never comes again, and let in it made a set that spent its budget of openings for the epoch.

When the table is full, a set is let in only at its second frame: the first waits in a fixed array of slots
(``WAITING_SLOTS`` frames, placed by a keyed hash an attacker cannot aim), so frames of sets heard once, at
any rate, push out nothing (at 300 such frames a second a beacon's set, one frame a second, lost its first
chunk before its second came, and never completed).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, field

import numpy as np

from bluezone.venues.copies import Copies

#: Incomplete sets kept at once.  A door has one beacon (a mall a few), each sending one set per epoch; each set
#: kept holds its chunks (~480 bytes: a few hundred frames a second kept 20 minutes held 300 MB before a bound).
MAX_PARTIAL_SETS = 256
#: A frame heard weighs half as much this many seconds later: a set's rate is that of about its last 87 s
#: (60 / ln 2), and a burst sent once fades: k frames keep a set above q a second for at most k / q seconds.
HEARD_HALF_LIFE = 60.0
#: A set's rate is its frames over the time it has been heard, this long at least: a beacon sends a frame a second,
#: so a beacon's set just let in (two frames) weighs 2 a second, above sets the flood keeps heard more slowly
#: (its frames then show its true rate), and a made-up set of two frames a millisecond apart weighs no more.
SHORTEST_WINDOW = 1.0
_LN2 = math.log(2)
#: First frames waiting for a second while the table is full (20 bytes each: 320 kB): a flood of R one-frame
#: sets a second takes a waiting frame's slot before the next one comes (g seconds on) with chance ~R g / slots.
WAITING_SLOTS = 1 << 14
FRAME_BYTES = 20
#: Frames heard once under a set id and count that opened in this epoch, by a keyed digest (8 bytes each: 512 kB, made
#: the first time one is heard): junk sent once under them is never let in, another venue's frames at their second
#: hearing (its next round, unless ~65,000 other first hearings came meanwhile).
HEARD_SLOTS = 1 << 16
DIGEST_BYTES = 8

Key = tuple[bytes, int]


@dataclass
class Partial:
    """A set being collected: the copies of its chunks heard, and how much it was heard lately."""

    count: int
    first_heard: float
    slot: int  # its row in the table's arrays of ranks and times let in
    copies: Copies = field(init=False)
    #: log2(its frames heard, each weighing half as much every HEARD_HALF_LIFE s) + time / HEARD_HALF_LIFE (every
    #: set's weight halves at the same pace: kept so, it needs no update between frames)
    rank: float = -math.inf

    def __post_init__(self) -> None:
        self.copies = Copies(self.count, self.first_heard)

    def hear(self, t: float) -> None:
        """One more of its frames heard at ``t``.  Written so that no clock can overflow it: 2 ** (rank - now) did
        once a clock went back over 17 hours with the set in the table (the listener starts afresh after a step back,
        but the table is not to rely on its caller for that)."""
        now = t / HEARD_HALF_LIFE
        ahead = self.rank - now
        self.rank = now + (ahead + math.log2(1.0 + 2.0**-ahead) if ahead > 0 else math.log2(1.0 + 2.0**ahead))


def rates(rank: np.ndarray, first_heard: np.ndarray, t: float) -> np.ndarray:
    """log2 of each set's frames a second lately at ``t`` (+ t / HEARD_HALF_LIFE, the same for all): its weighed
    frames over the time since it was let in, weighed the same way (a set heard at a steady rate shows that rate,
    however young or old)."""
    since = np.minimum(first_heard - t, 0.0)  # (let in "after" t: the clock went back; as if just let in)
    heard = -np.expm1(since * (_LN2 / HEARD_HALF_LIFE)) * (HEARD_HALF_LIFE / _LN2)
    return rank - np.log2(np.maximum(heard, SHORTEST_WINDOW))


class FrameSets:
    """The bounded table of sets being collected, keyed by (set id, frame count)."""

    def __init__(self) -> None:
        self._sets: dict[Key, Partial] = {}
        #: by slot: each set's rank and when it was let in, so that the eviction weighs all of them at once
        #: (one by one in Python it cost ~0.4 ms a set let in, under a flood of new sets)
        self._rank = np.zeros(MAX_PARTIAL_SETS)
        self._first_heard = np.zeros(MAX_PARTIAL_SETS)
        self._key_at: list[Key | None] = [None] * MAX_PARTIAL_SETS
        self._free = list(range(MAX_PARTIAL_SETS - 1, -1, -1))
        self._salt = secrets.token_bytes(16)  # places waiting frames: a sender cannot aim at a slot
        self._waiting: bytearray | None = None  # made the first time the table is full
        self._heard: bytearray | None = None  # frames heard once under a set id that opened (``_again``): made then

    def keys(self) -> list[Key]:
        """The sets being collected."""
        return list(self._sets)

    def heard(self, data: bytes, t: float, repeated_only: bool = False) -> Partial | None:
        """The set the frame ``data`` (20 bytes, a valid ``beacon.Frame``) belongs to, with the frame heard; None
        while the table is full and this is the set's first frame (it waits for a second), and, ``repeated_only``
        (its set id and count opened in this epoch), while its copy is neither kept nor heard before (``_again``)."""
        key = (data[1:5], data[6])
        partial = self._sets.get(key)
        if repeated_only and not (partial is not None and partial.copies.holds(data[5], bytes(data[7:]))):
            if not self._again(data):
                return None
        if partial is None:
            first = None
            if len(self._sets) >= MAX_PARTIAL_SETS:
                first = self._first_frame(key, data)
                if first is None:
                    return None
                self._drop_least(t)
            partial = self._sets[key] = Partial(key[1], first_heard=t, slot=self._free.pop())
            self._key_at[partial.slot], self._first_heard[partial.slot] = key, t
            if first is not None:
                partial.copies.add(first[5], bytes(first[7:]))
                partial.hear(t)
        partial.hear(t)
        self._rank[partial.slot] = partial.rank
        return partial

    def _first_frame(self, key: Key, data: bytes) -> bytes | None:
        """The set's first frame if it waits in its slot (taken out), else None with ``data`` put there to wait."""
        if self._waiting is None:
            self._waiting = bytearray(WAITING_SLOTS * FRAME_BYTES)
        digest = hashlib.blake2b(key[0] + bytes([key[1]]), key=self._salt, digest_size=8).digest()
        at = int.from_bytes(digest, "big") % WAITING_SLOTS * FRAME_BYTES
        waiting = bytes(self._waiting[at : at + FRAME_BYTES])
        if waiting[1:5] == key[0] and waiting[6] == key[1]:
            self._waiting[at : at + FRAME_BYTES] = bytes(FRAME_BYTES)
            return waiting
        self._waiting[at : at + FRAME_BYTES] = data
        return None

    def _again(self, data: bytes) -> bool:
        """Whether the frame ``data`` was heard before: its keyed digest in its slot of a fixed array (a sender cannot
        aim at one), else put there.  A flood of R other first hearings a second overwrites it before its next round
        (g seconds on) with chance ~R g / ``HEARD_SLOTS``; a beacon's frame then counts from that round."""
        if self._heard is None:
            self._heard = bytearray(HEARD_SLOTS * DIGEST_BYTES)
        digest = hashlib.blake2b(data, key=self._salt, digest_size=DIGEST_BYTES).digest()
        at = int.from_bytes(digest, "big") % HEARD_SLOTS * DIGEST_BYTES
        if self._heard[at : at + DIGEST_BYTES] == digest:
            return True
        self._heard[at : at + DIGEST_BYTES] = digest
        return False

    def _drop_least(self, t: float) -> None:
        """Forget the set heard at the lowest rate at ``t`` (the oldest of those; the table is full).

        Sets under one set id compete as any others: four at most were kept under one set id, so anyone who heard
        the café's set id pushed its set out with four sets of other frame counts heard more, and new ones."""
        rate = rates(self._rank, self._first_heard, t)
        least = np.flatnonzero(rate == rate.min())
        key = self._key_at[int(least[np.argmin(self._first_heard[least])])]
        assert key is not None
        self.remove(key)

    def remove(self, key: Key) -> None:
        """Forget a set (it opened)."""
        partial = self._sets.pop(key)
        self._key_at[partial.slot] = None
        self._free.append(partial.slot)

    def forget_before(self, t: float) -> None:
        """Forget the sets first heard before ``t``."""
        for key in [k for k, p in self._sets.items() if p.first_heard < t]:
            self.remove(key)
