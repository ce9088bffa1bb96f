"""Exposures earlier checks reported, kept until they are 14 days old; meetings across UTC midnight.

A check that finds no new batches must not read as all-clear right after an F1: the node keeps
what each check against a server reported (per diagnosis key hash and day, in its own store,
deleted with the retention), forgets what a revision withdraws (keeping only its key hash and day,
so a replayed old batch cannot report it again), replaces what it updates, and hands the next check
the exposures still in force.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.keys import REPORT_TYPE_CERTAINTY
from bluezone.matching.check import Exposure
from bluezone.proximity.store import SightingStore

#: ``REPORT_TYPE_CERTAINTY`` by report type, to index records with (a server's files only move a key up).
CERTAINTY = np.zeros(256, np.int8)
CERTAINTY[list(REPORT_TYPE_CERTAINTY)] = list(REPORT_TYPE_CERTAINTY.values())


#: The field of a remembered exposure that keeps the (certainty, transmission risk) pairs the exposures it replaced
#: were told at (a revision at one of them again is no news: ``ExposureMemory.news_of``); never shown in a report.
TOLD_BEFORE = "told_before"

#: Diagnosis keys by row: a KEY_DTYPE array, or, where a check streamed its keys and holds only the
#: few that matched, their key bytes by the row they would have in the keys joined.
Keys = np.ndarray | Mapping[int, Any]


def _key_hash(key: Any) -> bytes:
    return hashlib.sha256(bytes(key)).digest()


def told_among(keys: np.ndarray, told: AbstractSet[bytes]) -> np.ndarray:
    """For each of ``keys``, whether its hash is among ``told`` (``ExposureMemory.told_hashes``)."""
    if not told:  # the usual case: nothing to look for, no key hashed (a million revisions: ~4 s)
        return np.zeros(len(keys), bool)
    return np.array([_key_hash(k) in told for k in keys["key"]], bool)


class ExposureMemory:
    """What checks against one server reported, in the node's store."""

    def __init__(self, store: SightingStore, server: str) -> None:
        self.store = store
        self.server = server

    def in_force(self, now: float, leaving_out: Sequence[tuple[Keys, Sequence[Exposure]]] = ()) -> list[dict[str, Any]]:
        """The exposures reported before and still within the retention at ``now`` (as ``as_dict()``),
        oldest first, without those of ``leaving_out`` (keys, exposures) pairs."""
        gone = {pair for keys, found in leaving_out for pair in self._ids(keys, found)}
        return [
            {k: v for k, v in e.items() if k != TOLD_BEFORE}
            for h, day, e in self.store.reported_exposures(self.server, now) if (h, day) not in gone
        ]

    def not_reported(self, keys: Keys, exposures: Sequence[Exposure], now: float) -> list[Exposure]:
        """``exposures`` (``key_index`` rows of ``keys``) without those an earlier check reported for the
        same key and day: a key comes once from an honest server, again only in a file replayed under
        another name, and its exposure is then one of ``in_force``, not news."""
        told = {(h, day) for h, day, _ in self.store.reported_exposures(self.server, now)}
        told |= self.store.withdrawn_exposures(self.server)  # withdrawn stays withdrawn, whatever is replayed
        return [e for e, i in zip(exposures, self._ids(keys, exposures)) if i not in told]

    def told_about(self, keys: np.ndarray, now: float) -> np.ndarray:
        """For each of ``keys`` (revisions), whether an earlier check reported an exposure to that key:
        the revision changes what was told, even where the key itself comes again in the same check
        (a closed day's roll-up holds a key and its revision, and a node may have had the first file)."""
        return told_among(keys, self.told_hashes(now))

    def told_hashes(self, now: float) -> set[bytes]:
        """The key hashes of the exposures earlier checks reported (``told_among`` looks keys up in them)."""
        return {h for h, _, _ in self.store.reported_exposures(self.server, now)}

    def remember(self, keys: Keys, exposures: Sequence[Exposure], now: float) -> None:
        """Keep ``exposures`` (``key_index`` rows of ``keys``), replacing what was kept for the same key and day
        (what that said is kept with it: ``TOLD_BEFORE``)."""
        ids = self._ids(keys, exposures)
        told = self._told(now) if exposures else {}
        self.store.forget_reported_exposures(self.server, ids)
        rows = [(h, day, e.start, e.end, _with_told(e.as_dict(), told.get((h, day)))) for (h, day), e in zip(ids, exposures)]
        self.store.save_reported_exposures(self.server, rows, now)

    def forget(self, keys: Keys, exposures: Sequence[Exposure], now: float) -> None:
        """Drop what was kept for these exposures' keys and days (a report withdrawn), keeping only that
        they were withdrawn: the old batch that reported them is still validly signed, and served again
        (under another name) it must not bring them back as new."""
        ids = self._ids(keys, exposures)
        self.store.forget_reported_exposures(self.server, ids)
        self.store.save_withdrawn_exposures(self.server, ids, now)

    def news_of(self, keys: Keys, exposures: Sequence[Exposure], now: float) -> list[Exposure]:
        """Of ``exposures`` to revised keys of earlier checks (rows of ``keys``), those a revision really changed:
        a report type at least as certain as any told for the same key and day, at a (type, transmission risk) not
        told for it yet.  An old revision replayed under a new file name after a more certain one (or after the key
        was withdrawn) would step what the node remembers down; one replayed at the type told was "updated" again at
        every replay (attack20: 12 of 12), and two of one type at two risks at every check when replayed by turns
        (attack21): no signed time says which is newer, so each is told once.  Days since onset are no news here:
        nothing the node scores or says uses them."""
        told = self._told(now)
        gone = self.store.withdrawn_exposures(self.server)
        return [
            e for e, i in zip(exposures, self._ids(keys, exposures))
            if i not in gone and _is_news(_as_told(e.as_dict()), told.get(i, set()))
        ]

    def _told(self, now: float) -> dict[tuple[bytes, str], set[tuple[int, object]]]:
        """The (certainty, transmission risk) pairs told per (key hash, day) still in force: the one in force and
        those it replaced (``TOLD_BEFORE``)."""
        return {(h, day): {_as_told(e), *_told_before(e)} for h, day, e in self.store.reported_exposures(self.server, now)}

    @staticmethod
    def _ids(keys: Keys, exposures: Sequence[Exposure]) -> list[tuple[bytes, str]]:
        by_row = keys if isinstance(keys, Mapping) else keys["key"]
        return [(_key_hash(by_row[e.key_index]), e.date) for e in exposures]


