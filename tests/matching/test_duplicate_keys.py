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
from matching_helpers import SCORERS, encounter, make_keys

import bluezone.keyformat.exportstream as exportstream
import bluezone.matching.check as check_module
import bluezone.matching.keystream as keystream
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.keyfile import write_keys_json
from bluezone.matching.check import check_key_file, check_keys, check_sightings
from bluezone.matching.matcher import keys_heard
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


def _file_with_a_key_in_three_batches(tmp_path):  # type: ignore[no-untyped-def]
    """The scene's keys with 40 others between them: the case's key at rows 0 and 21 (under its day) and 42 (under
    another window), the other case's at 43; in batches of 4 each copy is in a batch of its own."""
    rng = np.random.default_rng(7)
    fill = [(bytes(rng.bytes(16)), DAY, 144) for _ in range(40)]
    keys = make_keys([(CASE, DAY, 144), *fill[:20], (CASE, DAY, 144), *fill[20:], (CASE, DAY + 12, 100), (OTHER, DAY, 144)])
    _, db = _scene(tmp_path)
    write_keys_json(keys, tmp_path / "keys.json")
    return keys, db


@pytest.mark.parametrize("store_first", [False, True])
@pytest.mark.parametrize("buffer_keys", [0, None])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_key_in_several_batches_of_a_streamed_file_is_one_exposure(
    tmp_path, monkeypatch: pytest.MonkeyPatch, jobs: int, buffer_keys: int | None, store_first: bool
) -> None:  # type: ignore[no-untyped-def]
    """Copies of a key in batches of their own, matched by one process or by a worker and this one, the file
    streamed (``buffer_keys`` 0) or kept whole: one exposure a day, named by the first row, as the array's.  With
    two jobs, the store read first and the file kept, each batch's exposures were scored as found: two or three
    exposures of the case's one encounter."""
    keys, db = _file_with_a_key_in_three_batches(tmp_path)
    monkeypatch.setattr(keystream, "BATCH", 4)
    monkeypatch.setattr(keystream, "EARLY_BATCH", 4)
    monkeypatch.setattr(exportstream, "PIECE", 64)
    if store_first:  # the keys go to the worker from the first batch on, whichever thread would have been faster
        monkeypatch.setattr(check_module._HeardInBackground, "ready", lambda self: self._read.exception() is None)
    expected = check_keys(keys, db, now=NOW)
    assert [(e.key_index, e.sightings) for e in expected.exposures] == [(0, 180), (43, 180)]
    for _ in range(3):  # the batches' grouping varies with the worker's timing
        checked = check_key_file(tmp_path / "keys.json", db, now=NOW, jobs=jobs, buffer_keys=buffer_keys)
        assert checked.exposures == expected.exposures


def test_a_key_two_calls_found_is_scored_once_as_its_first_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``_ScoredAsFound`` told the batches' keys in calls of their own, a key's copies in different calls (in
    any order: a worker's batch collected late): one exposure, of the first row, as the array's."""
    keys, db = _file_with_a_key_in_three_batches(tmp_path)
    expected = check_keys(keys, db, scorer=SCORERS["bluezone"], now=NOW).exposures
    with SightingStore.open(db, create=False, any_thread=True, purge_now=NOW) as store:  # counted in a thread
        heard = check_module.HeardRpis.read_all(store)
        counting = check_module._CountInBackground(store, check_module.sightings_span(keys))
        try:
            scored = check_module._ScoredAsFound(heard, keys, counting, SCORERS["bluezone"], 0)
            for part in ([21, 43], [42], [0]):
                rows, rpis = keys_heard(keys[part], heard.index)
                scored.add(np.asarray(part)[rows], rpis)
            assert scored.exposures() == expected
        finally:
            counting.close()
