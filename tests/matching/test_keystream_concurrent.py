"""Two key streams with ``jobs`` > 1 at once (two checks in threads of a program using bluezone as
a library, or one check started while another is between pieces): each one's workers must derive
against its own store's heard RPIs.  The workers used to find the index in a module global set when
the stream was made, but a fork pool forks at its first task, much later (after a million buffered
keys): another stream made in between had replaced the global (this one's keys derived against that
store), or had closed and cleared it (its workers failed on an assertion)."""

from __future__ import annotations

import numpy as np
import pytest

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.benchmark import synthetic_data
from bluezone.matching.keystream import KeyStream
from bluezone.matching.matcher import HeardIndex, keys_heard


def heard_of(sightings: np.ndarray) -> HeardIndex:
    rpis = np.ascontiguousarray(sightings["rpi"]).view(np.uint8).reshape(-1, 16)
    return HeardIndex(rpis, np.unique(np.floor(sightings["time"]).astype(np.int64) // INTERVAL_SECONDS))


@pytest.mark.parametrize("other_still_open", [True, False])
def test_a_stream_made_before_this_ones_first_batch_changes_nothing(other_still_open: bool) -> None:
    keys, sightings, _ = synthetic_data(700, 20_000, seed=11, planted=30)
    other_keys, other_sightings, _ = synthetic_data(700, 20_000, seed=12, planted=30)
    heard, other = heard_of(sightings), heard_of(other_sightings)
    rows, rpis = keys_heard(keys, heard)
    assert len(rows) >= 30 and len(keys_heard(keys, other)[0]) < len(rows)

    with KeyStream(heard, jobs=2) as stream:
        later = KeyStream(other, jobs=2)  # another check's stream, made before this one forks
        if not other_still_open:
            later.close()
        try:
            stream.add(keys)
            found = stream.finish()
        finally:
            later.close()
    assert np.array_equal(found.rows, rows)
    assert np.array_equal(found.rpis, rpis)
    assert found.count == len(keys)
