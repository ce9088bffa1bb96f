"""Checking against a key server: download new batches, verify each, match, remember them.

``check_server`` works on a client and a ``ServerState``; ``check_with_server`` is
``bluezone check --server`` as one call on a store path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bluezone.client.batchstream import BatchStream, StreamedKeys
from bluezone.client.exposures import ExposureMemory, Keys
from bluezone.client.keyserver import KeyServerClient, covered_rollups
from bluezone.client.pinning import PinnedKey, read_server_key
from bluezone.client.revisions import EarlierRevisions, RevisedSet, RevisionSpool, as_keys, beside_keys, settle, widest_span
from bluezone.client.spool import first_of_each
from bluezone.client.state import ServerState
from bluezone.errors import (
    BluezoneError,
    ExportSignatureError,
    InputError,
    KeyServerError,
    RejectedBatchesError,
    ServerKeyChangedError,
)
from bluezone.keyformat.export import apply_revisions, open_signed_export, read_signed_export_zip
from bluezone.keyformat.keys import KEY_DTYPE, REPORT_TYPE_REVOKED, empty_keys
from bluezone.keyformat.venue_export import is_venue_file, open_signed_venue_zip  # venue warnings share the index
import bluezone.matching.keystream as keystream
from bluezone.matching.check import (
    CheckResult,
    Exposure,
    HeardRpis,
    as_correction,
    check_sightings,
    check_store,
    sightings_span,
    whole_days,
    within,
)
from bluezone.matching.levels import WarningMemory, at_levels_told, same_meetings, same_meetings_told
from bluezone.matching.matcher import HeardIndex
from bluezone.matching.scoring import Scorer, get_scorer
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.adapters import RssiCorrection
from bluezone.venues.checkins import visits
from bluezone.keyformat.venue_reports import location_id_hash
from bluezone.venues.matching import VenueExposure, continued, match_venue_reports, set_aside_own
from bluezone.venues.matching import shown as venue_shown

log = logging.getLogger(__name__)


def resolve_pin(
    client: KeyServerClient, state: ServerState, given: PinnedKey | None, *, repin: bool = False,
    now: float | None = None,
) -> tuple[PinnedKey, bool]:
    """The key to verify batches with, and whether it is still to be pinned (``pin_if_verified``).

    ``given`` (``--server-key``) or, on first contact, the key the server announces (trust on
    first use).  A key different from the one pinned is ServerKeyChangedError, unless ``repin``
    (``check --repin``: the owner accepts a key the health authority rotated to, or corrects a wrong
    one) with a key given.  Nothing is pinned here: a wrong first key pinned before anything verified
    with it made every later check refuse the right one.  No trust on first use of an announced key
    other than one an earlier check was given and saw reject this server's files (``now``: when, for
    their retention): the given key may be the health authority's and the server someone else's.
    """
    server = client.base_url
    pinned = state.pinned(server)
    if given is not None:
        if pinned is not None and pinned.public_key != given.public_key:
            if repin:
                return given, True
            raise ServerKeyChangedError(
                f"--server-key differs from the key pinned for {server}: refusing (if the health authority"
                " changed its key, or the key pinned was a wrong one, give the right one with --repin)"
            )
        if pinned is None:
            return given, True
    if pinned is not None:
        # also with the pinned key given (a config file's server-key): after a rotation such a node read
        # every new batch as 'does not verify', where docs/server.md says a check stops at once (walk12)
        announced = _announced_key(client)  # None: exports may come from a static host with no signing-key endpoint
        if announced is not None and announced.public_key != pinned.public_key:
            raise ServerKeyChangedError(
                f"the key server {server} now announces a different signing key than the one pinned: refusing"
                " (if the health authority rotated its key, give the new one with --server-key FILE --repin)"
            )
        return pinned, False
    remembered = state.given_unconfirmed(server)
    if remembered is not None:  # given to an earlier check, and no file has confirmed it yet: still the key
        return remembered, True
    try:
        announced = client.signing_key()
    except KeyServerError as exc:
        if exc.status != 404 or not _lists_exports(client):
            raise
        # exports served as static files (a CDN, object store): there is no key to take on first use
        raise KeyServerError(
            f"{client.base_url}/v1/signing-key: 404, but exports are listed there (a static host serves no"
            " signing key): give the key server's key with --server-key FILE", exc.code, exc.status,
        ) from None
    announced.key  # must parse
    given_before = state.rejecting_keys(server, time.time() if now is None else now) - {announced.public_key}
    if given_before:
        raise ServerKeyChangedError(
            f"the key server {server} announces a signing key other than the one an earlier check verified its"
            " files with (and rejected them): refusing to trust it on first use (give the health authority's"
            " key with --server-key FILE)"
        )
    return announced, True


def pin_if_verified(
    client: KeyServerClient, state: ServerState, key: PinnedKey, result: ServerCheckResult, now: float,
    *, given: bool = False, replacing: PinnedKey | None = None,
) -> bool:
    """Pin ``key`` in place of ``replacing`` (the pin when the check began: ``resolve_pin`` refused a change
    unless repinning) if it verified
    a file of this check, or if the server announces the same key (two sources agree: a key given on a
    first check before anything was published still guards later checks made without --server-key, and
    a key rotated to is pinned while the files are still the old key's).  A given key that verified
    nothing and that the server does not announce stays unpinned, so the right one can be given next
    time; ``result.unverified_key`` says so when files were rejected.  A given key that rejected nothing is
    kept as given and unconfirmed (``ServerState.remember_given``): the next check uses it, not the key the
    server announces.  ``given``: the key came with ``--server-key`` (or was kept so), so its first pin is no
    trust on first use and is not warned of as one.  A pin another check made meanwhile is not replaced:
    this check is judged against it (ServerKeyChangedError if it differs)."""
    server = client.base_url
    remembered = state.given_unconfirmed(server)
    given = given or (remembered is not None and remembered.public_key == key.public_key)
    verified = bool(result.batches or result.venue_files)
    if not verified:
        announced = _announced_key(client)
        verified = announced is not None and announced.public_key == key.public_key
        result.unverified_key = not verified and bool(result.rejected)
    if not verified and given:
        if result.rejected:  # it verified none of the server's files: not to be used again unasked
            state.forget_given(server)
        else:
            state.remember_given(server, key, now)
            log.info("kept the signing key given for %s: no file has confirmed it yet (key id %r)", server, key.key_id)
    if not verified:
        return False
    if not state.pin(server, key, now, replacing=replacing):
        _judge_against_pin(state, server, key)
        return False  # the same key, pinned by the other check
    if replacing is not None:
        level, how = logging.WARNING, "re-pinned the signing key of %s"
    elif given:  # the safe way (README): "on first use" read as if the key given had been ignored
        level, how = logging.INFO, "pinned the signing key given for %s"
    else:
        level, how = logging.WARNING, "pinned the signing key of %s on first use"
    log.log(level, how + " (key id %r, version %r)", server, key.key_id, key.key_version)
    return True


def _judge_against_pin(state: ServerState, server: str, key: PinnedKey) -> None:
    """Another check of this store pinned a key for ``server`` while this one ran (two first checks at
    once): this check is refused if its key is not that one, as it would have been had it begun later."""
    pinned = state.pinned(server)
    if pinned is None or pinned.public_key != key.public_key:
        raise ServerKeyChangedError(
            f"another check of this store pinned a different signing key for {server} while this one ran:"
            " refusing this check's files (check again; if the health authority rotated its key, give the"
            " right one with --server-key FILE --repin)"
        )


def _announced_key(client: KeyServerClient) -> PinnedKey | None:
    """The key the server announces at /v1/signing-key, or None where it announces none."""
    try:
        return client.signing_key()
    except KeyServerError:
        return None


def _lists_exports(client: KeyServerClient) -> bool:
    """Whether the server has an index.txt: a static host of exports, not a wrong URL."""
    try:
        client.index()
    except KeyServerError:
        return False
    return True


@dataclass
class ServerCheckResult(CheckResult):
    """A check against a key server: the exposures, and what happened to each batch."""

    batches: list[str] = field(default_factory=list)  # verified and used
    rejected: dict[str, str] = field(default_factory=dict)  # name -> why
    revoked: int = 0  # keys with report type "revoked", downloaded but not matched
    revised: int = 0  # revisions in the batches (``revised_keys``): applied before matching
    withdrawn: list[Exposure] = field(default_factory=list)  # exposures to keys of earlier batches, now revoked
    updated: list[Exposure] = field(default_factory=list)  # exposures to keys of earlier batches, now confirmed
    pinned_now: bool = False  # the key was pinned by this check (``pin_if_verified``)
    unverified_key: bool = False  # the key, not pinned, verified none of the files: not pinned either
    venue_files: list[str] = field(default_factory=list)  # venue-warning files verified and matched
    new_batches: int = 0  # files the server listed that this node had not processed yet
    nothing_before: bool = False  # this node had processed no file of this server before this check
    earlier: list[dict[str, Any]] = field(default_factory=list)  # exposures earlier checks reported, still in force
    venue_exposures: list[Any] = field(default_factory=list)  # bluezone.venues.matching.VenueExposure
    earlier_venue: list[dict[str, Any]] = field(default_factory=list)  # venue exposures earlier checks reported
    own_checkins: list[Any] = field(default_factory=list)  # venues.matching.OwnCheckIn: my uploaded visits, published
    rejected_earlier: int = 0  # listed files an earlier check rejected: not fetched again (for 14 days)
    left_for_next_check: int = 0  # new files listed beyond MAX_NEW_FILES_PER_CHECK: fetched by the next check
    gone: list[str] = field(default_factory=list)  # listed, but 404 when fetched (replaced since): not processed

    @property
    def close_levels_now(self) -> list[str]:
        """The levels (F1, F2) of the close contacts in force now: this check's exposures, those it updated,
        and those earlier checks reported within the 14 days, withdrawn ones left out."""
        found = [e.level for e in [*self.exposures, *self.updated] if e.score.close_contact]
        return [str(level) for level in found + [d.get("level") for d in self.earlier if d.get("close_contact")] if level]

    @property
    def told_meetings(self) -> dict[int, int]:
        """This check's F2 exposures that are the same meeting as an F1 an earlier check told and still in force
        (place in ``exposures``: place in ``earlier``; ``levels.same_meetings_told``): no new contact.  One paired
        with an F1 of this check is that one's (``levels.same_meetings``)."""
        if not self.earlier or not self.exposures:
            return {}
        same = same_meetings(self.exposures)
        return {j: i for j, i in same_meetings_told(self.exposures, self.earlier).items() if j not in same}

    @property
    def new_close_contact(self) -> bool:
        """Whether this check found a close contact the last ones had not told: a new exposure (not an F2 of a
        meeting told as F1 before: ``told_meetings``), or an earlier one at a higher level now (an F2 warning
        upgraded to F1; a likely case confirmed is no news of this)."""
        told = self.told_meetings
        return any(e.score.close_contact for j, e in enumerate(self.exposures) if j not in told) or any(
            e.score.close_contact and e.level != e.earlier_level for e in self.updated
        )

    @property
    def new_to_act_on(self) -> bool:
        """Whether this check tells the person something new to act on: a close contact not told before
        (``new_close_contact``, or 15 minutes in a venue's room with a case), or the warning of one withdrawn (a
        negative test: the advice for close contacts no longer holds).  What a daily check from cron mails on; a
        likely case confirmed, a brief exposure (or its withdrawal), or one told before is no news to act on."""
        return (
            self.new_close_contact
            or any(v.as_dict()["fifteen_minutes_or_more"] for v in self.venue_exposures)
            or any(e.earlier_level for e in self.withdrawn)
        )

    @property
    def venue_close_contact(self) -> bool:
        """Whether a venue exposure of 15 minutes or more in the same room is in force now: this check's, or an
        earlier check's within the 14 days.  Said apart from ``close_contact`` (Bluetooth), as GAEN and CWA keep
        venue warnings apart: whether sharing a room makes the reader an F1 is the health authority's rule."""
        return any(v.as_dict()["fifteen_minutes_or_more"] for v in self.venue_exposures) or any(
            bool(d.get("fifteen_minutes_or_more")) for d in self.earlier_venue
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            # a close contact now (was: only this check's exposures, false on a repeat check right after an F1)
            "close_contact": bool(self.close_levels_now),
            "new_close_contact": self.new_close_contact,
            "venue_close_contact": self.venue_close_contact,  # (close_contact stays Bluetooth's: compatible)
            "new_to_act_on": self.new_to_act_on,  # anything new of the above, or a close contact's warning withdrawn
            "batches": self.batches,
            "rejected_batches": self.rejected,
            "revised_keys": self.revised,
            "revoked_keys": self.revoked,
            "withdrawn": [e.as_dict() for e in self.withdrawn],
            "updated": [e.as_dict() for e in self.updated],
            "venue_files": self.venue_files,
            "venue_exposures": [venue_shown(v.as_dict()) for v in self.venue_exposures],  # no case's times (NOT_SHOWN)
            "new_batches": self.new_batches,
            "earlier_exposures": self.earlier,
            "earlier_venue_exposures": [venue_shown(d) for d in self.earlier_venue],
            "own_checkins_published": [o.as_dict() for o in self.own_checkins],
            "rejected_earlier": self.rejected_earlier,
            "left_for_next_check": self.left_for_next_check,
            "gone_batches": self.gone,
        }

    def keys_said(self) -> str:
        """The keys checked and the files they came in: the server's fake keys are among them (padding,
        which only the server tells apart), so the count says nothing of how many people uploaded; with no
        new key file (only venue warnings came) there are no keys to be fake."""
        if not self.batches:
            return "0 keys (no new key file)"
        # a file of revisions alone read "from 0 keys in 1 new file(s) (fake keys among them...)" above its upgrade
        revised = f" and {self.revised} revision(s) of keys published before" if self.revised else ""
        return (f"{self.key_count} keys{revised} in {len(self.batches)} new file(s) (fake keys among them: not a count"
                " of cases)")

    def raise_for_rejected(self) -> None:
        """RejectedBatchesError if any batch was not used (its signature is missing or wrong)."""
        if self.rejected:
            first = next(iter(self.rejected.items()))
            hint = (
                ": the signing key verified none of them and was not pinned (give the health authority's key"
                " with --server-key FILE)" if self.unverified_key else ""
            )
            old = sum(why.startswith(SIGNED_BEFORE_REPIN) for why in self.rejected.values())
            if old:  # after a rotation: the server's files of before it (docs/server.md), nothing wrong here
                hint += (
                    f"; {old} of them signed with the server's old key: nothing to do, its roll-ups sign their days"
                    " again with the new key a day or two after the rotation, and roll-ups of before it leave its"
                    " index within 14 days"
                )
            raise RejectedBatchesError(
                f"{len(self.rejected)} batch(es) rejected and not used (e.g. {first[0]}: {first[1]}){hint}"
            )


#: Why a file was rejected when it verifies against the key that --repin replaced: signed before the rotation.
SIGNED_BEFORE_REPIN = "signed with the key pinned before --repin (the server's old key)"

#: The most new files one check downloads; those listed beyond wait for the next check.  Well above
#: what a device checking daily meets: each export (hourly by default, every 10 minutes on a server run
#: so) writes one file per day of the keys it exports (15 days at most) and one venue-warning file per
#: day, so at national scale at most 24 x 30 = 720 files a day, 144 x 30 = 4,320 at 10 minutes (a day
#: off, twice that); a 1 MiB index lists ~27,000 names.
#: A first check of a busy server's full 14 days may need a second check (said in one line).
MAX_NEW_FILES_PER_CHECK = 10_000


def check_server(
    client: KeyServerClient,
    state: ServerState,
    load_sightings: Callable[[float, float], np.ndarray] | None = None,
    *,
    server_key: PinnedKey | None = None,
    scorer: Scorer | None = None,
    rssi_correction: int | RssiCorrection = 0,
    now: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    load_visits: Callable[[], list[Any]] | None = None,
    jobs: int = 1,
    buffer_keys: int = keystream.BUFFER_KEYS,
    repin: bool = False,
) -> ServerCheckResult:
    """Download new batches, verify each, match their keys, remember them.

    ``load_sightings`` None reads ``state.store`` as ``check_store`` does (its distinct RPIs, the
    rows of those that match, the receiver context where the scorer asks); a callable that gives
    the sightings of a span has them matched in memory by ``check_sightings``, with the same result.

    A batch whose signature is missing or wrong is not used and is listed in ``rejected`` (the
    caller reports it as an error); it is remembered, so while the server lists it (14 days at most)
    later checks list it again without downloading it.  One check downloads at most
    ``MAX_NEW_FILES_PER_CHECK`` new files (``left_for_next_check``: how many wait).  The batches' keys
    are joined and matched at the end while they are at most ``buffer_keys``; past that (a national
    day is millions), reading the store, each batch's keys are matched as it comes
    (``batchstream.BatchStream``: memory that does not grow with the keys, ``jobs`` processes deriving
    while the next batch downloads), ``result.keys`` is then empty and ``key_count`` says how many
    there were; the report is the same.  Venue-warning files in the same index
    are verified with the same key and matched against ``load_visits()`` (the device's
    check-ins) in the same run.
    """
    now = time.time() if now is None else now
    scorer = scorer or get_scorer()
    server = client.base_url
    pinned_before = state.pinned(server)  # what a pin this check makes replaces: not another check's made meanwhile
    pin, to_pin = resolve_pin(client, state, server_key, repin=repin, now=now)
    replaced = pinned_before if repin and pinned_before and pinned_before.public_key != pin.public_key else None
    seen = state.processed(server)
    result = ServerCheckResult(scorer=scorer.name, nothing_before=not seen)
    new, refused = _files_to_fetch(client, state, pin, seen, now, result)
    mine = load_visits() if load_visits is not None else []  # a venue file's reports naming none of these are not held
    my_venues = {location_id_hash(v.location_id) for v in mine}
    with _NewKeys(None if load_sightings is not None else state.store, jobs, buffer_keys) as keys, RevisionSpool() as revisions:
        # the revisions go to a spool as they download (memory that does not grow with them), and are read back
        # a bucket at a time beside the same bucket of the keys: a signed file replayed under another name (by
        # the host the files are synced to) is still signed, and each key and revision counts once (the first);
        # a revision of a key that came in a batch of an earlier check changes what that check reported: its
        # exposures are listed apart (withdrawn when revoked, updated when confirmed), not as new ones (or of a
        # key an earlier check reported, which a roll-up brings again beside its revision: ``told``)
        downloaded = _download(client, new, pin, keys, revisions, result, progress, my_venues, replaced)
        told = ExposureMemory(state.store, server).told_hashes(now)
        withdrawn, updated = keys.finish(revisions, told, result)
    if to_pin:  # before anything is remembered: refused if another check pinned another key meanwhile
        result.pinned_now = pin_if_verified(
            client, state, pin, result, now, given=server_key is not None, replacing=pinned_before
        )
    if keys.found is None:
        _match_joined(result, withdrawn, updated, state.store, load_sightings, keys.heard, scorer, rssi_correction, jobs)
    else:
        _match_streamed(result, keys.found, keys.heard, withdrawn, updated, scorer, rssi_correction)
    # what is remembered names an exposure's key by its row in the keys: streamed, only the few found are held
    matched: Keys = result.keys if keys.found is None else dict(zip(keys.found.key_index.tolist(), keys.found.keys["key"]))
    _tell_news_only(result, state.store, server, matched, withdrawn, updated, now)
    result.new_batches = len(new)
    _venue_exposures(result, state.store, server, downloaded.venue_reports, mine, now)
    state.mark_processed(server, downloaded.counts, now)
    state.mark_rejected(server, pin, {n: why for n, why in result.rejected.items() if n not in refused}, now)
    return result


def _files_to_fetch(
    client: KeyServerClient, state: ServerState, pin: PinnedKey, seen: set[str], now: float, result: ServerCheckResult
) -> tuple[list[str], dict[str, str]]:
    """(the files of the server's index this check downloads, those an earlier check rejected).

    Files this node processed, or a roll-up of files it processed, are not new; one an earlier check
    rejected is not fetched again while listed (it goes in ``result.rejected``); past
    ``MAX_NEW_FILES_PER_CHECK`` the rest wait for the next check (``result.left_for_next_check``)."""
    refused = state.rejected(client.base_url, pin, now)  # not fetched again while the server lists them
    index = client.index()
    covered = covered_rollups(index, seen)  # roll-ups of a closed day's files this node processed: nothing new
    listed = list(dict.fromkeys(n for n in index if n not in seen and n not in covered))  # a name listed twice is one file
    new = [n for n in listed if n not in refused]
    result.rejected = {n: f"{refused[n]} (an earlier check; not fetched again)" for n in listed if n in refused}
    result.rejected_earlier = len(result.rejected)
    # a hostile index can list ~27,000 names (1 MiB): each a download of up to 256 MiB; the rest wait for the next check
    new, result.left_for_next_check = new[:MAX_NEW_FILES_PER_CHECK], max(0, len(new) - MAX_NEW_FILES_PER_CHECK)
    return new, refused


class _NewKeys:
    """The new batches' keys, given as they download: joined and matched at the end while they are at
    most ``buffer_keys`` (always, with no ``store``: the caller's sightings are matched in memory), past
    that each batch matched as it comes (``BatchStream``) against every RPI ``store`` heard."""

    def __init__(self, store: SightingStore | None, jobs: int, buffer_keys: int) -> None:
        self._store, self._jobs, self._buffer_keys = store, jobs, buffer_keys
        self._parts: list[np.ndarray] = []  # the batches' keys, while they are at most ``buffer_keys``
        self._total = 0
        self._stream: BatchStream | None = None  # past that: every batch's keys matched as it comes
        self.heard: HeardRpis | None = None  # what the stream matches against
        self.found: StreamedKeys | None = None  # what the stream found (``finish``)

    def __enter__(self) -> _NewKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()

    def add(self, keys: np.ndarray) -> None:
        """A batch's keys (not its revisions)."""
        self._total += len(keys)
        if self._stream is None and self._store is not None and self._total > self._buffer_keys:
            self.heard = HeardRpis.read_all(self._store)
            self._stream = BatchStream(self.heard.index, self._jobs, keystream.EARLY_BATCH if self._jobs > 1 else None)
            while self._parts:
                self._stream.add(self._parts.pop(0))
        if self._stream is not None:
            self._stream.add(keys)
        else:
            self._parts.append(keys)

    def finish(self, revisions: RevisionSpool, told: AbstractSet[bytes], result: ServerCheckResult) -> tuple[RevisedSet, RevisedSet]:
        """(withdrawn, updated): the ``revisions`` of keys of earlier checks (or of keys one ``told`` of: key
        hashes), revoked or not; the others are applied to these batches' keys: joined, in ``result.keys``;
        streamed, in ``found`` (``result.streamed_keys`` says how many there were)."""
        revisions.finish()
        with EarlierRevisions(self._heard_index) as earlier:
            if self._stream is not None:
                self.found = self._stream.finish(revisions, earlier, told)
                result.streamed_keys = self.found.count
            else:
                plain = _first_of_each(_concatenate_freeing(self._parts))
                # ``plain`` goes with this call: a copy when revisions applied, not kept beside the keys
                result.keys = apply_revisions(plain, _settle_joined(plain, revisions, earlier, told))
            result.revised = earlier.distinct
            return earlier.finish()

    def _heard_index(self) -> HeardIndex | None:
        """Every RPI the store heard (read now if the stream has not), to keep only the earlier checks' revised
        keys that sent one; None with no store (the caller's sightings: every revised key is kept)."""
        if self.heard is None and self._store is not None:
            self.heard = HeardRpis.read_all(self._store)
        return None if self.heard is None else self.heard.index


def _settle_joined(plain: np.ndarray, revisions: RevisionSpool, earlier: EarlierRevisions, told: AbstractSet[bytes]) -> np.ndarray:
    """The ``revisions`` (finished) that revise one of ``plain`` (the keys joined, each once) and are to be
    applied to them (KEY_DTYPE: no more than the keys); the others go to ``earlier``.  Few (never spooled
    to disk) at once, else a part at a time (``beside_keys``)."""
    applied = []
    for revised, keys in beside_keys(plain, revisions):
        known = settle(revised, keys, told)
        earlier.add(revised, applied=known)
        applied.append(as_keys(revised[known]))
    return np.concatenate(applied) if applied else empty_keys(0)


def _signed_with(data: bytes, key: PinnedKey | None) -> bool:
    """Whether the export zip ``data`` verifies against ``key``: a file the rejection can say more of."""
    if key is None:
        return False
    try:
        read_signed_export_zip(data, key.key, key.key_id)
    except BluezoneError:
        return False
    return True


@dataclass
class _Downloaded:
    """What a check's new files held beside their keys."""

    counts: dict[str, int] = field(default_factory=dict)  # records of each file used: remembered as processed
    venue_reports: list[Any] = field(default_factory=list)  # the venue files' warnings, each once


def _download(
    client: KeyServerClient,
    names: list[str],
    pin: PinnedKey,
    keys: _NewKeys,
    revisions: RevisionSpool,
    result: ServerCheckResult,
    progress: Callable[[int, int, str], None] | None,
    my_venues: AbstractSet[bytes],
    replaced: PinnedKey | None = None,
) -> _Downloaded:
    """Download and verify each of ``names``: a key file's keys go to ``keys``, its revisions to
    ``revisions``, a venue file's reports naming ``my_venues`` (location-id hashes) to the result; what was
    used, rejected or gone since the index was read goes in ``result`` (a rejected file that ``replaced``,
    the pin --repin replaces, verifies: ``SIGNED_BEFORE_REPIN``)."""
    downloaded = _Downloaded()
    public_key = pin.key  # parsed once
    venue_reports_seen: set[Any] = set()  # one report in two files (a file replayed under another name) counts once
    files_seen: set[bytes] = set()  # SHA-256 of each batch file: one served again under another name adds nothing
    for i, name in enumerate(names):
        if progress:
            progress(i, len(names), name)
        try:
            data = client.batch(name)
        except KeyServerError as exc:
            if exc.status != 404:
                raise
            # replaced since the index was read (a roll-up, or a cached index): the rest of the check goes on,
            # and the next check reads what replaced it (nothing is marked processed)
            log.warning("batch %s listed but gone: %s", name, exc)
            result.gone.append(name)
            continue
        if is_venue_file(name):
            try:
                reports = open_signed_venue_zip(data, public_key, pin.key_id, my_venues)
            except BluezoneError as exc:
                log.error("venue file %s rejected: %s", name, exc)
                result.rejected[name] = SIGNED_BEFORE_REPIN if _signed_with(data, replaced) else str(exc)
                continue
            for report in reports:
                if report not in venue_reports_seen:
                    venue_reports_seen.add(report)
                    downloaded.venue_reports.append(report)
            downloaded.counts[name] = len(reports)
            result.venue_files.append(name)
            continue
        try:
            export, _ = open_signed_export(data, public_key, pin.key_id)
        except ExportSignatureError as exc:
            log.error("batch %s rejected: %s", name, exc)
            result.rejected[name] = SIGNED_BEFORE_REPIN if _signed_with(data, replaced) else str(exc)
            continue
        except BluezoneError as exc:
            result.rejected[name] = f"malformed batch: {exc}"
            continue
        downloaded.counts[name] = len(export.keys) + len(export.revised_keys)
        result.batches.append(name)
        digest = hashlib.sha256(data).digest()
        del data
        if digest in files_seen:  # the same signed file again: each of its keys and revisions is a copy
            continue
        files_seen.add(digest)
        keys.add(export.keys)
        revisions.add(export.revised_keys)
        del export
    if progress and names:
        progress(len(names), len(names), "")
    return downloaded


def _match_revised(
    result: ServerCheckResult,
    withdrawn: RevisedSet,
    updated: RevisedSet,
    check: Callable[[np.ndarray], list[Exposure]],
    heard: HeardRpis | None,
    days: tuple[float, float],
    scorer: Scorer,
    rssi_correction: int | RssiCorrection,
) -> None:
    """``result.withdrawn`` and ``result.updated``: the exposures to each set, found by ``check`` of all of
    it, or, kept only the keys the store heard, as ``check_store`` finds them (``heard.exposures``)."""

    def exposures(revised: RevisedSet) -> list[Exposure]:
        if revised.whole:
            return check(revised.keys) if len(revised.keys) else []
        if not len(revised.keys):
            return []
        assert heard is not None and revised.rpis is not None and revised.span is not None
        return heard.exposures(revised.keys, revised.index, revised.rpis, revised.span, days, scorer, rssi_correction)

    result.withdrawn, result.updated = exposures(withdrawn), exposures(updated)


def _match_joined(
    result: ServerCheckResult,
    withdrawn: RevisedSet,
    updated: RevisedSet,
    store: SightingStore,
    load_sightings: Callable[[float, float], np.ndarray] | None,
    heard: HeardRpis | None,
    scorer: Scorer,
    rssi_correction: int | RssiCorrection,
    jobs: int,
) -> None:
    """The exposures to ``result.keys`` and to the earlier checks' revised keys, in the store (read as
    ``check_store`` reads it) or, given ``load_sightings``, in the sightings it gives."""
    # revoked keys (a negative test) are downloaded but never matched: check_sightings skips them
    revoked = result.keys["report_type"] == REPORT_TYPE_REVOKED
    result.revoked = int(revoked.sum()) + withdrawn.count
    span = widest_span([sightings_span(result.keys[~revoked] if revoked.any() else result.keys), withdrawn.span, updated.span])
    if span is None:
        return
    days = whole_days(span)  # whole days: the receiver's day reference
    if load_sightings is None:
        result.sightings = store.count_usable(*span)
        _, result.exposures = check_store(result.keys, store, scorer, rssi_correction=rssi_correction, jobs=jobs, days=days)
        _match_revised(
            result, withdrawn, updated,
            lambda keys: check_store(keys, store, scorer, rssi_correction=rssi_correction, days=days)[1],
            heard, days, scorer, rssi_correction,
        )
    else:
        sightings = load_sightings(*days)
        result.sightings = within(sightings, span)
        each = as_correction(rssi_correction).db  # (sightings given with no adapter: each corrected, as before)
        result.exposures = check_sightings(result.keys, sightings, scorer, rssi_correction=each, jobs=jobs)
        _match_revised(
            result, withdrawn, updated,
            lambda keys: check_sightings(keys, sightings, scorer, rssi_correction=each),
            heard, days, scorer, rssi_correction,
        )


def _match_streamed(
    result: ServerCheckResult,
    found: StreamedKeys,
    heard: HeardRpis | None,
    withdrawn: RevisedSet,
    updated: RevisedSet,
    scorer: Scorer,
    rssi_correction: int | RssiCorrection,
) -> None:
    """As ``_match_joined`` in the store, from what the stream ``found``: the exposures of the keys
    that sent a heard RPI, and of the earlier checks' revised keys, as ``check_store`` would find them
    in the keys joined."""
    assert heard is not None  # read when the stream began
    result.revoked = found.revoked + withdrawn.count
    span = widest_span([withdrawn.span, updated.span, found.usable_span])
    if span is None:
        return
    store, days = heard.store, whole_days(span)
    result.sightings = store.count_usable(*span)
    usable = found.keys["report_type"] != REPORT_TYPE_REVOKED
    if found.span is not None:
        result.exposures = heard.exposures(
            found.keys[usable], found.key_index[usable], found.rpis, found.span, days, scorer, rssi_correction
        )
    _match_revised(
        result, withdrawn, updated,
        lambda keys: check_store(keys, store, scorer, rssi_correction=rssi_correction, days=days)[1],
        heard, days, scorer, rssi_correction,
    )


def _tell_news_only(
    result: ServerCheckResult,
    store: SightingStore,
    server: str,
    keys: Keys,
    withdrawn: RevisedSet,
    updated: RevisedSet,
    now: float,
) -> None:
    """Leave out of ``result.exposures`` what an earlier check reported, give ``result.earlier`` what
    earlier checks reported and still holds, and remember this check's exposures, withdrawals and
    updates (``keys``: the exposures' keys by row) for the next."""
    reported = ExposureMemory(store, server)
    result.exposures = reported.not_reported(keys, result.exposures, now)
    # what earlier checks told about revised keys (an F2 warning that is now F1 is an upgrade, not news)
    memory = WarningMemory(store)
    withdrawn_keys, updated_keys = withdrawn.by_index, updated.by_index
    result.withdrawn = at_levels_told(_with_earlier_levels(memory, withdrawn_keys, result.withdrawn))
    # a real change only: never a step down the ladder, nor the type told again (an old revision replayed under a new
    # name after a more certain one, or the same one replayed, is no update)
    result.updated = _with_earlier_levels(memory, updated_keys, reported.news_of(updated_keys, result.updated, now))
    memory.remember(*_keys_of(keys, result.exposures), now)
    memory.remember(*_keys_of(updated_keys, result.updated), now)
    # what earlier checks reported and still holds: repeated, so "no new batches" never reads as all-clear
    result.earlier = reported.in_force(now, leaving_out=[(withdrawn_keys, result.withdrawn), (updated_keys, result.updated)])
    reported.forget(withdrawn_keys, result.withdrawn, now)
    reported.remember(updated_keys, result.updated, now)
    reported.remember(keys, result.exposures, now)


def _with_earlier_levels(memory: WarningMemory, keys: Keys, exposures: list[Exposure]) -> list[Exposure]:
    """``WarningMemory.with_earlier_levels`` of ``exposures`` (rows of ``keys``, an array or by row), their
    ``key_index`` kept."""
    if isinstance(keys, np.ndarray):
        return memory.with_earlier_levels(keys, exposures)
    told = memory.with_earlier_levels(*_keys_of(keys, exposures))
    return [replace(t, key_index=e.key_index) for t, e in zip(told, exposures)]


def _venue_exposures(
    result: ServerCheckResult,
    store: SightingStore,
    server: str,
    reports: list[Any],
    mine: list[Any],
    now: float,
) -> None:
    """``result.venue_exposures``: the device's visits (``mine``) the venue files' ``reports`` (those naming one of
    their venues) warn of, leaving
    out what an earlier check reported (in ``result.earlier_venue``), remembered for the next, and
    the reports this device uploaded itself (``result.own_checkins``: an F0 is not its own contact)."""
    told_elsewhere: list[VenueExposure] = []
    if reports:
        others, result.own_checkins = set_aside_own(
            reports, mine, store.checkin_uploads(), store.checkin_uploads_unrecorded(server)
        )
        # a report told of before is not news (a file replayed under another name); another case's report
        # of the very same minutes, in a later file, is.  Only reports naming one of my venues can tell
        # anything, and only theirs were kept from the files (``_download``): theirs are looked up and remembered
        told_macs = store.venue_reports_told([r.mac for r in others])
        told_elsewhere = match_venue_reports(mine, [r for r in others if r.mac in told_macs])
        others = [r for r in others if r.mac not in told_macs]
        result.venue_exposures = match_venue_reports(mine, others)
        store.save_venue_reports_told([r.mac for r in others], now)
    # venue exposures are repeated too (kept beside the Bluetooth ones, under their own name)
    venue_memory = server + VENUE_MEMORY
    result.earlier_venue = [e for _, _, e in store.reported_exposures(venue_memory, now)]
    # told by a check against this server under another URL (`demo --out`'s server run again on another
    # port): not news, but still in force, so repeated as Bluetooth exposures are, not dropped unsaid
    shown_before = {(e["checkin_id"], e["overlap_start"], e["overlap_end"]) for e in result.earlier_venue}
    again = [(v, v.as_dict()) for v in told_elsewhere]
    again = [(v, d) for v, d in again if (d["checkin_id"], d["overlap_start"], d["overlap_end"]) not in shown_before]
    if again:
        result.earlier_venue += [d for _, d in again]
        store.save_reported_exposures(venue_memory, [_venue_memory_row(v, d) for v, d in again], now)
    # told by a version that kept no reports' MACs (its exposures have no "cases"): alike is a replay
    told = [json.dumps(e, sort_keys=True) for e in result.earlier_venue if "cases" not in e]
    result.venue_exposures = [
        v for v in result.venue_exposures
        if json.dumps({k: x for k, x in v.as_dict().items() if k != "cases"}, sort_keys=True) not in told
    ]
    # the rest of a stay a check told in part (a case's second upload sent what its visit grew by): told whole
    result.venue_exposures = continued(result.venue_exposures, result.earlier_venue)
    # the same minutes told before, now of another case: remembered as both
    before = {(e["checkin_id"], e["overlap_start"], e["overlap_end"]): int(e.get("cases", 1)) for e in result.earlier_venue}
    remembered = []
    for v in result.venue_exposures:
        shown = v.as_dict()
        shown["cases"] += before.get((shown["checkin_id"], shown["overlap_start"], shown["overlap_end"]), 0)
        remembered.append(_venue_memory_row(v, shown))
    store.save_reported_exposures(venue_memory, remembered, now)


def _venue_memory_row(v: VenueExposure, shown: dict[str, Any]) -> tuple[bytes, str, float, float, dict[str, Any]]:
    """How a venue exposure ``v`` (shown as ``shown``) is kept for later checks to repeat."""
    return (v.warning.location_id_hash + v.visit.id.to_bytes(8, "big"), v.date, v.overlap_start, v.overlap_end, shown)


def _concatenate_freeing(parts: list[np.ndarray], release_every: int = 32 << 20) -> np.ndarray:
    """The keys of ``parts`` in one array, each part freed once copied (emptying ``parts``): a
    national day's batches are not held twice, as ``np.concatenate`` would hold them.

    The batches' arrays (about a megabyte each) live in the C heap, which keeps freed memory for
    reuse: it is handed back to the system every ``release_every`` bytes copied."""
    out = np.empty(sum(len(p) for p in parts), KEY_DTYPE)
    at = released = 0
    while parts:
        part = parts.pop(0)
        out[at : at + len(part)] = part
        at += len(part)
        if (at - released) * KEY_DTYPE.itemsize >= release_every or not parts:
            del part
            _release_freed_memory()
            released = at
    return out


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (Linux, Raspberry Pi OS), or None where the C library has none."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def _release_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (a no-op without glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """``keys`` with each key only where it first appears (``spool.first_of_each``)."""
    keys = np.ascontiguousarray(keys, KEY_DTYPE)
    keep = first_of_each(keys)
    return keys if keep.all() else keys[keep]


def _keys_of(keys: Keys, exposures: list[Exposure]) -> tuple[np.ndarray, list[Exposure]]:
    """(KEY_DTYPE keys, exposures naming them by row) for code that takes an array of keys."""
    if isinstance(keys, np.ndarray):
        return keys, exposures
    held = empty_keys(len(exposures))
    held["key"] = [keys[e.key_index] for e in exposures] if exposures else held["key"]
    return held, [replace(e, key_index=i) for i, e in enumerate(exposures)]


#: The name venue exposures are kept under in the node's memory of reported exposures (server URL + this).
VENUE_MEMORY = "#venues"


def check_with_server(
    server_url: str,
    db_path: Path | str | None = None,
    *,
    server_key_path: Path | str | None = None,
    scorer: Scorer | None = None,
    rssi_correction: int | RssiCorrection = 0,
    now: float | None = None,
    http: httpx.Client | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    jobs: int = 1,
    repin: bool = False,
) -> ServerCheckResult:
    """``bluezone check --server``: check the store at ``db_path`` (default path) against the
    server's new batches, matching in ``jobs`` processes; rejected batches are in the result
    (``raise_for_rejected``).  ``repin``: the key at ``server_key_path`` replaces the one pinned."""
    if repin and not server_key_path:
        raise InputError("--repin needs the server's new key: give it with --server-key FILE")
    given = read_server_key(server_key_path) if server_key_path else None
    now = time.time() if now is None else now  # the wall clock, as check_server's: the store is purged at it too
    with SightingStore.open(db_path, create=False, purge_now=now) as store, KeyServerClient(server_url, http=http) as client:
        # what is in force, at the daemon's measured time while it does not believe a step of the clock (a year
        # ahead, every earlier report was past its 14 days: "Close contact now: no"), as the store's purge is
        now = store.believed_time(now, quiet=True)
        result = check_server(
            client, ServerState(store), None, server_key=given, scorer=scorer,
            rssi_correction=rssi_correction, now=now, progress=progress, load_visits=lambda: visits(store), jobs=jobs,
            repin=repin,
        )
        result.bluezone3_unchecked = store.bluezone3_sightings_held()  # none of them is matched against a key server
        return result
