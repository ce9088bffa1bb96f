"""A backup restored over the store in place (``cp backup.db store.db``: the same inode) between ``bluezone
check``'s early read of its store and the check's open is checked as the store it then is.  The backup,
older and smaller, holds a close contact the live store had lost (its rows deleted since) and no row past
the largest the early read saw: the early read, lacking the contact's RPIs, stood for the store (same
file, no new row) and the contact went unreported.  Now the early read is used only if the file's size,
modification and change times are those it had before the read."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

from matching_helpers import DAY, SCORERS, day_file, encounter

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.check import check_keys
from bluezone.matching.linkminute import MIN_SIGHTINGS
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.heardread import EarlyRead

NOTHING_PURGED = (DAY + 6 * 144) * INTERVAL_SECONDS


def _read_ended() -> None:
    """The early read's thread ended (its read done and its connection closed), without asking it for its result."""
    for thread in threading.enumerate():
        if thread.name == "bluezone-early-read":
            thread.join()


def test_a_backup_restored_in_place_after_the_early_read_is_checked_as_it_is(tmp_path: Path) -> None:
    path, db, keys, _ = day_file(tmp_path)
    met, other = 2000, 2001  # filler keys' phones, each met for 20 minutes at 1 m: close contacts
    contact = encounter(bytes(keys[met]["key"]), int(keys[met]["rolling_start"]) + 10, 20, rssi=-60)
    later = encounter(bytes(keys[other]["key"]), int(keys[other]["rolling_start"]) + 10, 30, rssi=-60)
    with SightingStore.open(db) as store:
        store.add_sightings(contact)
    backup = tmp_path / "backup.db"
    shutil.copy(db, backup)  # the store with the contact
    with SightingStore.open(db) as store:
        store.add_sightings(later)  # more rows since, then the contact's deleted
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM sightings WHERE rowid IN (SELECT rowid FROM sightings ORDER BY rowid DESC LIMIT ? OFFSET ?)",
                     [len(contact), len(later)])
    conn.close()
    assert os.path.getsize(backup) < os.path.getsize(db)
    twin = tmp_path / "twin.db"
    shutil.copy(backup, twin)
    plain = check_keys(path, twin, scorer=SCORERS["bluezone"], jobs=1, now=NOTHING_PURGED)
    assert any(e.key_index == met and e.score.close_contact for e in plain.exposures)

    inode = os.stat(db).st_ino
    with EarlyRead(db, MIN_SIGHTINGS) as early:
        _read_ended()
        shutil.copyfile(backup, db)  # `cp backup.db store.db`: written over, the same file
        assert os.stat(db).st_ino == inode and not os.path.exists(f"{db}-wal")
        checked = check_keys(path, db, scorer=SCORERS["bluezone"], jobs=1, now=NOTHING_PURGED, early=early)
    assert checked.exposures == plain.exposures and checked.sightings == plain.sightings


def test_an_untouched_store_is_still_read_early(tmp_path: Path) -> None:
    """No false alarm where nothing changed: the early read is what the check uses."""
    path, db, _, _ = day_file(tmp_path)
    with EarlyRead(db, MIN_SIGHTINGS) as early:
        assert early.result() is not None
        checked = check_keys(path, db, scorer=SCORERS["bluezone"], jobs=1, now=NOTHING_PURGED, early=early)
        assert early.result() is not None  # (kept, its blobs given up once used)
    assert checked.exposures
