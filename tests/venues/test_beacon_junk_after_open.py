"""Junk under a venue's set id after its set opened: the genuine frames are known by their bytes, so the junk forms a
set of its own, which must not be dropped (another venue sealed under the same set id must still open).  It spent
~24 AES-GCM openings a second for the epoch on fresh junk (research/beacon_junk.py, "café all fresh after").  A frame
under a set id and count that opened in this epoch is now let in at its second hearing: a beacon sends every frame
each round, junk sent once is never let in (``framesets.FrameSets.heard``, ``repeated_only``)."""

from __future__ import annotations

import random

import pytest
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.venues import beacon, framesets
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


@pytest.mark.parametrize("junk", [1, 4, 40])
def test_another_venue_opens_through_many_fresh_junk_copies_a_frame(junk: int) -> None:
    """``junk`` fresh copies after each of its frames: a first version, which kept every copy heard and tried those
    heard twice, forgot the venue's copies heard once (the oldest of those) before their second hearing from 4 copies
    a frame on, and it never opened."""
    assembler = beacon.FrameAssembler()
    for s, frame in enumerate(FRAMES):
        assembler.add(frame, -70, T0 + s)
    rng = random.Random(junk)
    foreign = sealed_under(SET_ID, CLINIC)
    for s in range(3 * len(foreign)):
        frame = foreign[s % len(foreign)]
        if assembler.add(frame, -70, T0 + 20 + s) == (SET_ID, CLINIC):
            break
        for v in range(junk):
            assert assembler.add(frame[:7] + rng.randbytes(beacon.CHUNK_BYTES), -70, T0 + 20 + s + 0.05 + v / 1000) is None
    assert s == 2 * len(foreign) - 1  # the end of its second round


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.booleans()), max_size=60))
def test_a_frame_under_an_opened_set_id_is_let_in_at_its_second_hearing(heard: list[tuple[int, bool]]) -> None:
    """Frames under the café's set id and count once its set opened (a chunk of 9, at any index, in any order): none
    is let into a set before it has been heard twice, and each is, from then on; nothing but the café opens."""
    table = framesets.FrameSets()
    times: dict[bytes, int] = {}
    for choice, _ in heard:
        frame = FRAMES[choice % len(FRAMES)][:7] + bytes([choice]) * beacon.CHUNK_BYTES
        times[frame] = times.get(frame, 0) + 1
        partial = table.heard(frame, T0, repeated_only=True)
        assert (partial is not None) == (times[frame] >= 2)
        if partial is not None:
            partial.copies.add(frame[5], frame[7:])
