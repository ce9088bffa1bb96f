"""``bluezone venue ...`` (owner), ``checkin`` / ``checkout`` / ``checkins`` (visitor): thin
wrappers over bluezone.venues."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bluezone.clitypes import FloatRange, ask_before_sending, cli_clock, db_option, json_option, nothing_sent
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.errors import InputError, VenueError
from bluezone.printable import printable_line
from bluezone.venues.visits import local_time

if TYPE_CHECKING:
    from bluezone.venues.location import Venue


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


#: Times a venue's event, a visit or a warning can have: from 1970 to the last moment of year 9999 in UTC
#: (a time in year 1 or 9999 with no zone, or one its zone moves past either end, ended in
#: 'ValueError: year 0 is out of range', exit 1).
LAST_TIME = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp()


def parse_time(value: str, name: str) -> float:
    """ISO 8601 date and time (``2026-12-04T18:30``, ``...Z`` or ``+07:00``); no zone = this machine's."""
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise VenueError(f"{name} {value!r} is not a date and time like 2026-12-04T18:30 (ISO 8601)") from None
    try:
        t = (moment.astimezone() if moment.tzinfo is None else moment).timestamp()
    except (ValueError, OverflowError):
        t = -1.0
    if not 0 <= t <= LAST_TIME:
        raise VenueError(f"{name} {value!r} is not between 1970 and 9999")
    return t


# --- venue owner ------------------------------------------------------------------------------


@click.group("venue")
def venue() -> None:
    """Venue owners: make a check-in poster, run a Bluetooth venue beacon, warn visitors."""


@venue.command("create")
@click.option("--name", required=True, help="The venue's name as visitors see it (at most 100 characters).")
@click.option("--address", required=True, help="Its address (at most 100 characters).")
@click.option(
    "--type",
    "kind",
    default="permanent-other",
    show_default=True,
    help="CWA location type: retail, food-service, craft, workplace, educational-institution, public-building, "
    "permanent-other; temporary events (cultural-event, club-activity, private-event, worship-service, "
    "temporary-other) need --start and --end.",
)
@click.option("--default-minutes", type=int, default=None, help="Usual stay: visitors are checked out after it (15-1425; without it 15, or a temporary event's length).")
@click.option("--start", "start", default=None, help="Temporary event: start (ISO 8601, 2026-12-04T18:30: this machine's time unless it gives a zone).")
@click.option("--end", "end", default=None, help="Temporary event: end (ISO 8601).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Directory for the poster and secrets.")
@json_option
def venue_create(
    name: str, address: str, kind: str, default_minutes: int | None, start: str | None, end: str | None, out: Path, as_json: bool
) -> None:
    """Create a venue: check-in URL, poster (PNG, SVG) and the venue's secrets (0600) in --out."""
    from bluezone.venues.location import Venue
    from bluezone.venues.owner import create_venue_dir

    start_t = None if start is None else int(parse_time(start, "--start"))
    end_t = None if end is None else int(parse_time(end, "--end"))
    venue = Venue.create(name, address, kind, default_minutes, start_t, end_t, now=cli_clock().now())
    info = create_venue_dir(out, venue)
    if as_json:
        _emit_json(info)
        return
    click.echo(info["url"])
    click.echo(
        f"venue {info['description']!r} ({info['type']}), visitors checked out after {info['stay_minutes']} min",
        err=True,
    )
    click.echo(
        printable_line(f"poster {out / info['poster_png']} and {out / info['poster_svg']}; secrets in {info['secret_file']}"),
        err=True,
    )


