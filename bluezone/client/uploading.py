"""Uploading this device's own daily keys after a positive test: ``bluezone upload`` as calls.

``plan_upload`` says what would be sent (nothing leaves the device), ``upload_own_keys`` sends
it, and ``upload`` does both for a Python caller who has already asked the user.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bluezone.client.keyserver import KeyServerClient, PublishReceipt, base_url_of
from bluezone.client.state import ServerState
from bluezone.clock import MAX_DATE_AGE_DAYS, earliest_date, latest_date
from bluezone.crypto.intervals import INTERVAL_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.errors import InputError, KeyServerError, UploadRefusedError
from bluezone.keyformat.codetext import code_digits
from bluezone.keyformat.keyfile import publish_body
from bluezone.keyformat.keys import keys_from_daily
from bluezone.keyformat.venue_reports import MAX_CHECKINS_PER_DAY
from bluezone.matching.levels import exposure_date_start, keys_since_exposure
from bluezone.proximity.store import SightingStore
from bluezone.venues.checkins import visits
from bluezone.venues.upload import remember_uploaded, reports_to_upload

UPLOAD_DAYS = 14
#: Stands in for the saved revision token in a dry run: the token itself is never shown.
TOKEN_PLACEHOLDER = "<revision token of your last upload>"


def check_code(code: str) -> str:
    """The digits of ``code`` if it is a verification code (6-16 digits; the spaces or dashes
    of a code read out or printed in groups, "3572 4109", are dropped), else InputError.

    Digits typed in another script (a phone keyboard's Arabic-Indic or a CJK input method's full-width
    ones) are the same code, sent as ASCII; so is a code pasted from a letter whose dashes became en dashes."""
    digits = code_digits(code)
    if not (digits.isascii() and digits.isdigit() and 6 <= len(digits) <= 16):
        raise InputError(
            "the verification code is the digits the health authority gave you: 6 to 16 of them"
            " (spaces or dashes between groups are fine)"
        )
    return digits


def check_exposure_date(exposure_date: dt.date | None, now: float) -> dt.date | None:
    """``exposure_date`` unless it lies in the future or more than 28 days back (InputError); today where the
    user lives may be UTC's tomorrow (in Vietnam until 07:00), and a recursive code's date lies within 14 days
    of its issue (28 leaves the code's day of life and more; 0001-01-01 has no local midnight to send keys from)."""
    if exposure_date is not None and exposure_date > latest_date(now):
        raise InputError(f"the exposure date {exposure_date} is in the future")
    if exposure_date is not None and exposure_date < earliest_date(now, MAX_DATE_AGE_DAYS):
        raise InputError(
            f"the exposure date {exposure_date} is more than {MAX_DATE_AGE_DAYS} days ago: a close contact's"
            " (recursive) code is for an exposure within the last 14 days"
        )
    return exposure_date


def check_symptom_onset(symptom_onset: dt.date | None, now: float) -> dt.date | None:
    """``symptom_onset`` unless it lies in the future or more than 28 days back (InputError, before anything
    is sent: the server refused a date before 1970 with a 400 about a JSON field, took one in the future, and
    from one further back than 28 days no key it keeps has a known days since onset)."""
    if symptom_onset is not None and symptom_onset > latest_date(now):
        raise InputError(f"the symptom onset {symptom_onset} is in the future")
    if symptom_onset is not None and symptom_onset < earliest_date(now, MAX_DATE_AGE_DAYS):
        raise InputError(
            f"the symptom onset {symptom_onset} is more than {MAX_DATE_AGE_DAYS} days ago:"
            " no key still kept would have a known days since onset"
        )
    return symptom_onset


def onset_interval(symptom_onset: dt.date | None) -> int | None:
    """The ``symptomOnsetInterval`` of a symptom onset date (the day's first interval)."""
    if symptom_onset is None:
        return None
    return (symptom_onset - dt.date(1970, 1, 1)).days * ROLLING_PERIOD


def _key_rows(keys: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "date": dt.datetime.fromtimestamp(int(k["rolling_start"]) * INTERVAL_SECONDS, dt.UTC).date().isoformat(),
            "rolling_start": int(k["rolling_start"]),
            "rolling_period": int(k["rolling_period"]),
        }
        for k in keys
    ]


