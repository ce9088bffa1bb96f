"""``bluezone upload``: this device's daily keys and check-ins to a key server, a thin wrapper over
bluezone.client.uploading (imported when first named, see bluezone/cli.py)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from bluezone.clitypes import ask_before_sending, cli_clock, db_option, emit_json, json_option, nothing_sent, parse_date



@click.command("upload")
@click.option("--server", "server_url", required=True, help="Key server base URL, e.g. https://keys.example.org.")
@click.option("--code", required=True, help="The verification code from the health authority.")
@db_option
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
@click.option(
    "--include-today", is_flag=True,
    help="Also send today's key, cut to end now (the daemon starts a new one for the rest of the day). Without it"
    " (or a yes when asked) today's key stays here: a code works once, so no later run sends it with this one.",
)
@click.option("--dry-run", is_flag=True, help="Print the request instead of sending it.")
@click.option("--symptom-onset", callback=parse_date, help="Date symptoms began (YYYY-MM-DD), if any.")
@click.option(
    "--exposure-date", callback=parse_date,
    help="A close contact (F1) with a recursive code: the date you were exposed, as the What now line of"
    " `bluezone check` gives it (and the code carries), in this machine's time zone (the exposure lines above it"
    " give UTC days); only keys from that date on are sent.",
)
@click.option(
    "--checkins/--no-checkins", "send_checkins", default=None,
    help="Also send your venue check-ins since the first day whose key goes (today's too), encrypted (default: shown and asked; with --yes, sent).",
)
@json_option(help="Print what was sent and stored as JSON.")
def upload(
    server_url: str, code: str, db_path: Path | None, yes: bool, include_today: bool, dry_run: bool,
    symptom_onset: Any, exposure_date: Any, send_checkins: bool | None, as_json: bool,
) -> None:
    """Send this device's daily keys of the last 14 days to the key server (after a positive test or diagnosis).

    Its venue check-ins go too, encrypted (asked first); a device that only checked in sends those alone.
    Sent again with a later code (the test after a 'likely' diagnosis, positive or negative), the same keys are
    revised, not published twice.

    A close contact (F1) given a recursive code sends its keys from its exposure date on (--exposure-date),
    so that its own close contacts (F2) are told.
    """
    from bluezone.client.keyserver import KeyServerClient, checked_server_url, shown_url
    from bluezone.client.uploading import (
        check_code,
        check_exposure_date,
        check_symptom_onset,
        checkins_for_code,
        code_type_for,
        dry_run_request,
        onset_interval,
        plan_upload,
        today_key_in_use,
        upload_own_keys,
        what_next,
        withheld_only,
    )
    from bluezone.proximity.store import SightingStore

    checked_server_url(server_url)  # before the store is read and the questions asked
    if send_checkins and exposure_date is not None:
        raise click.UsageError(
            "--checkins does not go with --exposure-date: a venue warning tells everyone who was there that a case was"
        )
    code = check_code(code)
    onset = onset_interval(symptom_onset)
    with SightingStore.open(db_path, create=False, purge_now=cli_clock().now()) as store:
        # the daemon's measured time while it does not believe a step of the clock (a year ahead, every key was past
        # its 14 days: "nothing to upload", and a date of last week "more than 28 days ago"), as the other commands'
        def believed_now() -> float:
            return store.believed_time(cli_clock().now(), quiet=True)

        now = believed_now()
        check_exposure_date(exposure_date, now)
        check_symptom_onset(symptom_onset, now)
        if not include_today and not yes and not dry_run and today_key_in_use(store.daily_keys(), now):
            include_today = ask_before_sending(
                "upload", "Today's key is still in use. Is your day over (no more contacts today), so it can be sent too?",
                instead="--yes to send without asking, with --include-today to send today's key too",
            )
        plan = plan_upload(
            store, now, include_today, exposure_date=exposure_date, checkins=send_checkins is not False, server=server_url
        )
        # a dry run shows the same list on stderr (what goes, what stays and why), the request on stdout
        _confirm_keys(plan, shown_url(server_url), include_today, yes, dry_run)
        with KeyServerClient(server_url) as client:
            kind = None  # what the code is for: whether check-ins go, and the advice after the upload (text only)
            if dry_run:  # a dry run sends nothing, not even the code to ask what it is for
                if plan.checkins:
                    click.echo("  (an upload first asks the server what the code is for: check-ins go only with a"
                               " positive test's code)", err=True)
            elif plan.checkins or not as_json:  # only once the keys are agreed to: asking sends the code
                kind = _asked_before_sending(lambda: code_type_for(client, code, checkins=bool(plan.checkins)))
                _, why = checkins_for_code(kind, plan.checkins)
                if why and not len(plan.keys):
                    raise withheld_only(why)
                if why:
                    click.echo(f"  ({why})", err=True)
                    plan = replace(plan, checkins=(), checkins_left_out=0, checkins_too_short=0)
            outgoing = _checkins_to_send(plan, send_checkins, yes, dry_run)
            if dry_run:
                click.echo(json.dumps(dry_run_request(store, server_url, plan, code, onset), indent=2))
                return
            # the clock again: the questions may have taken a while, and today's key is cut at the interval of sending
            result = upload_own_keys(
                store, client, code, believed_now(), include_today=include_today, symptom_onset_interval=onset,
                exposure_date=exposure_date, checkins=outgoing,
                checkins_left_out=plan.checkins_left_out if outgoing else 0,
            )
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(_uploaded_line(result))
    for line in what_next(result.receipt, kind):
        click.echo(line)


#: Under the keys listed: what sending them gives away, before the F0 agrees (the check-ins' list says theirs).
KEYS_PUBLISHED = (
    "  (published for anyone to download: a device that heard yours on those days learns when it was near this one;"
    " no name or place is in them)"
)

#: Under the keys listed when today's key stays: this code cannot carry it later, so today's contacts so far go unwarned.
TODAY_LEFT_OUT = (
    "  (today's key is not sent, so those you met today are not warned by this upload; this code works once: to send"
    " today's key too, upload with --include-today instead)"
)


def _asked_before_sending(ask: Any) -> Any:
    """``ask()``, the question of what the code is for (``/v1/verify``, which leaves the code unused), with its
    failure saying that nothing went: "cannot reach the key server ..." alone left an F0 to wonder whether the
    keys went and the code was spent (user30's walk)."""
    from bluezone.errors import KeyServerError, UploadRefusedError

    try:
        return ask()
    except UploadRefusedError:
        raise
    except KeyServerError as exc:
        raise type(exc)(
            f"{exc}; nothing was sent, and the code is not used up (it stays valid until it expires): try again once"
            " the key server can be reached", exc.code, exc.status,
        ) from None


def _confirm_keys(plan: Any, server_url: str, include_today: bool, yes: bool, dry_run: bool) -> None:
    """The daily keys about to go, listed on stderr and asked about (unless --yes or --dry-run); a device
    with none (it never ran `bluezone run`) is told that only its check-ins go."""
    if len(plan.keys):
        lead = "A dry run (nothing is sent) would send" if dry_run else "About to send"
        click.echo(f"{lead} {len(plan.keys)} daily key(s) to {server_url}:", err=True)
        _say_if_in_clear(server_url)
        for row in plan.as_dict()["keys"]:
            click.echo(f"  {row['date']}  {_key_span(row['rolling_start'], row['rolling_period'])}", err=True)
        click.echo(KEYS_PUBLISHED, err=True)
        if plan.today_in_use and not include_today:
            # (it said "use --include-today once your day is over": with a code that works once, there is no later)
            click.echo(TODAY_LEFT_OUT, err=True)
        elif plan.today_in_use:
            click.echo("  (today's key is sent up to now; a new key starts for the rest of the day)", err=True)
        if not (yes or dry_run) and not ask_before_sending("upload", "Send them?", instead=_yes_instead(plan)):
            nothing_sent()
    else:  # it never ran `bluezone run`: only the visits it checked in to can warn anyone
        click.echo(f"This device has no daily keys (it never ran `bluezone run`): only its check-ins go to {server_url}.",
                   err=True)
        _say_if_in_clear(server_url)


def _yes_instead(plan: Any) -> str:
    """The flags that send without asking what the answers so far chose: --yes alone leaves today's key."""
    return f"--yes{' --include-today' if plan.include_today else ''} to send without asking"


def _say_if_in_clear(server_url: str) -> None:
    from bluezone.client.keyserver import in_clear

    if warning := in_clear(server_url):
        click.echo(warning, err=True)


def _checkins_to_send(plan: Any, send_checkins: bool | None, yes: bool, dry_run: bool) -> Any:
    """The check-ins that go: listed on stderr in local time, with those that stay and why, then asked
    about unless --checkins, --yes or --dry-run answered already (a no with no keys to send sends nothing)."""
    outgoing = plan.checkins
    if outgoing:
        click.echo(
            f"You {'also ' if len(plan.keys) else ''}checked in {len({r.visit.id for r in outgoing})} time(s)"
            f" {'since then' if len(plan.keys) else 'in the last 14 days'} (names stay on this"
            " device; the server gets them encrypted, readable only by phones that checked in there too; a visit"
            " over UTC midnight is two lines):", err=True,
        )
        for shown in plan.as_dict()["checkins"]:  # local time, as `bluezone checkins` shows them
            start = dt.datetime.fromisoformat(shown["start"]).astimezone().strftime("%Y-%m-%d %H:%M %Z")
            click.echo(f"  {start}  {shown['minutes']:4d} min  {shown['venue']}", err=True)
        if plan.checkins_left_out:
            click.echo(_left_out_line(plan.checkins_left_out), err=True)
        if plan.checkins_too_short:
            click.echo(_too_short_line(plan.checkins_too_short), err=True)
        if send_checkins is None and not (yes or dry_run) and not ask_before_sending(
            "upload", f"Send these check-ins{' too' if len(plan.keys) else ''}, so others who were there are warned?",
            default=True, instead=_yes_instead(plan),
        ):
            if not len(plan.keys):
                nothing_sent()
            outgoing = ()
    elif plan.checkins_too_short:  # listed nowhere else: the F0 would wonder why a visit is missing
        click.echo(_too_short_line(plan.checkins_too_short), err=True)
    if plan.checkins_sent_before:
        click.echo(f"  ({plan.checkins_sent_before} check-in(s) went to this server with an earlier upload and are"
                   " not sent again: a second copy would read to the others who were there as a second case)", err=True)
    return outgoing


def _uploaded_line(result: Any) -> str:
    """The upload's last line: what was sent, and what the server stored of it."""
    revised = f", revised {result.receipt.revised}" if result.receipt.revised else ""
    sent = stored = ""
    if result.checkins:  # the server keeps none under a negative or recursive code: say so, not "uploaded 0"
        sent = f" and {len(result.checkins)} check-in(s)"
        stored = f" and {result.receipt.checkins} check-in(s)"
        if not result.receipt.checkins:
            stored += " (it publishes none under a negative test's or a close contact's code)"
    return f"uploaded {len(result.keys)} key(s){sent}; the server stored {result.receipt.inserted} new key(s){revised}{stored}"


def _key_span(start_interval: int, period: int) -> str:
    """A daily key's UTC hours, "00:00-18:40 UTC" ("valid 1120 min" read as time still to run)."""
    from bluezone.crypto.intervals import INTERVAL_SECONDS

    start = dt.datetime.fromtimestamp(start_interval * INTERVAL_SECONDS, dt.UTC)
    end = start + dt.timedelta(seconds=period * INTERVAL_SECONDS)
    return f"{start:%H:%M}-{'24:00' if end.date() > start.date() and end.time() == dt.time() else f'{end:%H:%M}'} UTC"


def _too_short_line(too_short: int) -> str:
    return (
        f"  ({too_short} visit(s) under 5 minutes stay on this device: too short to place on the 10-minute grid"
        " check-ins are sent on)"
    )


def _left_out_line(left_out: int) -> str:
    from bluezone.keyformat.venue_reports import MAX_CHECKINS_PER_DAY

    return (
        f"  ({left_out} more check-in(s) stay on this device: one upload carries at most {MAX_CHECKINS_PER_DAY}"
        " a day, the longest of each day go)"
    )
