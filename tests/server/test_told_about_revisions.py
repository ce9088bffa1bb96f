"""``ExposureMemory.told_about``: which of a check's revisions revise a key an earlier check reported.
A node told of nothing (the usual case) hashes none of them: a SHA-256 per revision in Python was
~4 us each, 1.2 s of a 300,000-revision check (benchmarks/check_server_revisions.py)."""

from __future__ import annotations

import numpy as np
import pytest

import bluezone.client.exposures as exposures
from bluezone.client.exposures import ExposureMemory
from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.proximity.store import SightingStore

NOW = 1_760_000_000.0


def revisions(n: int) -> np.ndarray:
    keys = np.zeros(n, KEY_DTYPE)
    keys["key"] = np.random.default_rng(3).integers(0, 256, (n, 16), dtype=np.uint8).view("V16").reshape(n)
    return keys


def test_nothing_told_before_hashes_no_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hashing(key: object) -> bytes:
        raise AssertionError("a revision hashed with nothing to compare it with")

    monkeypatch.setattr(exposures, "_key_hash", no_hashing)
    with SightingStore.open(":memory:") as store:
        told = ExposureMemory(store, "https://keys.test").told_about(revisions(1000), NOW)
    assert told.dtype == bool and told.shape == (1000,) and not told.any()


def test_a_key_told_before_is_found_among_the_revisions() -> None:
    keys = revisions(50)
    with SightingStore.open(":memory:") as store:
        memory = ExposureMemory(store, "https://keys.test")
        hashed = exposures._key_hash(keys["key"][7])
        store.save_reported_exposures("https://keys.test", [(hashed, "2025-10-09", NOW - 3600, NOW - 1800, {"date": "2025-10-09"})], NOW)
        told = memory.told_about(keys, NOW)
    assert np.flatnonzero(told).tolist() == [7]


@pytest.mark.parametrize(
    "damaged", ["junk", None, 3, [[2]], [["2", 5]], [[2, 5, 1]], [None], {"a": 1}, [[True, 5], [3, None]]]
)
def test_a_damaged_told_before_in_a_remembered_exposure_is_skipped_not_fatal(damaged: object) -> None:
    """What earlier checks told is advisory (``TOLD_BEFORE``, kept inside the remembered exposure's JSON): a hand edit
    or another version's shape there neither crashes a check nor is shown; what is a pair still counts."""
    with SightingStore.open(":memory:") as store:
        memory = ExposureMemory(store, "https://keys.test")
        row = {"date": "2025-10-08", "report_type": 1, "transmission_risk": 5, exposures.TOLD_BEFORE: damaged}
        store.save_reported_exposures("https://keys.test", [(b"h" * 32, "2025-10-08", NOW - 600, NOW - 60, row)], NOW)
        assert all(exposures.TOLD_BEFORE not in e for e in memory.in_force(NOW))
        told = memory._told(NOW)[(b"h" * 32, "2025-10-08")]
        pairs = [p for p in damaged if isinstance(p, list) and len(p) == 2 and isinstance(p[0], int)] if isinstance(damaged, list) else []
        assert told == {exposures._as_told(row), *((c, r) for c, r in pairs)}