@dataclass(frozen=True)
class UploadPlan:
    """The keys an upload would send, before anything is sent."""

    keys: np.ndarray  # KEY_DTYPE, oldest first
    today_in_use: bool  # one of the device's keys is on air now
    include_today: bool  # ... and it is among ``keys`` (cut to end with the current interval)
    checkins: tuple[Any, ...] = ()  # venues.upload.OutgoingReport: the check-ins since the first key's day, sealed
    #: check-ins of days with more than one upload carries (MAX_CHECKINS_PER_DAY): they stay on the device
    checkins_left_out: int = 0
    #: visits in the same days too short to send (under 5 minutes once put on the 10-minute grid, or begun
    #: just now): they stay on the device, and the F0 is told so rather than left to wonder
    checkins_too_short: int = 0
    #: visits sent to this server by an earlier upload (a "likely" code, then the confirmed one), not sent again:
    #: a check-in report has no report type to revise, and a second copy reads to visitors as a second case
    checkins_sent_before: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": _key_rows(self.keys), "today_in_use": self.today_in_use, "include_today": self.include_today,
            "checkins": [r.as_dict() for r in self.checkins], "checkins_left_out": self.checkins_left_out,
            "checkins_too_short": self.checkins_too_short, "checkins_sent_before": self.checkins_sent_before,
        }


def longest_of_each_day(reports: Sequence[Any], per_day: int = MAX_CHECKINS_PER_DAY) -> tuple[list[Any], int]:
    """At most ``per_day`` of ``reports`` (OutgoingReport) on any UTC day, in their order: the longest of
    a fuller day (the most time others could share with the case; the earlier of equals), and how many
    were left out.  The key server refuses a day over its cap, which lost a courier's whole upload."""
    by_day: dict[int, list[Any]] = {}
    for report in reports:
        by_day.setdefault(report.day, []).append(report)
    kept = {
        id(r)
        for day_reports in by_day.values()
        for r in sorted(day_reports, key=lambda r: (-r.period, r.start_interval))[:per_day]
    }
    chosen = [r for r in reports if id(r) in kept]
    return chosen, len(reports) - len(chosen)


@dataclass(frozen=True)
class UploadResult:
    """What was sent to which server, and what the server took."""

    server: str
    keys: np.ndarray  # KEY_DTYPE, as sent
    receipt: PublishReceipt
    checkins: tuple[Any, ...] = ()  # venues.upload.OutgoingReport, as sent
    checkins_left_out: int = 0  # of days fuller than one upload carries: kept on the device

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "sent": len(self.keys),
            "stored": self.receipt.inserted,
            "revised": self.receipt.revised,
            "keys": _key_rows(self.keys),
            "checkins_sent": len(self.checkins),
            "checkins_stored": self.receipt.checkins,
            "checkins": [r.as_dict() for r in self.checkins],
            "checkins_left_out": self.checkins_left_out,
        }


def keys_to_upload(daily: Iterable[DailyKey], now: float, include_today: bool, days: int = UPLOAD_DAYS) -> np.ndarray:
    """The device's keys of the last ``days`` days, oldest first; today's only if ``include_today``.

    Today's key is released the same day (as GAEN does since v1.5): it is cut short to end with
    the current 10-minute interval, so the server may publish it as soon as that interval is
    over, when the daemon has replaced it with a fresh key for the rest of the day.
    """
    return keys_from_daily(_upload_selection(daily, now, include_today, days))


def _upload_selection(daily: Iterable[DailyKey], now: float, include_today: bool, days: int) -> list[DailyKey]:
    today = rolling_start(now)
    current = interval_number(now)
    first = today - days * ROLLING_PERIOD
    chosen: list[DailyKey] = []
    for key in sorted(daily, key=lambda k: k.rolling_start):
        if key.end <= first or key.rolling_start > current:
            continue  # too old, or not started yet
        if key.end > current:  # on air now: today's key
            if not include_today:
                continue
            if key.end > current + 1:
                # ends with the current interval: its RPIs sent so far all match, the daemon stops it at
                # the interval's end, and the server's embargo holds it until then (at most 10 minutes)
                key = DailyKey(key.key, key.rolling_start, current + 1 - key.rolling_start)
        chosen.append(key)
    return chosen


def today_key_in_use(daily: Iterable[DailyKey], now: float) -> bool:
    """Whether one of ``daily`` is still being broadcast now (so uploading it is a choice)."""
    current = interval_number(now)
    return any(k.rolling_start <= current < k.end for k in daily)


