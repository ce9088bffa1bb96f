"""A check keeps no reference to its early read's blobs once it has made its arrays of them: they stayed
referenced by the ``EarlyRead`` (the CLI's, open for the whole check), 16 MB per million distinct RPIs
(the worst-case store of one sighting per RPI), through the whole derivation of the keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from matching_helpers import DAY, SCORERS, day_file

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.check import check_keys
from bluezone.matching.linkminute import MIN_SIGHTINGS
from bluezone.proximity.store.heardread import EarlyRead

NOTHING_PURGED = (DAY + 6 * 144) * INTERVAL_SECONDS


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_early_read_s_blobs_are_let_go_once_used(tmp_path: Path, jobs: int) -> None:
    path, db, _, _ = day_file(tmp_path, per_rpi=1)  # every RPI heard once: numpy groups them, in arrays of their own
    plain = check_keys(path, db, scorer=SCORERS["bluezone"], jobs=jobs, now=NOTHING_PURGED)
    with EarlyRead(db, MIN_SIGHTINGS) as early:
        read = early.result()
        assert read is not None and not read.blobs.grouped
        blobs = [blob for blob, _ in read.blobs.parts]
        del read
        checked = check_keys(path, db, scorer=SCORERS["bluezone"], jobs=jobs, now=NOTHING_PURGED, early=early)
        assert early.result() is not None  # it was read, and used
        held = [sys.getrefcount(blob) - 3 for blob in blobs]  # (less this list's, the loop's and the call's)
    assert checked.exposures == plain.exposures
    assert held == [0] * len(blobs), "the early read's blobs are still referenced after the check"
