"""A streamed check reads the store's heard intervals without the keys' days (known only at the
end of the file), so every row's time: one dated far past any key's reach (a hand edit, a clock
gone wild; a check and a status keep such rows, they are in the future) made it fail with
'TypeError: must be real number, not NoneType' (no day end above it as a float) or an overflow,
where the same file checked as an array ignores the row.  A key's intervals are int32, so such a
row can match nothing: the streamed check reports what the array check reports."""

from __future__ import annotations

import sqlite3
import types
from pathlib import Path

import pytest
from matching_helpers import DAY, SCORERS, as_array, day_file

import bluezone.keyformat.exportstream as exportstream
import bluezone.matching.keystream as keystream
import bluezone.proximity.store.interface as store_module
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.check import check_key_file


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystream, "BATCH", 256)
    monkeypatch.setattr(exportstream, "PIECE", 4096)


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("when", [1e200, 1e25, 2.0**33 * INTERVAL_SECONDS])
def test_a_row_dated_past_every_key_changes_no_streamed_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: float) -> None:
    # the wall clock a few days after the scene, so that opening the store keeps it
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(time=lambda: (DAY + 5 * 144) * INTERVAL_SECONDS))
    path, db, _, _ = day_file(tmp_path)
    expected = as_array(path, db, "bluezone")
    assert expected.exposures
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO sightings (time, rpi, aem, rssi, tx_power, address)"
                     " SELECT ?, rpi, aem, rssi, tx_power, address FROM sightings LIMIT 1", (when,))
    assert as_array(path, db, "bluezone").as_dict() == expected.as_dict()
    for jobs in (1, 2):
        assert check_key_file(path, db, scorer=SCORERS["bluezone"], jobs=jobs, buffer_keys=500).as_dict() == expected.as_dict()