def _nothing_to_upload(
    daily: list[DailyKey], now: float, include_today: bool, days: int, exposure_date: dt.date | None,
    db: Path | None, checkins: bool = False, sent_before: int = 0,
) -> InputError:
    """Why there is nothing to send: when only today's key (still on air) is there, how to send it; else
    which database was read (``db``; None: in memory), since the default one may not be the device's."""
    if not include_today and today_key_in_use(daily, now):
        return InputError(
            "the only daily key here is today's, still in use (this device has not run a whole day yet): add "
            "--include-today to send it (it is cut to end with the current 10 minutes, and the daemon starts a "
            "new key for the rest of the day)"
        )
    since = f"since {exposure_date}" if exposure_date else f"of the last {days} days"
    checked_in = " and no check-ins" if checkins else ""
    if sent_before:
        checked_in = f" and no check-ins not sent before ({sent_before} went to this server already)"
    if db is None:
        return InputError(f"no daily keys{checked_in} {since} in this database: nothing to upload")
    return InputError(f"no daily keys{checked_in} {since} in {db}: nothing to upload (to read another database: --db PATH)")


def plan_upload(
    store: SightingStore, now: float, include_today: bool, days: int = UPLOAD_DAYS,
    exposure_date: dt.date | None = None, checkins: bool = True, server: str | None = None,
) -> UploadPlan:
    """The keys ``upload_own_keys`` would send at ``now`` (only those from ``exposure_date`` on, for a
    close contact with a recursive code) and, with ``checkins``, the venue check-ins since the first of those days (today's too;
    none for a close contact: a venue warning says that a case was there), but not the minutes of them
    an earlier upload to ``server`` sent (docs/venues.md, "Uploading again"); InputError when there are no keys."""
    daily = store.daily_keys()
    keys = keys_since_exposure(keys_to_upload(daily, now, include_today, days), exposure_date, store)
    checkins_only = len(keys) == 0 and checkins and exposure_date is None and not _upload_selection(daily, now, True, days)
    if len(keys) == 0 and not checkins_only:
        raise _nothing_to_upload(daily, now, include_today, days, exposure_date, store.path)
    outgoing: tuple[Any, ...] = ()
    left_out = too_short = sent_before = 0
    if checkins and exposure_date is None:  # a close contact's visits would be told as a case's
        # the check-ins of the days whose keys go; with no keys at all (a device that only checked in,
        # never ran the daemon) those of the same 14 days
        first = int(keys["rolling_start"].min()) if len(keys) else rolling_start(now) - days * ROLLING_PERIOD
        since_time = first * INTERVAL_SECONDS
        stays = [v for v in visits(store, since_time) if v.start < now]
        sent = store.checkin_sent_until(base_url_of(server)) if server else {}
        reports = reports_to_upload(stays, since_time, now, sent_until=sent)
        going = {r.visit.id for r in reports}
        sent_before = len({v.id for v in stays if v.id in sent} - going)
        # too short: a visit of these days that rounds to nothing (one begun before them is cut at their
        # start, as every key before them is: not sent, and not short)
        too_short = len({v.id for v in stays if v.start >= since_time and v.id not in sent} - going)
        chosen, left_out = longest_of_each_day(reports)
        outgoing = tuple(chosen)
    if checkins_only and not outgoing:
        raise _nothing_to_upload(daily, now, include_today, days, exposure_date, store.path, checkins=True, sent_before=sent_before)
    return UploadPlan(keys, today_key_in_use(daily, now), include_today, outgoing, left_out, too_short, sent_before)


#: The tests whose code may carry check-ins: a venue warning tells everyone who was there that a case was.
POSITIVE_TESTS = ("confirmed", "likely")


def code_type_for(client: KeyServerClient, code: str, *, checkins: bool) -> str | None:
    """What the server says ``code`` is for (``KeyServerClient.code_type``), asked once the keys are agreed
    to (asking sends the code).  It chooses whether ``checkins`` go and what ``what_next`` advises; for the
    advice alone, a server that answers but fails to say (not refusing the code: that is the upload's own
    refusal) gives None, and the upload goes on as it did before it asked.  One not reached is the upload's
    failure too, said now rather than waited for twice."""
    try:
        return client.code_type(code)
    except UploadRefusedError:
        raise
    except KeyServerError as exc:
        if checkins or not exc.status:  # (status 0: no answer at all, the connection or the deadline)
            raise
        return None


