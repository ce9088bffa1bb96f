"""What a check reported is kept by its end too (schema 10): two venue exposures of one visit and day
that start together and end apart (two cases at the venue, one leaving earlier) were one row, the
second replacing the first, so the next check repeated only one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluezone.proximity.store import schema as store_module
from bluezone.proximity.store import SightingStore

NOW = 1_764_900_000.0  # 2025-12-05
SERVER = "https://keys.example#venues"
KEY = b"h" * 8 + (7).to_bytes(8, "big")  # a venue's location hash and the visit's id, as check.py keys them
START = NOW - 3 * 3600


def _exposure(end: float, cases: int = 1) -> tuple[bytes, str, float, float, dict[str, object]]:
    shown = {"checkin_id": 7, "overlap_start": START, "overlap_end": end, "cases": cases}
    return KEY, "2025-12-04", START, end, shown


def test_two_exposures_starting_together_and_ending_apart_are_both_kept() -> None:
    with SightingStore.open(":memory:") as store:
        store.save_reported_exposures(SERVER, [_exposure(START + 3600), _exposure(START + 1800)], NOW)
        kept = sorted(e["overlap_end"] for _, _, e in store.reported_exposures(SERVER, NOW))
    assert kept == [START + 1800, START + 3600]


def test_the_same_exposure_reported_again_is_still_one_row() -> None:
    with SightingStore.open(":memory:") as store:
        store.save_reported_exposures(SERVER, [_exposure(START + 3600)], NOW)
        store.save_reported_exposures(SERVER, [_exposure(START + 3600, cases=2)], NOW + 60)
        [(_, _, exposure)] = store.reported_exposures(SERVER, NOW + 60)
    assert exposure["cases"] == 2


def test_a_schema_9_store_keeps_its_reported_exposures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "node.db"
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:9])
        m.setattr(store_module, "SCHEMA_VERSION", 9)
        with SightingStore.open(path, purge_now=NOW) as store:
            assert store.schema_version == 9
            store.save_reported_exposures(SERVER, [_exposure(START + 3600)], NOW)
    with SightingStore.open(path, create=False, purge_now=NOW) as store:
        assert store.schema_version == store_module.SCHEMA_VERSION >= 10
        assert [e["overlap_end"] for _, _, e in store.reported_exposures(SERVER, NOW)] == [START + 3600]
        store.save_reported_exposures(SERVER, [_exposure(START + 1800)], NOW)
        assert len(store.reported_exposures(SERVER, NOW)) == 2
    assert path.stat().st_mode & 0o777 == 0o600
