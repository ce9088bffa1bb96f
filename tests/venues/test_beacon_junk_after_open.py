"""Junk under a venue's set id after its set opened: the genuine frames are known by their bytes, so the junk forms a
set of its own, which must not be dropped (another venue sealed under the same set id must still open).  It spent
~24 AES-GCM openings a second for the epoch on fresh junk (research/beacon_junk.py, "café all fresh after").  A set
whose set id and count opened in this epoch now tries only copies heard twice: a beacon sends every frame each round,
junk sent once is never tried (``copies.Copies(repeated_only=True)``)."""

from __future__ import annotations

import itertools
import random
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.venues import beacon, copies
from bluezone.venues.location import Venue

from tests.venues.venue_helpers import CLINIC, sealed_under

T0 = 2_994_000 * beacon.EPOCH_SECONDS
CAFE = Venue.create("Café Hoa", "12 Trần Phú, Hà Nội", "food-service", 45, seed=bytes(range(16)))
FRAMES = beacon.frames(CAFE.payload, bytes(range(32)), beacon.epoch_of(T0))
SET_ID = FRAMES[0][1:5]


def _with_fresh_junk(frames: list[bytes], start: float, seconds: int, seed: int = 1) -> list[tuple[float, bytes]]:
    """``frames`` one a second from ``start``, round and round, each followed 50 ms later by a fresh junk copy."""
    rng = random.Random(seed)
    out = []
    for s in range(seconds):
        frame = frames[s % len(frames)]
        out += [(start + s, frame), (start + s + 0.05, frame[:7] + rng.randbytes(beacon.CHUNK_BYTES))]
    return out


def test_fresh_junk_after_the_set_opened_buys_no_openings() -> None:
    assembler = beacon.FrameAssembler()
    heard = _with_fresh_junk(FRAMES, T0, 300)
    opened = 2 * (len(FRAMES) - 1)  # the first round (junk after the genuine frames)
    with mock.patch.object(beacon, "open_blob", wraps=beacon.open_blob) as opening:
        assert [assembler.add(f, -70, t) for t, f in heard[:opened]] == [None] * opened
        assert assembler.add(heard[opened][1], -70, heard[opened][0]) == (SET_ID, CAFE)
        before = opening.call_count
        after = [assembler.add(f, -70, t) for t, f in heard[opened + 1 :]]
    assert after[1::2] == [(SET_ID, CAFE)] * (len(after) // 2)  # every genuine frame counts for the café
    assert opening.call_count == before  # was ~24 a second: 7,148 over the 5 minutes


def test_another_venue_under_the_set_id_still_opens_through_fresh_junk() -> None:
    """The café's set opened; a venue sealed under its set id and count comes after, fresh junk after each of its
    frames: it opens once each of its frames has been heard twice."""
    assembler = beacon.FrameAssembler()
    for s, frame in enumerate(FRAMES):
        assembler.add(frame, -70, T0 + s)
    foreign = sealed_under(SET_ID, CLINIC)
    results = [assembler.add(f, -70, t) for t, f in _with_fresh_junk(foreign, T0 + 20, 3 * len(foreign))]
    assert results.index((SET_ID, CLINIC)) == 2 * (2 * len(foreign) - 1)  # the end of its second round


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=40))
def test_only_repeated_copies_are_tried_each_combination_of_them_once(heard: list[tuple[int, int]]) -> None:
    """Copies heard in any order (3 indices, 3 chunks each, none forgotten), the budget ample: the search tries every
    combination of copies heard twice, once (a copy's second hearing is its arrival), and none with a copy heard once.
    (The latest copies, tried apart, are left out: they may try again what the search tried, as before.)"""
    kept = copies.Copies(3, T0, repeated_only=True)
    tried: list[tuple[bytes, ...]] = []
    t = T0
    with mock.patch.object(copies, "LATEST_OPENINGS", 0):
        for index, choice in [*heard, *[(None, None)] * 20]:  # (then time passes: the budget lets the rest through)
            if index is not None:
                kept.add(index, bytes([index, choice]) * 6 + b"\1")
            t += 100.0
            tried += [tuple(c.chunk for c in combination) for combination in kept.tries(t)]
    times = {(i, c): heard.count((i, c)) for i, c in heard}
    repeated = [sorted(bytes([i, c]) * 6 + b"\1" for c in range(3) if times.get((i, c), 0) >= 2) for i in range(3)]
    assert len(tried) == len(set(tried))
    assert set(tried) == set(itertools.product(*repeated))
