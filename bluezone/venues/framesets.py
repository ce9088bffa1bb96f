"""The incomplete venue-beacon frame sets a receiver keeps (bounded), and which it forgets first under a flood.

Anyone can send frames with made-up set ids, so the table of sets being collected is bounded, and a new set
pushes out the one *heard least lately*: its frames heard, each weighing half as much every
``HEARD_HALF_LIFE`` seconds.  A beacon's set being collected is heard round and round, so it keeps its place;
a flood must keep every other set heard better, frame after frame, for as long as it wants a set kept out.
(Ranked by frames ever collected, as until now, 256 sets of 200 frames sent once, then one new set id a
second, kept every beacon's set from completing for the 20 minutes those sets were kept.)

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

#: Incomplete sets kept at once.  A door has one beacon (a mall a few), each sending one set per epoch; each set
#: kept holds its chunks (~480 bytes: a few hundred frames a second kept 20 minutes held 300 MB before a bound).
MAX_PARTIAL_SETS = 256
#: Incomplete sets kept under one set id (one per frame count).  A set is its set id and frame count: a stray
#: frame with the café's set id and another count used to replace the café's set being collected; now it is a
#: set of its own, and a flood of counts under one set id pushes out only that set id's own (least heard first).
MAX_SETS_PER_SET_ID = 4
#: A frame heard weighs half as much this many seconds later.  A set heard a frame every 10 s (a receiver that
#: misses 9 frames in 10) weighs about 8.7 (0.1 x 60 / ln 2), well above a new set heard twice (2); to keep
#: 255 sets ahead of a beacon's new set a flood sends about 20 frames a second, for as long as it goes on.
HEARD_HALF_LIFE = 60.0
#: A set's weight counts this many frames at most: a burst of frames sent once stays ahead of a set heard twice
#: for HEARD_HALF_LIFE x log2(16 / 2) = 3 minutes at most, however many it sent (51,200 frames bought 6 without it).
MOST_HEARD = 16
_LOG2_MOST_HEARD = math.log2(MOST_HEARD)
#: First frames waiting for a second while the table is full (20 bytes each: 320 kB): a flood of R one-frame
#: sets a second takes a waiting frame's slot before the next one comes (g seconds on) with chance ~R g / slots.
WAITING_SLOTS = 1 << 14
FRAME_BYTES = 20

Key = tuple[bytes, int]


@dataclass
class Partial:
    """A set being collected: its chunks by index, and how much it was heard lately."""

    count: int
    first_heard: float
    chunks: dict[int, bytes] = field(default_factory=dict)
    #: log2(its frames heard, each weighing half as much every HEARD_HALF_LIFE s) + time / HEARD_HALF_LIFE: every
    #: set's weight halves at the same pace, so this orders the sets at any time without recomputing them
    rank: float = -math.inf

    def hear(self, t: float) -> None:
        """One more of its frames heard at ``t``."""
        now = t / HEARD_HALF_LIFE
        self.rank = min(math.log2(2.0 ** (self.rank - now) + 1.0), _LOG2_MOST_HEARD) + now


class FrameSets:
    """The bounded table of sets being collected, keyed by (set id, frame count)."""

    def __init__(self) -> None:
        self._sets: dict[Key, Partial] = {}
        self._salt = secrets.token_bytes(16)  # places waiting frames: a sender cannot aim at a slot
        self._waiting: bytearray | None = None  # made the first time the table is full

    def keys(self) -> list[Key]:
        """The sets being collected."""
        return list(self._sets)

    def heard(self, data: bytes, t: float) -> Partial | None:
        """The set the frame ``data`` (20 bytes, a valid ``beacon.Frame``) belongs to, with the frame heard; None
        while the table is full and this is the set's first frame (it waits for a second)."""
        key = (data[1:5], data[6])
        partial = self._sets.get(key)
        if partial is None:
            first = self._first_frame(key, data) if len(self._sets) >= MAX_PARTIAL_SETS else None
            if len(self._sets) >= MAX_PARTIAL_SETS and first is None:
                return None
            self._make_room(key[0])
            partial = self._sets[key] = Partial(key[1], first_heard=t)
            if first is not None:
                partial.chunks[first[5]] = bytes(first[7:])
                partial.hear(t)
        partial.hear(t)
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

    def _make_room(self, set_id: bytes) -> None:
        """Room for one more set: under ``set_id`` (MAX_SETS_PER_SET_ID), then in all (MAX_PARTIAL_SETS)."""
        same = [k for k in self._sets if k[0] == set_id]
        if len(same) >= MAX_SETS_PER_SET_ID:
            self._drop_least(same)
        if len(self._sets) >= MAX_PARTIAL_SETS:
            self._drop_least(list(self._sets))

    def _drop_least(self, keys: list[Key]) -> None:
        """Forget the set heard least lately (the oldest of those)."""
        del self._sets[min(keys, key=lambda k: (self._sets[k].rank, self._sets[k].first_heard))]

    def remove(self, key: Key) -> None:
        """Forget a set (it opened)."""
        del self._sets[key]

    def forget_before(self, t: float) -> None:
        """Forget the sets first heard before ``t``."""
        for key in [k for k, p in self._sets.items() if p.first_heard < t]:
            del self._sets[key]
