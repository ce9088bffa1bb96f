"""HeardIndex.lookup finds a few RPIs by binary search over the heard RPIs' first eight bytes, and many
by a pass over every heard RPI: both give the same (candidate, heard row) pairs as comparing every
candidate with every heard RPI, whether the RPIs come in byte order (as the store hands them over)
or not, and where many share their first bytes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.matching.matcher import HeardIndex, SightingIndex

_PREFIXES = [bytes(8), b"\x01" * 8, b"\xff" * 8, b"\x80" + bytes(7)]  # few: RPIs sharing a first half


def _rpi(draw_bytes: bytes, shared: int | None) -> bytes:
    return (draw_bytes[:8] if shared is None else _PREFIXES[shared]) + draw_bytes[8:]


_rpis = st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.none() | st.integers(0, len(_PREFIXES) - 1)), max_size=40)


def _array(entries: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(entries), np.uint8).reshape(-1, 16)


@settings(max_examples=200, deadline=None)
@given(heard=_rpis, others=_rpis, picks=st.lists(st.integers(0, 1000), max_size=20), in_order=st.booleans())
def test_lookup_finds_the_pairs_a_comparison_of_every_rpi_finds(heard: list, others: list, picks: list, in_order: bool) -> None:
    stored = sorted({_rpi(b, s) for b, s in heard})  # distinct, as the store reads them
    if not in_order:
        stored = stored[::-1]
    candidates = [_rpi(b, s) for b, s in others] + [stored[p % len(stored)] for p in picks if stored]
    index = HeardIndex(_array(stored), np.arange(3))
    asked = _array(candidates)
    expected = {(c, r) for c, rpi in enumerate(candidates) for r, seen in enumerate(stored) if rpi == seen}
    # both ways: searched (few RPIs asked of many heard) and by a pass over every heard RPI (many)
    for which, rows in (index._searched(asked), SightingIndex.lookup(index, asked, np.zeros(len(asked), np.int64), 12)):
        assert set(zip(which.tolist(), rows.tolist())) == expected
        assert len(which) == len(expected)


def test_lookup_searches_for_few_rpis_and_passes_over_the_heard_ones_for_many(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    stored = np.frombuffer(rng.bytes(16 * 1000), np.uint8).reshape(-1, 16)
    index = HeardIndex(stored, np.arange(3))
    ways: list[str] = []
    monkeypatch.setattr(HeardIndex, "_searched", lambda self, rpis: ways.append("searched") or (np.empty(0, np.intp),) * 2)
    monkeypatch.setattr(SightingIndex, "lookup", lambda self, rpis, intervals, tolerance: ways.append("pass") or (np.empty(0, np.intp),) * 2)
    for asked in (stored[:10], stored[:100]):  # 1 in 100 of the heard RPIs, then 1 in 10
        index.lookup(asked, np.zeros(len(asked), np.int64), 12)
    assert ways == ["searched", "pass"]


def test_lookup_of_nothing_and_in_nothing() -> None:
    none = np.empty((0, 16), np.uint8)
    some = np.arange(32, dtype=np.uint8).reshape(2, 16)
    for stored, asked in ((none, some), (some, none)):
        which, rows = HeardIndex(stored, np.arange(3)).lookup(asked, np.zeros(len(asked), np.int64), 12)
        assert len(which) == len(rows) == 0