def checkins_for_code(kind: str | None, checkins: Sequence[Any]) -> tuple[tuple[Any, ...], str]:
    """``checkins`` where the server said the code is a positive test's (``kind``, from ``/v1/verify``: the
    code stays unused), else none and why, a line for the user.  A check-in report shows the server its venue's
    hash and day: none goes with a negative test's or a close contact's code (the server kept none, but saw them),
    nor to a server that cannot say what the code is for."""
    if not checkins:
        return (), ""
    why = not_positive(kind)
    if not why:
        return tuple(checkins), ""
    return (), f"{len(checkins)} check-in(s) stay on this device: {why}, and check-ins go only with a positive test's code"


def not_positive(kind: str | None) -> str:
    """Why a code of test type ``kind`` (``KeyServerClient.code_type``'s answer) may carry no check-in
    report, or "" for a positive test's: the words ``upload`` and ``venue warn`` both refuse with."""
    if kind in POSITIVE_TESTS:
        return ""
    return {
        "negative": "this code is a negative test's",
        "recursive": "this code is a close contact's (recursive)",
        None: "the key server does not say what this code is for (it has no /v1/verify: an older server)",
    }.get(kind, f"this code is a {kind} test's")


def withheld_only(why: str) -> InputError:
    """Nothing to upload: the device has no daily keys, and its check-ins may not go with this code (``why``)."""
    return InputError(f"nothing to upload: this device has no daily keys, and {why}")


def dry_run_request(
    store: SightingStore, server_url: str, plan: UploadPlan, code: str, symptom_onset_interval: int | None = None
) -> dict[str, Any]:
    """The ``/v1/publish`` body the upload would send, the revision token replaced by a placeholder."""
    # the token of this device's last upload goes too (it lets a later code revise those keys); not shown
    saved = ServerState(store).revision_token(base_url_of(server_url))  # a dry run deletes nothing
    token = TOKEN_PLACEHOLDER if saved else None
    return publish_body(plan.keys, code, symptom_onset_interval, token, [r.entry() for r in plan.checkins])


def upload_own_keys(
    store: SightingStore, client: KeyServerClient, code: str, now: float, *,
    include_today: bool, symptom_onset_interval: int | None = None, days: int = UPLOAD_DAYS,
    exposure_date: dt.date | None = None, checkins: Sequence[Any] = (), checkins_left_out: int = 0,
) -> UploadResult:
    """Publish the device's keys (and ``checkins``, sealed venue reports, at most MAX_CHECKINS_PER_DAY a day:
    the longest; ``checkins_left_out``, those ``plan_upload`` left out already, is added to the count of
    those left on the device); what was sent and what the server took.

    The revision token of this device's last upload to the same server goes with them, so a
    later code (a "likely" diagnosis confirmed, or a negative test) can change the report type
    of keys sent before; the server's new token replaces it in the node's database.
    The check-ins the server took are remembered (``venues.upload.remember_uploaded``): its venue
    warnings then name them, and a check sets them aside rather than warn the F0 of itself.
    Only after the server accepted them is a released key of today cut short in the store, so
    the daemon stops broadcasting it when the current interval ends and starts a new key for the
    rest of the day.
    With ``exposure_date`` (a close contact, F1, with a recursive code) only the keys from that date
    on (in this machine's time zone, or from a close contact told on that date elsewhere) go: before it the
    F1 could pass nothing on.
    """
    daily = store.daily_keys()
    chosen = _upload_selection(daily, now, include_today, days)
    if exposure_date is not None:
        first = exposure_date_start(exposure_date, store)
        chosen = [k for k in chosen if k.end > first]
    if not chosen and not (checkins and not _upload_selection(daily, now, True, days)):
        raise _nothing_to_upload(daily, now, include_today, days, exposure_date, store.path)
    keys = keys_from_daily(chosen)  # none: a device that only checked in sends its check-ins alone
    checkins, left_out = longest_of_each_day(list(checkins))
    state = ServerState(store)
    token = state.revision_token(client.base_url, now)
    receipt = client.publish(keys, code, symptom_onset_interval, token, [r.entry() for r in checkins])
    if receipt.revision_token is not None:
        state.save_revision_token(client.base_url, receipt.revision_token, now)
    if checkins and receipt.checkins:  # published: a check must not warn this device of its own visits
        remember_uploaded(store, checkins, client.base_url, now)
    current = interval_number(now)
    for key in chosen:
        if key.end == current + 1 and key.rolling_period < ROLLING_PERIOD:
            store.save_daily_key(key)  # updates the period: the key ends with this interval
    return UploadResult(client.base_url, keys, receipt, tuple(checkins), checkins_left_out + left_out)


