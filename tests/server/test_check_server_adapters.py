"""``check --server`` reads the store as ``check --keys`` does: a calibration's RSSI correction added to the sightings
of the adapter it was measured on only (tests/matching/test_check_adapters.py for the key file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import NOW, published_f0_keys

from bluezone.client.check import check_server
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.state import ServerState
from bluezone.matching.check import Exposure
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.adapters import RssiCorrection

HERE, THERE = "00:1A:7D:DA:71:13", "5C:F3:70:8B:12:01"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[KeyServerClient, Path]]:
    """A key server that published F0's keys, and node B's store (30 min near F0)."""
    storage, _, client, nodes = published_f0_keys(tmp_path)
    yield client, nodes["b"]
    storage.close()


def checked(client: KeyServerClient, db: Path, tmp_path: Path, correction: int | RssiCorrection,
            heard_by: str | None = None) -> list[Exposure]:
    """The exposures a first check of a copy of ``db`` finds, its sightings heard by ``heard_by`` (None: not recorded)."""
    copy = tmp_path / f"copy-{len(list(tmp_path.glob('copy-*.db')))}.db"
    with SightingStore.open(db, create=False, purge_now=NOW) as store:
        store.db.conn.execute("VACUUM INTO ?", (str(copy),))
    with SightingStore.open(copy, create=False, purge_now=NOW) as store:
        if heard_by is not None:
            with store.db.conn as conn:  # as a daemon of schema 14 writes them
                conn.execute("INSERT INTO adapters (id, address, last_used) VALUES (1, ?, ?)", (heard_by, NOW))
                conn.execute("UPDATE sightings SET adapter = 1")
        return check_server(client, ServerState(store), None, rssi_correction=correction, now=NOW).exposures


def test_check_server_corrects_only_the_calibrated_adapters_sightings(
    world: tuple[KeyServerClient, Path], tmp_path: Path
) -> None:
    client, db = world
    none, every = checked(client, db, tmp_path, 0), checked(client, db, tmp_path, 6)
    assert [e.score for e in none] != [e.score for e in every]  # the correction moves this scene's verdicts' numbers
    other = checked(client, db, tmp_path, RssiCorrection(6, HERE), heard_by=THERE)
    assert [e.score for e in other] == [e.score for e in none]
    assert [e.uncorrected for e in other] == [((THERE, e.sightings),) for e in other]
    own = checked(client, db, tmp_path, RssiCorrection(6, HERE), heard_by=HERE)
    assert [e.score for e in own] == [e.score for e in every] and all(e.uncorrected == () for e in own)
    unrecorded = checked(client, db, tmp_path, RssiCorrection(6, HERE))
    assert [e.score for e in unrecorded] == [e.score for e in every]
    assert [e.unrecorded for e in unrecorded] == [e.sightings for e in unrecorded]
