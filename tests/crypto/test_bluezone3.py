"""Bluezone v3 IDs: the issue's vectors (computed from the app's source) and properties."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.crypto import bluezone3 as bz3
from bluezone.errors import InputError, PayloadError

ZEROS = bytes(32)


def reference_ids(key: bytes, slots: int) -> list[bytes]:
    """A straight transcription of the app's loop, one hash at a time, to check the batch against."""
    sub = hashlib.sha256(key + b"bluzonesubkey").digest()
    out = []
    for _ in range(slots):
        out.append(bytes(sub[o] for o in (0, 4, 8, 12, 16, 18, 20, 22, 24, 26, 28, 30)))
        sub = hashlib.sha256(sub).digest()
    return out


def test_vectors_of_the_zero_key() -> None:
    ids = bz3.ids_for_day(ZEROS)
    assert ids.shape == (96, 12)
    assert ids[0].tobytes().hex() == "490c085d937456a4dd07e710"
    assert ids[1].tobytes().hex() == "cc4111fec540c346ec6a053f"
    assert ids[95].tobytes().hex() == "3140c784cd06058bb930f6a7"


def test_vector_of_the_next_day() -> None:
    nxt = bz3.next_daily_key(ZEROS)
    assert nxt == hashlib.sha256(ZEROS).digest() == bz3.daily_key(ZEROS, 1)
    assert bz3.ids_for_day(nxt)[0].tobytes().hex() == "d80cc204fa6491af30d0932a"


def test_id_at_follows_the_utc_grid() -> None:
    day0 = 20_000
    t0 = day0 * 86400.0
    assert bz3.id_at(ZEROS, day0, t0).hex() == "490c085d937456a4dd07e710"
    assert bz3.id_at(ZEROS, day0, t0 + 899.999).hex() == "490c085d937456a4dd07e710"
    assert bz3.id_at(ZEROS, day0, t0 + 900.0).hex() == "cc4111fec540c346ec6a053f"
    assert bz3.id_at(ZEROS, day0, t0 + 86399.5).hex() == "3140c784cd06058bb930f6a7"
    assert bz3.id_at(ZEROS, day0, t0 + 86400.0).hex() == "d80cc204fa6491af30d0932a"


def test_slot_of_an_uneven_count_never_passes_the_last_slot() -> None:
    assert bz3.slot_of(86399.9999, 7) == 6
    assert bz3.slot_of(0.0, 7) == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=6), st.integers(1, 20))
def test_batch_equals_the_app_loop(keys: list[bytes], slots: int) -> None:
    got = bz3.ids_for_keys(keys, slots)
    assert got.shape == (len(keys), slots, 12)
    for k, row in zip(keys, got):
        assert [r.tobytes() for r in row] == reference_ids(k, slots)
    if keys:
        as_array = np.frombuffer(b"".join(keys), np.uint8).reshape(-1, 32)
        assert np.array_equal(bz3.ids_for_keys(as_array, slots), got)


@given(st.binary(max_size=64).filter(lambda b: len(b) != 32))
def test_wrong_key_lengths_are_input_errors(key: bytes) -> None:
    with pytest.raises(InputError, match="32 bytes"):
        bz3.ids_for_day(key)
    with pytest.raises(InputError):
        bz3.next_daily_key(key)


@given(st.binary(max_size=40))
def test_advert_id_is_exactly_12_bytes(data: bytes) -> None:
    if len(data) == 12:
        assert bz3.parse_advert_id(data) == data
    else:
        with pytest.raises(PayloadError):
            bz3.parse_advert_id(data)


@pytest.mark.parametrize("slots", [-1, 0, 1, 1441])
def test_slot_counts_out_of_range(slots: int) -> None:
    with pytest.raises(InputError, match="slots per day"):
        bz3.slot_ms(slots)


def test_backwards_chain_is_refused() -> None:
    with pytest.raises(InputError):
        bz3.daily_key(ZEROS, -1)