def what_next(receipt: PublishReceipt, test_type: str | None) -> list[str]:
    """What happens after an upload, and what the F0 still has to do, for the code's ``test_type`` (what the
    server said it is for; None: it could not say).  Told nothing, an F0 with a "likely" code threw the
    device's keys (and the revision token) away before the test confirmed it; told it after a confirmed
    test's upload, there was nothing to do.  The client does not know the server's export schedule."""
    if receipt.inserted or receipt.checkins:
        told = (("people near you", receipt.inserted), ("those at the venues you sent", receipt.checkins))
        who = " and ".join(name for name, count in told if count)
        lines = [f"next: published at the server's next export; {who} are warned when they next check"]
    elif receipt.revised and test_type == "negative":
        lines = ["next: your keys' warning is withdrawn at the server's next export; people near you learn of it when"
                 " they next check"]
    elif receipt.revised:  # a likely report confirmed, a close contact's diagnosed
        lines = ["next: the change is published at the server's next export; people near you learn of it when they next"
                 " check"]
    else:
        return ["next: nothing new was stored, so nothing more is published"]
    return lines + _still_to_do(test_type, bool(receipt.inserted or receipt.revised), bool(receipt.checkins))


def _still_to_do(test_type: str | None, keys: bool, checkins: bool) -> list[str]:
    """The line for a report a later test revises (docs/server.md, "Revision"): keep the device, whose
    database holds the revision token, and upload again; none after a confirmed or negative test's, nor
    for check-ins alone (no keys on the server to revise: a device that never ran `bluezone run`)."""
    # check-ins carry no revision token (docs/venues.md): say so before a negative test, not after
    if not keys:
        if test_type == "likely" and checkins:
            return ["  (check-ins are not revised: their warning stays published 14 days whatever your test says)"]
        return []
    stay = ", not the check-ins', which stay published 14 days" if checkins else ""
    if test_type == "likely":
        return [
            "  (a 'likely' code, no test yet: keep this device and its database, and upload again with the confirmed"
            f" code when you get it; a negative test's code withdraws your keys' warning{stay})"
        ]
    if test_type == "recursive":
        return [
            "  (a close contact's code: keep this device and its database, and if you are diagnosed or tested later,"
            " upload again with that code: the warnings of those you met are updated, or withdrawn by a negative test)"
        ]
    if test_type is None:  # a server that cannot say what the code was for
        return [
            "  (if the code was a 'likely' one, no test yet: keep this device and its database, and upload again with"
            f" the confirmed code when you get it; a negative test's code withdraws your keys' warning{stay})"
        ]
    return []


def upload(
    server_url: str,
    code: str,
    db_path: Path | str | None = None,
    *,
    now: float | None = None,
    include_today: bool = False,
    symptom_onset: dt.date | None = None,
    exposure_date: dt.date | None = None,
    checkins: bool = True,
    http: httpx.Client | None = None,
) -> UploadResult:
    """``bluezone upload --yes``: send the keys of the store at ``db_path`` (default path) to the
    server, with the check-ins since the first key's day unless ``checkins`` is False or the server says the
    code is not a positive test's (``checkins_for_code``), without asking: the caller has asked the user
    already.  ``now``: the wall clock (the daemon's measured time is used while it does not believe a step of it)."""
    wall = time.time() if now is None else now
    code = check_code(code)
    with SightingStore.open(db_path, create=False, purge_now=wall) as store, KeyServerClient(server_url, http=http) as client:
        now = store.believed_time(wall, quiet=True)  # as the other commands read the time
        check_exposure_date(exposure_date, now)
        check_symptom_onset(symptom_onset, now)
        plan = plan_upload(store, now, include_today, exposure_date=exposure_date, checkins=checkins, server=server_url)
        kind = client.code_type(code) if plan.checkins else None  # the server says what the code is for
        outgoing, why = checkins_for_code(kind, plan.checkins)
        if why and not len(plan.keys):
            raise withheld_only(why)
        return upload_own_keys(
            store, client, code, now, include_today=include_today, symptom_onset_interval=onset_interval(symptom_onset),
            exposure_date=exposure_date, checkins=outgoing, checkins_left_out=plan.checkins_left_out if outgoing else 0,
        )
