"""A close contact the daemon stores between ``bluezone check``'s early read of its store and the check's
open is reported, as a check that read the store only once it opened it reported it (d43da06); the
early read, lacking the contact's RPIs, stood for the store and the contact went unreported."""

from __future__ import annotations

import shutil
from pathlib import Path

from matching_helpers import DAY, SCORERS, day_file, encounter

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.check import check_keys
from bluezone.matching.linkminute import MIN_SIGHTINGS
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.heardread import EarlyRead

NOTHING_PURGED = (DAY + 6 * 144) * INTERVAL_SECONDS


def test_a_contact_stored_after_the_early_read_is_reported(tmp_path: Path) -> None:
    path, db, keys, _ = day_file(tmp_path)
    met = 2000  # a filler key's phone, met for 20 minutes at 1 m: a close contact
    rows = encounter(bytes(keys[met]["key"]), int(keys[met]["rolling_start"]) + 10, 20, rssi=-60)
    twin = tmp_path / "twin.db"
    shutil.copy(db, twin)
    with SightingStore.open(twin) as store:
        store.add_sightings(rows)
    plain = check_keys(path, twin, scorer=SCORERS["bluezone"], jobs=1, now=NOTHING_PURGED)
    assert any(e.key_index == met and e.score.close_contact for e in plain.exposures)
    with EarlyRead(db, MIN_SIGHTINGS) as early:
        assert early.result() is not None
        with SightingStore.open(db) as daemon:  # while the check imports numpy
            daemon.add_sightings(rows)
        checked = check_keys(path, db, scorer=SCORERS["bluezone"], jobs=1, now=NOTHING_PURGED, early=early)
    assert checked.exposures == plain.exposures and checked.sightings == plain.sightings
