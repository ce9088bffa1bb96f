"""How ``check_server`` joins a check's batches: the same keys as before, without holding them twice.

A node away for days downloads millions of keys in one check; joining them used to keep every
batch beside their concatenation, a Python ``bytes`` per key to find revisions of earlier keys,
and another copy for the keys' span.  The helpers that replace those must give the same answers.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.client.check import _concatenate_freeing, _first_of_each
from bluezone.keyformat.keys import empty_keys

POOL = [bytes([i]) * 15 + bytes([j]) for i in range(4) for j in (0, 1, 255)]  # few: keys repeat, prefixes shared


def _keys(draw: st.DrawFn, max_size: int) -> np.ndarray:
    picked = draw(st.lists(st.sampled_from(POOL), max_size=max_size))
    keys = empty_keys(len(picked))
    keys["key"] = np.array(picked, "V16") if picked else keys["key"]
    keys["rolling_start"] = draw(st.lists(st.integers(2_600_000, 2_700_000), min_size=len(picked), max_size=len(picked)))
    keys["rolling_period"] = draw(st.lists(st.integers(0, 144), min_size=len(picked), max_size=len(picked)))
    return keys


key_arrays = st.composite(_keys)


@given(st.lists(key_arrays(max_size=6), max_size=5))
def test_concatenate_freeing_is_concatenate(parts: list[np.ndarray]) -> None:
    expected = np.concatenate(parts) if parts else empty_keys(0)
    given_parts = list(parts)
    joined = _concatenate_freeing(given_parts)
    assert given_parts == []  # each part let go
    assert joined.dtype == expected.dtype and joined.tobytes() == expected.tobytes()


@settings(max_examples=200)
@given(key_arrays(max_size=40))
def test_first_of_each_keeps_each_key_where_it_first_appears(keys: np.ndarray) -> None:
    _, first = np.unique(keys["key"], return_index=True)  # what check_server did before
    expected = keys[np.sort(first)]
    assert _first_of_each(keys).tobytes() == expected.tobytes()


def test_first_of_each_of_distinct_keys_sharing_prefixes_keeps_them_all() -> None:
    keys = empty_keys(len(POOL))
    keys["key"] = np.array(POOL[::-1], "V16")
    assert _first_of_each(keys).tobytes() == keys.tobytes()
