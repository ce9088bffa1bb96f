"""A key listed twice in what a check matches is one person's key: one exposure a day, not one per row.

`check --keys` of a file with a key twice (a hand-merged file, two exports joined) and the same daily key
under a second window said '4 exposure(s), 4 close contact(s) (F1) from 4 keys' for two encounters, one of
them 'a likely case' besides 'confirmed'.  `check --server` keeps the first of each key (a server publishes a
key once, ``client.check._first_of_each``): a file now says what a server's batches with those keys say.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_helpers import encounter, make_keys

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.keyfile import write_keys_json
from bluezone.matching.check import check_key_file, check_keys, check_sightings
from bluezone.proximity.store import SightingStore

DAY = 2_947_104  # a UTC midnight's interval (2026-01-13)
NOW = (DAY + 144) * INTERVAL_SECONDS + 3600
CASE, OTHER = bytes(range(16)), bytes(range(1, 17))


def _scene(tmp_path):  # type: ignore[no-untyped-def]
    """Two 30-minute encounters, and a file listing the first case's key three times (once under another window)."""
    sightings = encounter(CASE, DAY + 60, 30, -55)
    other = encounter(OTHER, DAY + 90, 30, -55)
    keys = make_keys([(CASE, DAY, 144), (CASE, DAY, 144), (CASE, DAY + 12, 100), (OTHER, DAY, 144)])
    keys["report_type"] = [1, 2, 1, 1]
    keys["transmission_risk"] = [3, 6, 4, 3]
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        store.add_sightings(sightings)
        store.add_sightings(other)
    return keys, db


@pytest.mark.parametrize("how", ["array", "file", "streamed", "sightings"])
def test_a_key_listed_twice_is_one_exposure_of_its_first_row(tmp_path, how: str) -> None:  # type: ignore[no-untyped-def]
    keys, db = _scene(tmp_path)
    if how == "sightings":
        with SightingStore.open(db, create=False, purge_now=NOW) as store:
            exposures = check_sightings(keys, store.sightings())
    else:
        if how != "array":
            write_keys_json(keys, tmp_path / "keys.json")
        if how == "streamed":  # matched as the file is read, as a file of over a million keys is
            exposures = check_key_file(tmp_path / "keys.json", db, now=NOW, buffer_keys=1).exposures
        else:
            exposures = check_keys(keys if how == "array" else tmp_path / "keys.json", db, now=NOW).exposures
    assert [(e.key_index, e.sightings, e.score.minutes, e.report_type, e.transmission_risk) for e in exposures] == [
        (0, 180, 30.0, 1, 3), (3, 180, 30.0, 1, 3),
    ]


@settings(max_examples=25, deadline=None)
@given(copies=st.lists(st.integers(0, 3), min_size=0, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_copies_of_keys_anywhere_change_no_exposure(copies: list[int], seed: int) -> None:
    """Rows copied anywhere among the keys: the same exposures, each named by the first row of its key."""
    keys = make_keys([(CASE, DAY, 144), (OTHER, DAY, 144)])
    sightings = np.concatenate([encounter(CASE, DAY + 60, 30, -55), encounter(OTHER, DAY + 90, 30, -55)])
    rng = np.random.default_rng(seed)
    listed = keys.copy()
    for row in copies:
        listed = np.insert(listed, int(rng.integers(0, len(listed) + 1)), keys[row % len(keys)])

    def said(found, of):  # type: ignore[no-untyped-def]
        return [(bytes(of["key"][e.key_index]), e.date, e.start, e.end, e.sightings) for e in found]

    expected = said(check_sightings(keys, sightings), keys)
    got = check_sightings(listed, sightings)
    assert said(got, listed) == expected
    for e in got:  # the first row listing its key
        assert e.key_index == int(np.flatnonzero(listed["key"] == listed["key"][e.key_index])[0])
