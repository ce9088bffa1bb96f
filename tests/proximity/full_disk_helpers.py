"""A full disk for real, as SQLite sees one: what the full-disk tests of the daemon and its listeners share.

SQLite's ``max_page_count`` makes the database full (SQLITE_FULL, "database or disk is full"), as a full file system
would, without filling one."""

from __future__ import annotations

import sqlite3

from bluezone.proximity.store import SightingStore


def fill(store: SightingStore) -> None:
    """No page more, and no room in the pages there are: every write fails as on a full disk.
    The filler rows are expired (1970): never matched, and purged once there is room.

    A sighting filler stops at the first page it cannot have, which may be a leaf of the RPI
    index (its keys are random) while the table's last leaf still has room: a small batch of
    the daemon's then fitted (in 11 of 100 filled stores a batch of 5 or 22 sightings went in).
    So the last fillers are in no index (no time: what a purge or a read by time never sees)
    and end only when the table's last leaf is full: every new row goes there, so every
    sighting written after this fails."""
    conn = store.db.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    fillers = [
        "INSERT INTO daily_keys (key, rolling_start, rolling_period, created_at) VALUES (randomblob(16), 0, 1, 0)",
        "INSERT INTO sightings (time, rpi, aem, rssi) VALUES (0, randomblob(16), randomblob(4), -50)",
        "INSERT INTO sightings (time, rpi, aem, rssi) VALUES (NULL, zeroblob(16), zeroblob(4), -50)",
        # a check-in of nothing (no time: no read returns it, the purge deletes it), appended after every other in the
        # table and in its index by end time (NULL first, then by rowid), where a new check-in goes
        "INSERT INTO checkins (id) VALUES (NULL)",
    ]
    for sql in fillers:
        while True:
            try:
                with conn:
                    conn.execute(sql)
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)
                break


def make_room(store: SightingStore) -> None:
    store.db.conn.execute("PRAGMA max_page_count = 1073741823")