def _as_told(exposure: Mapping[str, Any]) -> tuple[int, object]:
    """(``CERTAINTY`` of its report type, its transmission risk) of an exposure as remembered: what a revision
    changes (0: no type, or not a type: a row from before it was kept)."""
    report_type = exposure.get("report_type")
    certainty = int(CERTAINTY[report_type]) if isinstance(report_type, int) and 0 <= report_type < 256 else 0
    return certainty, exposure.get("transmission_risk")


def _told_before(exposure: Mapping[str, Any]) -> list[tuple[int, object]]:
    """The pairs (``_as_told``) an exposure as remembered replaced (none in a row of a version before they were
    kept: then only the one in force counts as told); entries that are not pairs are skipped (advisory)."""
    pairs = exposure.get(TOLD_BEFORE)
    if not isinstance(pairs, list):
        return []
    return [(p[0], p[1]) for p in pairs if isinstance(p, list) and len(p) == 2 and isinstance(p[0], int)]


def _with_told(exposure: dict[str, Any], told: set[tuple[int, object]] | None) -> dict[str, Any]:
    """``exposure`` (``as_dict()``) to remember, with the pairs ``told`` before for its key and day (None: none)."""
    if told:
        exposure[TOLD_BEFORE] = [[c, r] for c, r in sorted(told, key=repr)]
    return exposure


def _is_news(revised: tuple[int, object], told: set[tuple[int, object]]) -> bool:
    """Whether an exposure ``revised`` to (certainty, transmission risk) changes what was ``told`` (those pairs):
    never a step down the ladder, nor a pair told already."""
    return not told or (revised not in told and revised[0] >= max(c for c, _ in told))


#: The most time between the last sighting before UTC midnight and the first after it for two
#: exposures to read as one meeting: one RPI interval (a scan or two missed at the key change).
MIDNIGHT_GAP_SECONDS = float(INTERVAL_SECONDS)


def across_midnight(exposures: Sequence[Exposure], gap: float = MIDNIGHT_GAP_SECONDS) -> dict[int, int]:
    """Which of ``exposures`` continue one of the day before across UTC midnight: {index of the part
    after midnight: index of the part before}, each part in one pair at most (the nearest in time).

    Every daily key ends at UTC midnight, so a meeting over it is matched to two keys and scored as
    two exposures, one per UTC day, as GAEN does (its daily summaries; the export does not link one
    person's keys).  The decision stays per day; this only lets a report say the two are one meeting.
    """
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for j, later in enumerate(exposures):
        day = dt.date.fromisoformat(later.date)
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        if later.start > midnight + gap:
            continue
        before = (day - dt.timedelta(days=1)).isoformat()
        candidates = [
            i for i, e in enumerate(exposures)
            if i not in taken and e.date == before and e.protocol == later.protocol
            and e.end >= midnight - gap and 0 <= later.start - e.end <= gap
        ]
        if candidates:
            i = min(candidates, key=lambda i: later.start - exposures[i].end)
            pairs[j] = i
            taken.add(i)
    return pairs
