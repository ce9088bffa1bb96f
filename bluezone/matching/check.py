"""The whole check: diagnosis keys + stored sightings -> scored exposures.

Thin on purpose: ``bluezone check --keys`` is ``check_keys`` plus printing, and a Python
user gets the same exposures from ``check_sightings(load_keys(path), sightings)``.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bluezone.crypto.derivation import import_aes
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD
from bluezone.inthread import InThread, ctrl_c_deferred
from bluezone.keyformat.keys import REPORT_TYPE_CONFIRMED, REPORT_TYPE_LIKELY, REPORT_TYPE_RECURSIVE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.matcher import (
    DEFAULT_TX_POWER,
    TOLERANCE_INTERVALS,
    ExposureWindow,
    HeardIndex,
    find_exposures,
    keys_heard,
)
import bluezone.matching.keystream as keystream
from bluezone.matching.keystream import BufferedStream, HeardKeys, KeyStream, revising
from bluezone.matching.receiver import MIN_SIGHTINGS, DaysRead, StoredReceiverContext, context_for, for_receiver, slot_seconds_of
from bluezone.matching.scoring import Score, Scorer, get_scorer
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.adapters import RssiCorrection
from bluezone.proximity.store.heardread import EarlyRead

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec


#: What a report type says of the case (``Exposure.diagnosis``).
DIAGNOSES = {REPORT_TYPE_CONFIRMED: "confirmed", REPORT_TYPE_LIKELY: "likely"}


@dataclass(frozen=True)
class Exposure:
    """One exposure window with its score, ready to print."""

    date: str  # UTC day, ISO format
    start: float  # Unix seconds of the first and last matched sighting
    end: float
    sightings: int
    key_index: int  # row of the diagnosis key in the key file
    transmission_risk: int
    tx_power_estimated: bool
    score: Score
    protocol: str = "gaen"  # what the key came as: "gaen" (diagnosis key) or "bluezone3" (F0 list entry)
    report_type: int = 0  # the key's GAEN report type (RECURSIVE: the keys of a close contact, F1)
    earlier_level: str | None = None  # of a revised key: the level an earlier check reported (F1, F2)
    #: Its sightings the RSSI correction was not applied to, heard by another adapter than the calibrated one:
    #: (address, how many), "" for an adapter that could not say its address (``RssiCorrection``).
    uncorrected: tuple[tuple[str, int], ...] = ()
    unrecorded: int = 0  # its sightings stored with no adapter recorded (before schema 14): corrected as before

    @property
    def level(self) -> str | None:
        """``F1`` (a close contact of a case), ``F2`` (of a close contact: recursive keys), None: not close.

        Levels stop at F2: recursive keys come only from an F1 (a health authority's recursive code)."""
        if not self.score.close_contact:
            return None
        return "F2" if self.report_type == REPORT_TYPE_RECURSIVE else "F1"

    @property
    def contact_of(self) -> str:
        """Whose keys matched: ``F1`` (a close contact's, recursive) or ``F0`` (a case's)."""
        return "F1" if self.report_type == REPORT_TYPE_RECURSIVE else "F0"

    @property
    def diagnosis(self) -> str | None:
        """The case's diagnosis the keys were published under: ``confirmed`` (a positive test) or ``likely``
        (a clinical diagnosis, no test yet: GAEN's report type 2, which a later test confirms or withdraws);
        None for a close contact's (recursive) keys, which rest on no diagnosis of their own, and for keys
        of no known type."""
        return DIAGNOSES.get(self.report_type)

    @classmethod
    def from_window(cls, window: ExposureWindow, score: Score) -> Exposure:
        return cls(
            date=dt.datetime.fromtimestamp(window.day, dt.UTC).date().isoformat(),
            start=window.start,
            end=window.end,
            sightings=len(window),
            key_index=window.key_index,
            transmission_risk=window.transmission_risk,
            tx_power_estimated=window.tx_power_estimated,
            score=score,
            report_type=window.report_type,
        )

    def as_dict(self) -> dict[str, Any]:
        s = self.score
        return {
            "date": self.date,
            "start": dt.datetime.fromtimestamp(self.start, dt.UTC).isoformat(timespec="seconds"),
            "end": dt.datetime.fromtimestamp(self.end, dt.UTC).isoformat(timespec="seconds"),
            "duration_minutes": s.minutes,
            "weighted_minutes": s.weighted_minutes,
            "minutes_by_bucket": s.minutes_by_bucket,
            "closest_attenuation_db": s.closest_attenuation,
            "typical_attenuation_db": s.typical_attenuation,
            "distance_band": s.distance_band,
            "close_contact": s.close_contact,
            "scorer": s.scorer,
            "sightings": self.sightings,
            "key_index": self.key_index,
            "transmission_risk": self.transmission_risk,
            "tx_power_estimated": self.tx_power_estimated,
            "protocol": self.protocol,
            "report_type": self.report_type,
            "contact_of": self.contact_of,
            "diagnosis": self.diagnosis,
            "level": self.level,
            **({"earlier_level": self.earlier_level} if self.earlier_level else {}),
            **({"uncorrected_sightings": {a or "unknown": n for a, n in self.uncorrected}} if self.uncorrected else {}),
            **({"unrecorded_sightings": self.unrecorded} if self.unrecorded else {}),
        }


def check_sightings(
    keys: np.ndarray,
    sightings: np.ndarray,
    scorer: Scorer | None = None,
    *,
    rssi_correction: int = 0,
    default_tx_power: int = DEFAULT_TX_POWER,
    calibrate_receiver: bool = True,
    jobs: int = 1,
) -> list[Exposure]:
    """Scored exposures of ``sightings`` against diagnosis ``keys``, by date then start.

    With ``calibrate_receiver`` a scorer that supports it (``for_receiver``) is first told this
    receiver's per-day reference attenuation, measured from all of ``sightings``
    (``bluezone.matching.receiver``); other scorers are used as given.  ``jobs``: processes for
    matching (``matcher.match``); the result does not depend on it.
    """
    scorer = scorer or get_scorer()
    if calibrate_receiver and hasattr(scorer, "for_receiver"):
        scorer = for_receiver(scorer, context_for(scorer, sightings, rssi_correction=rssi_correction))
    # as GAEN clients do: keys whose positive report was revoked (a negative test) never match
    revoked = keys["report_type"] == REPORT_TYPE_REVOKED
    usable = np.flatnonzero(~revoked)
    windows = find_exposures(
        keys[usable] if revoked.any() else keys,  # no copy of a national day's keys when none is revoked
        sightings, rssi_correction=rssi_correction, default_tx_power=default_tx_power, jobs=jobs,
    )
    return _scored(windows, usable, scorer)


def _scored(
    windows: list[ExposureWindow], key_rows: np.ndarray, scorer: Scorer,
    heard_by: Callable[[ExposureWindow], dict[str, Any]] = lambda window: {},
) -> list[Exposure]:
    """The windows' exposures by date then start, each naming its key as ``key_rows[window.key_index]`` (and what
    ``heard_by`` says of its sightings' adapters)."""
    exposures = [
        replace(Exposure.from_window(w, scorer.score(w)), key_index=int(key_rows[w.key_index]), **heard_by(w))
        for w in windows
    ]
    return sorted(exposures, key=lambda e: (e.date, e.start))


def as_correction(rssi_correction: int | RssiCorrection) -> RssiCorrection:
    """``rssi_correction`` as a store read applies it: a bare number, to every sighting (as before adapters were
    recorded)."""
    return rssi_correction if isinstance(rssi_correction, RssiCorrection) else RssiCorrection(int(rssi_correction))


@dataclass(frozen=True)
class CorrectedSightings:
    """A store's sightings as a check reads them (a ``SightingSource``): ``correction`` added to the RSSI of those it
    applies to (the calibrated adapter's, and those with no adapter recorded), in SQLite as they are read, so the
    matcher and the receiver's context both get each sighting's own corrected RSSI."""

    store: SightingStore
    correction: RssiCorrection

    def usable_sightings(self, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        return self.store.usable_sightings(since, until, self.correction)

    def sightings_with_rpis(self, rpis: np.ndarray, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        return self.store.sightings_with_rpis(rpis, since, until, self.correction)

    def count_sightings(self, since: float, until: float, at_most: int | None = None) -> int:
        return self.store.count_sightings(since, until, at_most)

    def heard_by(self, windows: list[ExposureWindow], ids: np.ndarray) -> Callable[[ExposureWindow], dict[str, Any]]:
        """For each of ``windows`` (of the rows of store ids ``ids``), ``Exposure``'s ``uncorrected`` and
        ``unrecorded``: which of its sightings the correction skipped, as another adapter's, and which it corrected
        only because no adapter was recorded (what ``check`` says of them).  Read only where there is a correction of
        a known adapter: else every sighting was corrected alike."""
        c = self.correction
        if c.db == 0 or c.adapter is None or not windows:
            return lambda window: {}
        rows = np.concatenate([w.sighting_index for w in windows])
        address = dict(zip(rows.tolist(), self.store.adapter_addresses(ids[rows])))

        def said(window: ExposureWindow) -> dict[str, Any]:
            heard = [address[i] for i in window.sighting_index.tolist()]
            other = Counter(a for a in heard if not c.applies_to(a))
            return {"uncorrected": tuple(sorted(other.items())), "unrecorded": heard.count(None)}

        return said


def check_store(
    keys: np.ndarray,
    store: SightingStore,
    scorer: Scorer | None = None,
    *,
    rssi_correction: int | RssiCorrection = 0,
    jobs: int = 1,
    days: tuple[float, float] | None = None,
    heard: HeardRpis | None = None,
) -> tuple[int, list[Exposure]]:
    """(usable sightings the keys could match, exposures): ``check_sightings`` of the store's
    sightings in the whole days of the keys' span (or in ``days``, when several key sets are checked
    as if against one read of the store), without reading them all.

    The store's distinct RPIs are read once, from its index by RPI (``heard_rpis``), and every
    key is derived against them (``keys_heard``, in ``jobs`` processes); then only the full
    rows of the RPIs found are read and matched as ``check_sightings`` matches.  A scorer that
    supports it is told the receiver's context as ``check_sightings`` tells it, read only for
    the minutes and days it judges (``StoredReceiverContext``).  The exposures are the same.
    ``heard``: those RPIs, already read for more days (``check_key_file`` reads them all while its
    file is read): a key found only by an RPI heard outside ``days`` matches no row of the span, so
    the exposures stay the same.
    """
    scorer = scorer or get_scorer()
    revoked = keys["report_type"] == REPORT_TYPE_REVOKED
    usable = np.flatnonzero(~revoked)
    span = sightings_span(keys)
    if span is None:
        return 0, []
    days = days or whole_days(span)
    if heard is None:
        every, repeated = store.heard_rpis(*days, repeated=MIN_SIGHTINGS)
        heard = HeardRpis(store, HeardIndex(every, store.heard_intervals(*span)), repeated)
    # no copy of a national day's keys when none is revoked (as check_sightings)
    found, rpis = keys_heard(keys[usable] if revoked.any() else keys, heard.index, jobs=jobs)
    exposures = heard.exposures(keys[usable[found]], usable[found], rpis, span, days, scorer, rssi_correction)
    return store.count_usable(*span), exposures


def sightings_span(keys: np.ndarray) -> tuple[float, float] | None:
    """Unix-seconds range of sightings that can match ``keys`` (validity +- 2 h)."""
    if len(keys) == 0:
        return None
    starts = keys["rolling_start"].astype(np.int64)
    periods = keys["rolling_period"].astype(np.int64)
    ends = starts + np.where(periods == 0, ROLLING_PERIOD, periods)  # 0: a whole day, as the matcher reads it
    return (
        float((starts.min() - TOLERANCE_INTERVALS) * INTERVAL_SECONDS),
        float((ends.max() + TOLERANCE_INTERVALS) * INTERVAL_SECONDS),
    )


#: ``sightings_span`` of every key a file can hold (rolling start and period are int32).
_ANY_KEY_SPAN = keystream.span_of(-(2**31), 2 * (2**31 - 1))


def whole_days(span: tuple[float, float]) -> tuple[float, float]:
    """``span`` widened to the UTC days it touches: what a check reads, because the receiver's
    self-calibration takes each day's reference from everything stored that day (as the simulator,
    on which its defaults were chosen, does), not from the part of it the key file happens to cover."""
    return float(span[0] // DAY_SECONDS * DAY_SECONDS), float(-(-span[1] // DAY_SECONDS) * DAY_SECONDS)


def within(sightings: np.ndarray, span: tuple[float, float]) -> int:
    """How many of ``sightings`` lie in ``span`` (``since <= time < until``, as the store reads)."""
    return int(np.count_nonzero((sightings["time"] >= span[0]) & (sightings["time"] < span[1])))


@dataclass(frozen=True)
class HeardRpis:
    """What a check reads of a store before it derives any key: the distinct RPIs it heard (as an
    index, with the intervals it heard anything in), and those heard at least ``MIN_SIGHTINGS`` times
    (or a superset of them); then ``exposures`` of the keys found to have sent some of them.

    Read once and shared by every key set of a check (``check_store``'s, a key file's streamed as it
    is read, ``check --server``'s batches matched as they download)."""

    store: SightingStore
    index: HeardIndex
    repeated: np.ndarray
    bluezone3_held: int = 0  # the store's Bluezone v3 sightings (``bluezone3_sightings_held``), read in the same open

    @classmethod
    def read_all(cls, store: SightingStore, early: EarlyRead | None = None) -> HeardRpis:
        """Every RPI ``store`` holds, for keys whose days are not known yet (a file or a server's
        batches still arriving: the store holds 14 days, and a national file covers them all); taken
        from ``early`` (joined already: read before the open's purge, a superset) when it read this file."""
        # Reading a wider range than check_store finds keys whose RPIs were heard only outside the
        # keys' days; none of their rows lies in the span read later, so they match nothing, and the
        # exposures stay the same.  The intervals only where a key can reach (its interval numbers are
        # int32): a row dated past them (a hand edit, a clock gone wild) matches nothing, and has no
        # interval to read.
        read = None if early is None else early.take()  # (its blobs not kept once the arrays are made)
        arrays = None if read is None else store.heard_rpis_read_before(read, MIN_SIGHTINGS)
        every, repeated = store.heard_rpis(repeated=MIN_SIGHTINGS) if arrays is None else arrays
        return cls(store, HeardIndex(every, store.heard_intervals(*_ANY_KEY_SPAN)), repeated, store.bluezone3_sightings_held())

    def exposures(
        self,
        keys: np.ndarray,
        key_rows: np.ndarray,
        rpis: np.ndarray,
        span: tuple[float, float],
        days: tuple[float, float],
        scorer: Scorer,
        rssi_correction: int | RssiCorrection,
        days_read: DaysRead | None = None,
    ) -> list[Exposure]:
        """``check_store``'s exposures once the keys that sent a heard RPI are known: ``keys`` (rows
        ``key_rows`` of their file) and the ``rpis`` they sent, matched against the store's full rows
        of those RPIs in ``span``, judged with the receiver's context of ``days`` (its whole days read
        into ``days_read``, when given: shared by the calls for other keys of the same check)."""
        source = CorrectedSightings(self.store, as_correction(rssi_correction))  # (read corrected: no more to add)
        rows, ids = source.sightings_with_rpis(rpis, *span)
        if hasattr(scorer, "for_receiver"):
            context = StoredReceiverContext(
                source, ids, days, self.repeated, slot_seconds=slot_seconds_of(scorer), days_read=days_read
            )
            scorer = for_receiver(scorer, context)
        windows = find_exposures(keys, rows)
        return _scored(windows, key_rows, scorer, source.heard_by(windows, ids))


def _open_and_read_heard(db_path: Path | str | None, now: float | None, early: EarlyRead | None) -> HeardRpis:
    if early is not None:
        early.result()  # its thread joined and its connection closed before the open's purge (EarlyRead)
    store = SightingStore.open(db_path, create=False, any_thread=True, purge_now=now)
    try:
        return HeardRpis.read_all(store, early)
    except BaseException:
        store.close()
        raise


class _HeardInBackground:
    """The store opened and ``HeardRpis.read_all`` in a thread of its own, started at once: SQLite lets go
    of the GIL while it reads, so this runs while the calling thread inflates and parses the key
    file (zlib and SHA-256 let go of it too), instead of after it."""

    def __init__(self, db_path: Path | str | None, now: float | None, early: EarlyRead | None) -> None:
        self._read = InThread("bluezone-store", lambda: _open_and_read_heard(db_path, now, early))

    def result(self) -> HeardRpis:
        """The store and what was read of it (or the error that stopped it), once read; the thread
        has ended when this returns, so no thread is running when the matcher forks its workers."""
        return self._read.result()

    def ready(self) -> bool:
        """Whether the store has been read, without error (not waiting for it)."""
        return self._read.done() and self._read.exception() is None

    def close(self) -> None:
        """Wait for the read and close the store.  Its error, if it failed, is dropped here: a bad
        key file's error comes first (the store's is raised by ``result``)."""
        try:
            self._read.join()
        finally:  # (closed after a Ctrl-C meanwhile too)
            if self._read.exception() is None:
                self._read.result().store.close()


class _CountInBackground:
    """``store.count_usable(*span)`` in a thread of its own, started at once: with more than one job
    the store's connection may be used from any thread, and SQLite lets go of the GIL while it steps
    through the time index (~0.03 s for a million sightings), so the count runs while the last keys
    derive instead of after them.  Started once no more worker processes will be forked."""

    def __init__(self, store: SightingStore, span: tuple[float, float] | None) -> None:
        self.span = span
        self._count = None if span is None else InThread("bluezone-count", lambda: store.count_usable(*span))

    def result(self, span: tuple[float, float]) -> int | None:
        """The count, if it was for ``span`` (revised keys the file does not hold may widen it: then
        None, to count again); the thread has ended when this returns, so the store is free again."""
        if self._count is None:
            return None
        if span != self.span:
            self._count.exception()  # waited for, its result not used
            return None
        return self._count.result()

    def close(self) -> None:
        """Wait for the count (its error, if any, dropped: the check's own comes first)."""
        if self._count is not None:
            self._count.exception()


@dataclass
class CheckResult:
    """What ``bluezone check`` reports: the exposures found, and what they were found in."""

    keys: np.ndarray = field(default_factory=empty_keys)  # the diagnosis keys (KEY_DTYPE; none kept when streamed)
    sightings: int = 0  # stored sightings the keys could match (their validity +- 2 h)
    scorer: str = ""
    exposures: list[Exposure] = field(default_factory=list)
    bluezone3_entries: int | None = None  # Bluezone v3 F0 list entries checked too (None: no list)
    bluezone3_sightings: int = 0  # stored Bluezone v3 sightings read for them
    #: stored Bluezone v3 sightings (14 days) that a check without a v3 F0 list leaves unchecked: said, not silent
    bluezone3_unchecked: int = 0
    streamed_keys: int | None = None  # keys of a file matched as it was read (then ``keys`` is empty)
    rssi_correction: RssiCorrection | None = None  # the correction the store's sightings were read with (the CLI's)
    rssi_correction_not_believed: int | None = None  # the config's, beyond TRUSTED_CORRECTION_DB: not applied

    @property
    def key_count(self) -> int:
        """How many keys were checked (revisions applied, revoked ones counted)."""
        return len(self.keys) if self.streamed_keys is None else self.streamed_keys

    def keys_said(self) -> str:
        """The keys checked, as the summary line counts them: keys, never cases (a person sends up to 14,
        and a key server pads its files with fake keys a node cannot tell from real ones)."""
        return f"{self.key_count} key{'' if self.key_count == 1 else 's'}"

    @property
    def close_contacts(self) -> int:
        """Exposures the scorer calls close contacts (F1)."""
        return sum(e.score.close_contact for e in self.exposures)

    def uncorrected(self) -> tuple[dict[str, int], int]:
        """Of every exposure's sightings: (those the RSSI correction was not applied to, by the address of the adapter
        that heard them, "" an unknown one; how many it was applied to with no adapter recorded)."""
        other: Counter[str] = Counter()
        for e in self.exposures:
            other.update(dict(e.uncorrected))
        return dict(sorted(other.items())), sum(e.unrecorded for e in self.exposures)

    def as_dict(self) -> dict[str, Any]:
        c = self.rssi_correction
        other, unrecorded = self.uncorrected()
        return {
            "keys": self.key_count,
            "sightings": self.sightings,
            "scorer": self.scorer,
            "exposures": [e.as_dict() for e in self.exposures],
            "close_contact": bool(self.close_contacts),
            **(
                {"bluezone3_entries": self.bluezone3_entries, "bluezone3_sightings": self.bluezone3_sightings}
                if self.bluezone3_entries is not None
                else {"bluezone3_sightings_not_checked": self.bluezone3_unchecked}
            ),
            **(
                {"rssi_correction": {
                    "db": c.db, "adapter": c.adapter,
                    "uncorrected_sightings": {a or "unknown": n for a, n in other.items()},
                    "unrecorded_sightings": unrecorded,
                    **({"not_believed_db": self.rssi_correction_not_believed}
                       if self.rssi_correction_not_believed is not None else {}),
                }}
                if c is not None and (c.db or self.rssi_correction_not_believed is not None)
                else {}
            ),
        }

    def add_bluezone3(self, found: list[Exposure], entries: int, sightings: int) -> None:
        """Add the exposures of a Bluezone v3 F0 list (``matching.bluezone3.check_bluezone3_store``), in date order."""
        self.exposures = sorted([*self.exposures, *found], key=lambda e: (e.date, e.start))
        self.bluezone3_entries = entries
        self.bluezone3_sightings = sightings


def check_keys(
    keys: np.ndarray | Path | str,
    db_path: Path | str | None = None,
    *,
    scorer: Scorer | None = None,
    rssi_correction: int | RssiCorrection = 0,
    jobs: int = 1,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_id: str | None = None,
    now: float | None = None,
    early: EarlyRead | None = None,
) -> CheckResult:
    """``bluezone check --keys``: exposures to diagnosis ``keys`` (KEY_DTYPE, or a key file) in the
    store at ``db_path`` (default path), matched in ``jobs`` processes.  ``now`` (the CLI's clock) is
    the time the store is purged at when opened (``SightingStore.open``'s ``purge_now``).

    A key file is read as ``load_keys`` reads it (``load_signed_keys`` with ``public_key``), and
    matched as it streams when it is large (``check_key_file``); a bad one raises KeyFileError.
    ``early``: the store's RPIs being read by a thread started before numpy was imported (the CLI's),
    of a file only (``check_key_file``: joined whatever happens)."""
    if not isinstance(keys, np.ndarray):
        return check_key_file(
            keys, db_path, scorer=scorer, rssi_correction=rssi_correction, jobs=jobs, public_key=public_key, key_id=key_id,
            now=now, early=early,
        )
    scorer = scorer or get_scorer()
    result = CheckResult(keys, scorer=scorer.name)
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        result.sightings, result.exposures = check_store(keys, store, scorer, rssi_correction=rssi_correction, jobs=jobs)
        result.bluezone3_unchecked = store.bluezone3_sightings_held()
    return result


def check_key_file(
    path: Path | str,
    db_path: Path | str | None = None,
    *,
    scorer: Scorer | None = None,
    rssi_correction: int | RssiCorrection = 0,
    jobs: int = 1,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_id: str | None = None,
    buffer_keys: int | None = None,
    now: float | None = None,
    early: EarlyRead | None = None,
) -> CheckResult:
    """``check_keys`` of the key file at ``path``, whose keys are never all in memory.

    With one job, a file of up to ``buffer_keys`` keys (default ``keystream.BUFFER_KEYS``, a
    million) is read first and checked as an array, so a bad one leaves the store unopened; a larger
    one is matched as it streams (``keystream``): the store opened once the file has shown that many
    keys, then each batch of keys derived against every RPI the store heard between pieces of the
    file.  With more (``jobs`` > 1, every core) nothing waits for the file: the store is opened and
    every distinct RPI it heard read in a thread while the file inflates, and from then on its keys
    go in small batches to ``jobs - 1`` worker processes and, once the file is read, to this one too;
    a file that fits is kept as well, and checked as an array is from what was derived.  A bad or
    forged file's error still comes first (the store's only for a good file), at the end, with
    nothing reported.  Then ``check_store``'s last steps, on the keys found, with the file's revisions
    applied as ``apply_revisions`` applies them (GAEN: a revised key takes its new report type, risk
    and onset; one revoked never matches; a revised key the file does not hold otherwise is a key of
    its own, after the file's).  The exposures are those of ``check_keys(load_keys(path))``, whatever
    ``jobs`` is.  ``early`` (``check_keys``) is joined, and its connection closed, before the store is
    opened, and by the time this returns or fails."""
    scorer = scorer or get_scorer()
    with ExitStack() as opened:
        with ctrl_c_deferred():  # the store's thread, once started, waited for on any way out (``inthread``)
            heard = _StoreRpis(opened, db_path, now, jobs, early)
            if early is not None:  # stopped and joined on any way out (a bad file, Ctrl-C) before the store's thread
                opened.callback(early.close)  # is waited for: that thread waits for the early read first
        # The file's readers (protobuf, zip: ~0.03 s to import) only now, and with more than one job
        # the workers' (multiprocessing: ~0.01 s; else imported as they are forked): the store's thread
        # reads meanwhile.
        from bluezone.keyformat.export import apply_revisions
        from bluezone.keyformat.keyfile import stream_keys

        if heard.background is not None:
            importlib.import_module("bluezone.matching.sharedbatches")

        sink = BufferedStream(
            heard.key_stream, keystream.BUFFER_KEYS if buffer_keys is None else buffer_keys,
            None if heard.background is None else heard.background.ready,
        )
        revised = stream_keys(path, sink, public_key, key_id)
        if heard.background is not None:  # the AES of the exposures' AEMs (~0.01 s) while the workers derive:
            import_aes()  # not before they start, nor after the last key
        if sink.stream is None:  # the whole file fit: checked as an array
            return _check_whole_file(apply_revisions(sink.keys(), revised), heard, db_path, scorer, rssi_correction, now)
        store = heard.read().store
        counting = None
        if heard.background is not None:  # the file's span is known: its sightings counted while the last keys derive
            with ctrl_c_deferred():
                counting = _CountInBackground(store, sink.stream.span())
                opened.callback(counting.close)  # before the store is closed
        # GAEN: a revised key takes its new report type, risk and onset (never its rolling start);
        # a revised key the file does not hold is a key of its own, after the file's.  Every key kept
        # too (a file that fits): joined now, while the workers still derive (~5 ms for 358,105 keys
        # that the steps one thread does after the last key had)
        every = apply_revisions(sink.keys(), revised) if sink.whole else None
        scored = None
        if every is not None and len(every) == sink.count and counting is not None and counting.span is not None:
            # no revised key outside the file, so its span is final: each batch's exposures scored as
            # it is found, while the worker still derives (~40 ms for the 20 windows of
            # benchmarks/check_bench.py that the steps one thread does after the last key had)
            scored = _ScoredAsFound(heard.read(), every, counting, scorer, rssi_correction)
        found = sink.stream.finish(None if scored is None else scored.add)
        if every is not None:  # revised as an array is
            keys, new = every[found.rows], every[found.count :]
            result = CheckResult(every, scorer=scorer.name, bluezone3_unchecked=heard.read().bluezone3_held)
        else:  # a second streamed pass tells which revised keys the file holds
            keys = apply_revisions(found.keys, revised)[: len(found.keys)]
            new = revised[~revising(path, revised, found.count, public_key, key_id)] if len(revised) else revised
            result = CheckResult(scorer=scorer.name, streamed_keys=found.count + len(new), bluezone3_unchecked=heard.read().bluezone3_held)
        keys, rows, rpis, span = _add_keys_not_in_file(found, keys, new, heard.read().index)
        if span is None:
            return result
        if scored is not None:
            result.exposures, result.sightings = scored.exposures(), scored.sightings()
            return result
        usable = keys["report_type"] != REPORT_TYPE_REVOKED
        days = whole_days(span)
        counted = None if counting is None else counting.result(span)  # before the store is read again here
        result.exposures = heard.read().exposures(keys[usable], rows[usable], rpis, span, days, scorer, rssi_correction)
        result.sightings = store.count_usable(*span) if counted is None else counted
        return result


class _ScoredAsFound:
    """The exposures of a file's keys (``every``, revised; none outside the file, so ``span`` is
    final), scored some keys found at a time (``add``: all found so far, then those found between the
    batches this process derives) as ``HeardRpis.exposures`` scores them all at once: a key's windows
    are of its own RPIs' rows, and each is judged on its own, so the calls' exposures, sorted as
    ``_scored`` sorts them (ties in file order), are the same list.  A key two calls found (listed in
    two batches of the file: a key twice, a daily key under a second window) is scored again at the
    end with all its rows in one call, as its first row (``one_row_per_key``), its calls' exposures
    dropped: one exposure a day, as the array's."""

    def __init__(
        self, heard: HeardRpis, every: np.ndarray, counting: _CountInBackground, scorer: Scorer,
        rssi_correction: int | RssiCorrection,
    ) -> None:
        assert counting.span is not None
        self.heard, self.every, self.span, self.scorer, self.rssi_correction = heard, every, counting.span, scorer, rssi_correction
        self._counting, self._sightings = counting, -1
        self.found: list[Exposure] = []  # every call's exposures, in the order the calls came
        self._days_read: DaysRead = {}  # each day the scorer reads whole, read once for every batch
        self._told: list[tuple[np.ndarray, np.ndarray]] = []  # each call's (rows, RPIs)
        self._first_call: dict[bytes, int] = {}  # each found key: the call that found it first
        self._again: set[bytes] = set()  # the keys a later call found too

    def sightings(self) -> int:
        """The usable sightings of the span (``count_usable``), once the thread counting them has ended."""
        if self._sightings < 0:
            counted = self._counting.result(self.span)
            assert counted is not None  # counted for this very span
            self._sightings = counted
        return self._sightings

    def add(self, rows: np.ndarray, rpis: np.ndarray) -> None:
        """Score the keys at ``rows`` of the file, which sent the heard ``rpis``."""
        self.sightings()  # the count's thread ended first: the store is this thread's again
        self._told.append((rows, rpis))
        for key in {bytes(key) for key in self.every["key"][rows]}:  # few: the keys that sent a heard RPI
            if self._first_call.setdefault(key, len(self._told)) != len(self._told):
                self._again.add(key)
        self.found.extend(self._exposures_of(rows, rpis))

    def _exposures_of(self, rows: np.ndarray, rpis: np.ndarray) -> list[Exposure]:
        keys = self.every[rows]
        usable = keys["report_type"] != REPORT_TYPE_REVOKED
        return self.heard.exposures(
            keys[usable], rows[usable], rpis, self.span, whole_days(self.span), self.scorer, self.rssi_correction,
            self._days_read,
        )

    def exposures(self) -> list[Exposure]:
        """Every batch's exposures, by date then start, ties in file order as ``_scored`` leaves them (a
        call's keys may come from batches far apart in the file: one call scores all found so far)."""
        found = self.found
        if self._again:  # each key two calls found: its calls' exposures dropped, every row of it scored in one call
            again = [np.array([bytes(key) in self._again for key in self.every["key"][rows]], bool) for rows, _ in self._told]
            rows = np.sort(np.concatenate([rows[mask] for (rows, _), mask in zip(self._told, again, strict=True)]))
            rpis = np.unique(np.concatenate([rpis for (_, rpis), mask in zip(self._told, again, strict=True) if mask.any()]), axis=0)
            found = [e for e in found if bytes(self.every["key"][e.key_index]) not in self._again]
            found += self._exposures_of(rows, rpis)
        return sorted(found, key=lambda e: (e.date, e.start, e.key_index))


class _StoreRpis:
    """The RPIs the store heard, read once, when the key stream first needs them: by a thread started
    at once with more than one job (the store is read while the file inflates), else here."""

    def __init__(
        self, opened: ExitStack, db_path: Path | str | None, now: float | None, jobs: int, early: EarlyRead | None
    ) -> None:
        self._opened, self._db_path, self._now, self.jobs, self.early = opened, db_path, now, jobs, early
        self._heard: HeardRpis | None = None
        self.background: _HeardInBackground | None = None
        if jobs > 1:
            self.background = _HeardInBackground(db_path, now, early)
            opened.callback(self.background.close)

    def read(self) -> HeardRpis:
        """The store and its heard RPIs (opened here with one job, closed with ``opened``)."""
        if self._heard is None:
            if self.background is not None:
                self._heard = self.background.result()
            else:
                if self.early is not None:
                    self.early.result()  # joined before the open's purge (EarlyRead)
                store = self._opened.enter_context(SightingStore.open(self._db_path, create=False, purge_now=self._now))
                self._heard = HeardRpis.read_all(store, self.early)
        return self._heard

    def key_stream(self) -> KeyStream:
        """The stream a key file's batches go to once the store is read (smaller first batches when
        the workers can start before the file is read)."""
        batch = keystream.BATCH if self.background is None else keystream.EARLY_BATCH
        return self._opened.enter_context(KeyStream(self.read().index, self.jobs, batch))


def _check_whole_file(
    keys: np.ndarray, heard: _StoreRpis, db_path: Path | str | None, scorer: Scorer, rssi_correction: int | RssiCorrection,
    now: float | None,
) -> CheckResult:
    """A file that fit in memory, its revisions applied, checked as an array: with one job the store
    is opened only now (a bad file left it unopened), its RPIs read meanwhile if its early reader could;
    with more it was read meanwhile."""
    if heard.background is None and (heard.early is None or heard.early.result() is None):
        return check_keys(keys, db_path, scorer=scorer, rssi_correction=rssi_correction, jobs=heard.jobs, now=now)
    read = heard.read()
    result = CheckResult(keys, scorer=scorer.name, bluezone3_unchecked=read.bluezone3_held)
    result.sightings, result.exposures = check_store(
        keys, read.store, scorer, rssi_correction=rssi_correction, jobs=heard.jobs, heard=read
    )
    return result


def _add_keys_not_in_file(
    found: HeardKeys, keys: np.ndarray, new: np.ndarray, index: HeardIndex
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float] | None]:
    """(keys, their rows, their heard RPIs, span) of the file's heard keys with the revised keys it does
    not hold (``new``, rows after the file's) that the store heard too; the span covers both."""
    rows, rpis, span = found.rows, found.rpis, found.span
    new_span = sightings_span(new)
    if new_span is None:
        return keys, rows, rpis, span
    new_rows, new_rpis = keys_heard(new, index)
    rows = np.concatenate([rows, found.count + new_rows])
    keys, rpis = np.concatenate([keys, new[new_rows]]), np.concatenate([rpis, new_rpis])
    span = new_span if span is None else (min(span[0], new_span[0]), max(span[1], new_span[1]))
    return keys, rows, rpis, span