@venue.command("poster")
@click.argument("venue_path", metavar="VENUE_FILE_OR_DIR", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Directory for poster.png and poster.svg (default: the venue's own directory).")
@click.option("--force", is_flag=True, help="Draw over a poster already there.")
@json_option
def venue_poster(venue_path: Path, out: Path | None, force: bool, as_json: bool) -> None:
    """Draw a venue's poster (PNG, SVG) again: its QR code reads as the URL `venue create` printed.

    VENUE_FILE_OR_DIR is the directory `venue create --out` made, or its venue.json; an existing
    poster is kept unless --force.  Prints the check-in URL, as create does.
    """
    from bluezone.venues.owner import POSTER_PNG, POSTER_SVG, load_venue, write_poster

    place = load_venue(venue_path)
    if out is None:
        out = venue_path if venue_path.is_dir() else venue_path.parent
    drawn, kept = write_poster(out, place, force=force)
    if as_json:
        _emit_json({"url": place.url, "description": place.description, "poster_png": str(out / POSTER_PNG),
                    "poster_svg": str(out / POSTER_SVG),
                    "drawn": [str(p) for p in drawn], "kept": [str(p) for p in kept]})
        return
    click.echo(place.url)
    click.echo(f"poster of {place.description!r}: {' and '.join(map(str, drawn))}"
               + "".join(f"; {p} kept as it was (--force draws over it)" for p in kept), err=True)


def _venue_from_url(text: str, command: str) -> Venue:
    """The venue of a check-in URL; a file or folder given in its place is told what to give instead
    (`checkin photo.jpg` and `venue show cafe/` said only 'not a venue check-in URL', user29)."""
    from bluezone.venues.location import Venue

    try:
        return Venue.from_url(text)
    except VenueError as exc:
        problem = exc
    path = Path(text)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL: a mistyped URL, as it says
        raise problem from None
    shown = printable_line(text)
    if is_dir or (is_file and path.name == "venue.json"):
        raise VenueError(
            f"{shown} is a venue's {'folder' if is_dir else 'file'}, not a check-in URL: the URL is printed under the"
            " poster's QR code and kept as \"url\" in the folder's venue.json"
        )
    if is_file and command == "checkin":
        raise VenueError(
            f"{shown} is a file, not a check-in URL: a photo of the poster goes with --image (bluezone checkin --image"
            f" {shown})"
        )
    raise problem from None


@venue.command("show")
@click.argument("url")
@json_option
def venue_show(url: str, as_json: bool) -> None:
    """Decode a check-in URL: name, address, type, default stay, location id (no network)."""
    info = _venue_from_url(url, "venue show").as_dict()
    if as_json:
        _emit_json(info)
        return
    for key in ("description", "address", "type", "default_minutes", "stay_minutes", "location_id"):
        click.echo(f"{key:16} {'-' if info[key] is None else info[key]}")
    if info["start"]:
        click.echo(f"{'event':16} {local_time(info['start'])} .. {local_time(info['end'])}")


# --- visitor ----------------------------------------------------------------------------------


@click.command("checkin")
@click.argument("url", required=False)
@click.option("--image", "image", type=click.Path(dir_okay=False, path_type=Path), help="Read the QR code from a photo.")
@click.option("--start", default=None, help="A past visit: when it began (ISO 8601, 2026-12-04T18:30: this machine's time unless it gives a zone; needs --end).")
@click.option("--end", default=None, help="A past visit: when it ended (ISO 8601).")
@db_option
@json_option
def checkin(url: str | None, image: Path | None, start: str | None, end: str | None, db_path: Path | None, as_json: bool) -> None:
    """Check in at a venue: URL (the text of its QR code) or --image PHOTO.

    Stays on this device.  You are checked out after the venue's usual stay, or with
    `bluezone checkout`.  With --start and --end, records a visit that is over.
    """
    from bluezone.proximity.store import SightingStore
    from bluezone.venues.checkins import check_in, record_visit
    from bluezone.venues.scan import venue_from_photo

    if (url is None) == (image is None):
        raise click.UsageError("give the check-in URL or --image PHOTO (one of them)")
    if (start is None) != (end is None):
        raise click.UsageError("--start and --end go together")
    place = _venue_from_url(url, "checkin") if url is not None else venue_from_photo(image)  # type: ignore[arg-type]
    # read before the store opens: a mistyped time left a new, empty store behind at --db
    past = (parse_time(start, "--start"), parse_time(end, "--end")) if start is not None and end is not None else None
    now = cli_clock().now()
    with SightingStore.open(db_path, purge_now=now) as store:
        now = store.believed_time(now, quiet=True)  # a clock the daemon does not believe would keep it a year
        if past is not None:
            visit = record_visit(store, place, *past, now)
            result: dict[str, Any] = {"checkin": visit.as_dict(), "ended": None}
        else:
            done = check_in(store, place, now, source="url" if url is not None else "image")
            visit, result = done.visit, done.as_dict()
    if as_json:
        _emit_json(result)
        return
    if result["ended"]:
        click.echo(f"checked out of {result['ended']['description']}")
    if start is not None:
        click.echo(f"recorded a visit to {visit.description}: {local_time(visit.start)} .. {local_time(visit.end)}")
    else:
        click.echo(f"checked in at {visit.description} ({visit.address}); automatic check-out {local_time(visit.end)}")
        _say_outside_the_event(place, visit.start)


def _say_outside_the_event(place: Venue, when: float) -> None:
    """A check-in now at an event not running now (an invitation's QR code scanned days early, a poster left up)
    is kept, as CWA keeps it, but said: CWA warns before its start and after its end (QRCodeVerifyResult's
    StartTimeWarning, EndTimeWarning); bluezone said nothing (user29)."""
    if place.start is not None and when < place.start:
        click.echo(f"note: {place.description} starts {local_time(place.start)}: checked in now all the same"
                   " (check out with `bluezone checkout`, or give a visit's times with --start and --end)", err=True)
    elif place.end is not None and when > place.end:
        click.echo(f"note: {place.description} ended {local_time(place.end)}: checked in now all the same"
                   " (check out with `bluezone checkout`, or give a visit's times with --start and --end)", err=True)


@click.command("checkout")
@db_option
@json_option
def checkout(db_path: Path | None, as_json: bool) -> None:
    """Check out of the venues you are checked in at (a beacon's check-in beside a QR one too)."""
    from bluezone.proximity.store import SightingStore
    from bluezone.venues.checkins import check_out

    now = cli_clock().now()
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        ended = check_out(store, store.believed_time(now, quiet=True))
    if as_json:  # the newest, as before; "also_ended" lists a beacon's open beside it
        _emit_json({**ended[0].as_dict(), "also_ended": [v.as_dict() for v in ended[1:]]})
        return
    for visit in ended:
        click.echo(f"checked out of {visit.description} after {round((visit.end - visit.start) / 60)} min")


@click.command("checkins")
@db_option
@json_option
def checkins(db_path: Path | None, as_json: bool) -> None:
    """List this device's check-ins of the last 14 days (they are deleted after that)."""
    from bluezone.proximity.store import SightingStore
    from bluezone.venues.checkins import visits

    now = cli_clock().now()
    with SightingStore.open(db_path, create=False, purge_now=now) as store:
        found, now = visits(store), store.believed_time(now, quiet=True)
    rows = [{**v.as_dict(), "open": (not v.checked_out) and v.start <= now < v.end} for v in found]
    if as_json:
        _emit_json({"checkins": rows})
        return
    if not rows:
        click.echo("no check-ins in the last 14 days")
        return
    for v, row in zip(found, rows, strict=True):
        state = "here now" if row["open"] else "checked out" if v.checked_out else "auto check-out"
        click.echo(f"{local_time(v.start)} .. {local_time(v.end)}  {v.description} ({v.address})  [{state}, {v.source}]")


@venue.command("beacon")
@click.argument("venue_dir", type=click.Path(path_type=Path))
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    help="Radio that sends the beacon's adverts: auto, bluez[:hciN] (a Pi's adapter), or emulated (nobody hears it).",
)
@click.option(
    "--duration", type=FloatRange(0, min_open=True), default=None,
    help="Stop after SECONDS (default: until Ctrl-C or SIGTERM, as `systemctl stop` sends).",
)
@json_option
def venue_beacon(venue_dir: Path, backend: str, duration: float | None, as_json: bool) -> None:
    """Broadcast the venue over Bluetooth: bluezone devices in range check in after a few minutes.

    Sends the venue's QR payload, encrypted under a key that changes every 10 minutes, cut
    into frames (docs/venues.md); the secrets in VENUE_DIR stay on this machine.
    """
    from bluezone.proximity.stopsignals import noted_until_the_stop

    with noted_until_the_stop():  # a SIGTERM or SIGHUP as its modules load: its clean stop, as `run`'s
        _venue_beacon(venue_dir, backend, duration, as_json)


def _venue_beacon(venue_dir: Path, backend: str, duration: float | None, as_json: bool) -> None:
    from bluezone.clock import SystemClock, run_on
    from bluezone.proximity.backends import open_radio, radio_names
    from bluezone.proximity.backends.registry import unknown_radio
    from bluezone.proximity.backends.emulated import Air
    from bluezone.proximity.radio import Radio
    from bluezone.venues import beacon
    from bluezone.venues.broadcast import BeaconStats, run_beacon
    from bluezone.venues.owner import load_venue_dir

    secrets = load_venue_dir(venue_dir)
    kind = backend.split(":", 1)[0]
    if kind == "bumble":  # its advertise_as raises: say so before opening a dongle
        raise click.UsageError(
            "a venue beacon sends through BlueZ (--backend auto or bluez:hciN) or the emulated radio;"
            " the bumble backend cannot send its adverts yet"
        )
    if kind not in radio_names():  # open_radio's list offers bumble, which the beacon refuses
        raise unknown_radio(backend, "auto, bluez[:hciN] or emulated")
    clock = cli_clock()
    radio: Radio
    if backend == "emulated":
        radio = Air(clock).radio("venue-beacon", (0.0, 0.0), beacon.SERVICE_UUID)
    else:  # auto is BlueZ, without auto's advice to try bumble, which cannot send a beacon
        radio = open_radio("bluez" if backend == "auto" else backend, clock=clock)
    def started() -> None:  # once the radio is open: printed before, it read as on air above a radio's error
        if not as_json:
            click.echo(f"venue beacon for {secrets.venue.description} on {radio.name}; a status line every 10 minutes"
                       " (Ctrl-C stops)", err=True)

    def on_air(stats: BeaconStats) -> None:  # a beacon runs for days: its journal shows it still on air
        if not as_json:
            click.echo(f"{local_time(clock.now())}  on air: {stats.frames_sent} frames in {stats.epochs} epoch(s)",
                       err=True)

    real = isinstance(clock, SystemClock)  # tests' virtual clocks take no signals
    beaconing = run_beacon(radio, secrets, clock, duration, on_started=started, on_epoch=on_air, handle_signals=real)
    stats = run_on(clock, beaconing)
    if as_json:
        _emit_json({"venue": secrets.venue.description, **stats.as_dict()})
    else:
        click.echo(f"venue beacon for {secrets.venue.description}: {stats.frames_sent} frames in {stats.epochs} epoch(s)")


@venue.command("warn")
@click.argument("venue_dir", type=click.Path(path_type=Path))
@click.option("--server", "server_url", required=True, help="Key server base URL.")
@click.option("--code", required=True, help="The one-time code the health authority gave for this warning.")
@click.option("--start", required=True, help="Start of the window to warn about (ISO 8601, 2026-12-04T18:00: this machine's time unless it gives a zone).")
@click.option("--end", required=True, help="End of the window (ISO 8601).")
@click.option("--yes", is_flag=True, help="Do not ask before sending.")
@json_option
def venue_warn(venue_dir: Path, server_url: str, code: str, start: str, end: str, yes: bool, as_json: bool) -> None:
    """Warn everyone checked in at the venue during a window (an outbreak the owner learned of).

    Needs the venue's secrets (VENUE_DIR) and a health-authority code, as a case's upload does;
    the server receives the same encrypted reports and cannot tell which venue they name.
    """
    from bluezone.client.keyserver import KeyServerClient, checked_server_url, in_clear, shown_url
    from bluezone.keyformat.keys import empty_keys
    from bluezone.venues.owner import load_venue_dir
    from bluezone.venues.upload import owner_warning_reports

    from bluezone.client.uploading import check_code, not_positive

    checked_server_url(server_url)  # before the owner is asked to send (the client refused it only after)
    code = check_code(code)
    secrets = load_venue_dir(venue_dir)
    now = cli_clock().now()
    asked = (parse_time(start, "--start"), parse_time(end, "--end"))
    reports = owner_warning_reports(secrets.venue, *asked, now)
    sent = (reports[0].start_interval * INTERVAL_SECONDS, (reports[-1].start_interval + reports[-1].period) * INTERVAL_SECONDS)
    # 20:13-21:13 shown as 20:10-21:10 without a word read as a mistake (walk14): say why the times moved
    moved = "" if sent == asked else f" (asked {local_time(asked[0])} .. {local_time(asked[1])}: put on the 10-minute grid of check-ins)"
    click.echo(
        f"About to warn visitors of {secrets.venue.description}: {local_time(sent[0])} .. {local_time(sent[1])}{moved}"
        f" ({len(reports)} report(s)) via {shown_url(server_url)}",
        err=True,
    )
    if warning := in_clear(server_url):
        click.echo(warning, err=True)
    if not yes and not ask_before_sending("venue warn", "Send the warning?"):
        nothing_sent()
    with KeyServerClient(server_url) as client:
        kind = client.code_type(code)  # asked first (the code left unused): no report goes for a negative test's
        if kind is not None and not_positive(kind):  # code, which the server refused only after seeing each report
            raise InputError(f"nothing sent: {not_positive(kind)}, and a venue warning goes only with a positive test's"
                             " code; ask the health authority for a confirmed or likely code (this one is not used up)")
        if kind is None:  # an older server: it stores none for such a code, and the reports name the owner's own venue
            click.echo("the key server cannot say what this code is for (no /v1/verify): sending; it stores none of the"
                       " reports if the code is not a positive test's", err=True)
        receipt = client.publish(empty_keys(0), code, checkins=[r.entry() for r in reports])
    if as_json:
        _emit_json({"server": shown_url(server_url), "reports_sent": len(reports), "reports_stored": receipt.checkins})
    else:
        # "at their next check" read as at once: a check finds it only once an export has published it (walk14)
        click.echo(f"warning sent: the server took {receipt.checkins} report(s); published at the server's next export,"
                   " visitors learn of it when they next check after that")
