"""CLI for the key server (``bluezone server ...``): thin wrappers over ``bluezone.server``.
The node's side (``bluezone upload``, ``bluezone check --server``) is in ``bluezone/cli.py``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bluezone.clitypes import FloatRange, cli_clock, json_option, make_writable_dir, parse_date
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import BluezoneError, InputError, ServerError
from bluezone.printable import printable_line

if TYPE_CHECKING:
    from bluezone.server.exports import ExportConfig


#: The key server's database; ``--db`` is always a node's sighting store.
_db = click.option(
    "--server-db",
    "db",
    required=True,
    help="Key server database: a SQLite file path, or postgresql://user@host/dbname.",
)


def _existing_key_dir(value: Path) -> None:
    """A mistyped key directory is no reason to make one: `keygen` there would give a code key and a
    signing key the running server does not know, so codes it issued would be refused (user29)."""
    if not value.exists() and not value.is_symlink():
        raise InputError(
            f"--signing-key-dir {printable_line(str(value))} does not exist: give the directory `bluezone server keygen"
            " --out` made, the one the key server runs with (a new one's keys would not be the server's)"
        )


_key_dir = click.option(
    "--signing-key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory written by `bluezone server keygen`.",
)
#: issue-code and revoke-code read only the code key: a machine that issues codes needs no private.pem
_code_key_dir = click.option(
    "--signing-key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory written by `bluezone server keygen`; only its code key, code_hmac.key, is read (a machine"
    " that issues codes needs no private.pem).",
)


@click.group("server")
def server() -> None:
    """The key server: verification codes, key upload, signed GAEN export batches."""


def _key_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A key id or version: signed into every export.sig and compared by every client, so printable ASCII.
    Any text was taken: a byte that is no UTF-8 (\\udcff) failed every later export with keys
    ('UnicodeEncodeError'), and a newline or an escape sequence went to the terminal as it was."""
    if value is not None and not (0 < len(value) <= MAX_KEY_NAME_CHARS and value.isascii() and value.isprintable()
                                  and " " not in value):
        raise click.BadParameter(f"give 1-{MAX_KEY_NAME_CHARS} printable ASCII characters, no space (e.g. 310, v2)")
    return value


#: A key id or version is a short name (GAEN's apps use the country code and v1, v2, ...).
MAX_KEY_NAME_CHARS = 64


@server.command("keygen")
@click.option("--out", "--signing-key-dir", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to create (the --signing-key-dir the other server commands are given).")
@click.option("--key-id", default=None, callback=_key_name, help="Key id clients pin (SignatureInfo). [default: bluezone;"
              " with --force, the replaced key's]")
@click.option("--key-version", default=None, callback=_key_name, help="Version clients pin beside the key id. [default:"
              " v1; with --force, the one after the replaced key's: v1 -> v2]")
@click.option("--force", is_flag=True, help="Replace an existing key (every client will refuse the new one).")
@json_option
def keygen_cmd(out: Path, key_id: str | None, key_version: str | None, force: bool, as_json: bool) -> None:
    """Create the P-256 export signing key pair and the code key in DIR.

    Run again on a directory made by an older bluezone, it adds the code key and keeps the signing key."""
    from bluezone.server.codes import CODE_KEY_FILE, CodeKey
    from bluezone.server.signing import PRIVATE_FILE, keygen, load_signer, next_key_version, refuse_key_links

    refuse_key_links(out)  # before a key is read through one
    replaced = None
    if force and (out / PRIVATE_FILE).exists():
        # a rotation: the id the apps are configured with stays, the version moves on; `--force` alone made
        # a new key called bluezone/v1 again, the replaced key's (or the first one's) own name (walk12)
        with contextlib.suppress(BluezoneError):
            replaced = load_signer(out).info
    if replaced is not None:
        key_id = key_id or replaced.key_id
        key_version = key_version or next_key_version(replaced.key_version)
        if key_version is None or (key_id, key_version) == (replaced.key_id, replaced.key_version):
            raise click.UsageError(
                f"the key being replaced is {replaced.key_id}/{replaced.key_version}: give the new one another"
                " --key-version, so that clients can tell the two keys apart"
            )
    try:
        if (out / PRIVATE_FILE).exists() and not force and not (out / CODE_KEY_FILE).exists():
            signer = load_signer(out)
            CodeKey.generate().save(out)
            message = f"code key written to {out / CODE_KEY_FILE}; signing key {out / PRIVATE_FILE} kept"
        else:
            signer = keygen(out, key_id or "bluezone", key_version or "v1", force)
            message = f"signing key {signer.info.key_id}/{signer.info.key_version} written to {out}" + (
                f" (replacing {replaced.key_id}/{replaced.key_version})" if replaced is not None else ""
            )
    except OSError as exc:  # a directory it may not create or write: was 'FileNotFoundError: ...', exit 1
        raise InputError(f"cannot write keys into {out}: {exc.strerror or exc}") from None
    info = signer.public_info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(message)
        click.echo(f"public key (clients pin this): {info['public_key']}")
        if replaced is not None:  # a running server still signs with the old key, and nodes refuse the new one
            click.echo(
                f"next: restart every `bluezone server run` (each reads the key at start; until then it signs with"
                f" {replaced.key_id}/{replaced.key_version}); publish {out / 'signing_key.json'} and tell nodes to run"
                " `bluezone check --server URL --server-key signing_key.json --repin` (docs/server.md, \"Rotating the"
                " signing key\")"
            )


_create_db = click.option(
    "--create-db", is_flag=True,
    help="Create the database if it does not exist or is an empty file (normally `server run` creates it; a typo must not).",
)


def _open(db: str, create: bool) -> Any:
    """The key server's database, for one of its commands (run, issue-code, export): a real server's from
    now on, even if a benchmark once used it as scratch."""
    from bluezone.server.storage import open_storage

    storage = open_storage(db, create=create)
    try:
        storage.release_from_benchmark()
    except BaseException:
        storage.close()
        raise
    return storage


def _open_existing(db: str) -> Any:
    """The database of a command that must never create one (status, revoke-code): missing is a typo."""
    try:
        return _open(db, False)
    except InputError as exc:  # its advice, --create-db, is no option of these commands
        if "--create-db" not in str(exc):
            raise
        raise InputError(str(exc).split(" (the server creates")[0] + " (check --server-db)") from None


@server.command("issue-code")
@_db
@_code_key_dir
@click.option("--test-date", callback=parse_date, help="Date of the test (YYYY-MM-DD).")
@click.option("--symptom-onset", callback=parse_date, help="Date symptoms began (YYYY-MM-DD).")
@click.option(
    "--type", "test_type", type=click.Choice(["confirmed", "likely", "negative", "recursive"]), default="confirmed",
    help="Diagnosis the code vouches for (likely: diagnosed, no test yet; a later code revises keys the same device sent"
    " under a less certain one, recursive -> likely -> confirmed, and negative revokes them unless confirmed);"
    " recursive: a close contact (F1) of a case, whose contacts (F2) are to be told.",
    show_default=True,
)
@click.option("--exposure-date", callback=parse_date,
              help="Recursive codes: the date the close contact (F1) was exposed, on the F1's own calendar (as the What now"
                   " line of `bluezone check` gave it there); keys ending before that date began anywhere (UTC+14) are refused.")
@click.option("--max-recursive-per-day", default=500, show_default=True, type=click.IntRange(1),
              help="Recursive codes allowed in any 24 hours (each can warn all of an F1's contacts).")
@click.option("--short", is_flag=True,
              help="An 11-digit code (10 and a check digit) to read out over the phone (valid 15 min, at most an "
                   "hour) instead of a 16-digit one for self-service (valid a day).")
@click.option("--lifetime", default=None, type=click.IntRange(60, DAY_SECONDS),
              help="Seconds the code stays valid (default 86400, or 900 with --short; at most 3600 with --short).")
@_create_db
@json_option
def issue_code_cmd(
    db: str, signing_key_dir: Path, test_date: dt.date | None, symptom_onset: dt.date | None, test_type: str,
    exposure_date: dt.date | None, max_recursive_per_day: int, short: bool, lifetime: int | None, create_db: bool,
    as_json: bool,
) -> None:
    """Issue a single-use verification code for a person who tested positive (or a close contact: --type recursive)."""
    from bluezone.server.codes import LONG, SHORT, CodeKey, grouped, issue_code

    _existing_key_dir(signing_key_dir)
    key = CodeKey.load(signing_key_dir)
    storage = _open(db, create_db)
    try:
        issued = issue_code(
            storage, cli_clock().now(), key=key, kind=SHORT if short else LONG, test_type=test_type,
            test_date=test_date, symptom_onset=symptom_onset, lifetime=lifetime,
            exposure_date=exposure_date, max_recursive_per_day=max_recursive_per_day,
        )
    finally:
        storage.close()
    if as_json:
        d = issued.as_dict()
        click.echo(json.dumps({
            "code": d["code"], "expires_at": d["expires_at"], "test_type": d["test_type"],
            **({"exposure_date": d["exposure_date"]} if "exposure_date" in d else {}),
        }))
    else:
        click.echo(f"{grouped(issued.code)}  (expires {issued.as_dict()['expires_at']}, single use)")


@server.command("revoke-code")
@_db
@_code_key_dir
@click.option("--code", required=True, help="The code as issued (digits).")
@json_option
def revoke_code_cmd(db: str, signing_key_dir: Path, code: str, as_json: bool) -> None:
    """Withdraw a code issued by mistake: an upload with it is refused from now on.

    A code already used: what its upload stored that no export has published yet (keys, check-ins) is
    withheld, and it says how many; exit 1 if some were already published (they cannot be recalled)."""
    from bluezone.server.codes import CodeKey, revoke_code

    _existing_key_dir(signing_key_dir)
    key = CodeKey.load(signing_key_dir)
    storage = _open_existing(db)
    try:
        revocation = revoke_code(storage, code, cli_clock().now(), key=key)
    finally:
        storage.close()
    if as_json:
        click.echo(json.dumps(revocation.as_dict()))
    if not revocation.all_withheld:
        raise ServerError(revocation.sentence())
    if not as_json:
        click.echo(revocation.sentence())


def _export_dir(db: str, export_dir: Path | None, signing_key_dir: Path) -> Path:
    if export_dir is None and "://" in db:
        raise InputError(
            "with PostgreSQL give --export-dir: the directory the exports are published from (the one `server run"
            " --export-dir` serves, or the one synced to the static host; files written elsewhere are not served)"
        )
    out = export_dir if export_dir is not None else Path(db).with_name(Path(db).stem + "-exports")
    # the export directory is published (served at /v1/exports/, synced to a static host): one that is, or
    # holds, the key directory would publish private.pem and code_hmac.key with it (walk14: docs' cron line
    # named both DIR, and export wrote index.txt beside private.pem without a word)
    keys = signing_key_dir.resolve()
    if out.resolve() == keys or out.resolve() in keys.parents:
        raise InputError(
            f"--export-dir {out} holds the signing key directory {signing_key_dir}: what is in the export directory"
            " is published (served, synced to a static host), private.pem with it; give the exports a directory of"
            " their own"
        )
    if "://" not in db and out.resolve() in Path(db).resolve().parents:  # its -wal and -shm beside it
        raise InputError(
            f"--export-dir {out} holds the server's database {db}: what is in the export directory is published"
            " (served, synced to a static host), the database with it (the failed code tries' addresses, the"
            " codes' and revision tokens' hashes); give the exports a directory of their own"
        )
    return out


_guessing_alarm_opt = click.option(
    "--guessing-alarm", default=1000, show_default=True, type=click.IntRange(1),
    help="Failed codes from everybody within an hour taken as guessing: each client then gets 3 failed tries, not 10 "
         "(give server run and server status the same).",
)
_export_dir_opt = click.option(
    "--export-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where batches and index.txt go: the directory that is published (default beside a SQLite file: server.db"
    " -> server-exports; required with PostgreSQL).",
)
_moved_opt = click.option(
    "--export-dir-moved", "moved", is_flag=True,
    help="The exports were moved to --export-dir on purpose (their files with them): record it as where exports go,"
    " in place of the directory on record (otherwise another one than that is refused).",
)
_max_keys_opt = click.option(
    "--max-keys-per-file", default=30_000, show_default=True, type=click.IntRange(1), help="Keys per batch file."
)
_min_keys_opt = click.option(
    "--min-keys-per-file", default=100, show_default=True, type=click.IntRange(0),
    help="Pad a file with fewer keys of its own with fake keys up to this many, plus 0-20 at random (0: never).",
)
_region_opt = click.option(
    "--region", default="XX", show_default=True,
    help="Region in export.bin, as GAEN apps read it: a country or area code (VN, US-WA; 2-16 letters, digits or -).",
)
_rollup_opt = click.option(
    "--rollup-after-days", default=1, show_default=True, type=click.IntRange(0, 13),
    help="Replace an export day's files by one per day of their keys this many days after it ends.",
)
_no_rollups_opt = click.option(
    "--no-rollups", is_flag=True, help="Never roll files up (index.txt then grows with every export for 14 days).",
)


def _export_options(command: Any) -> Any:
    """The export settings ``export`` and ``run`` both take (the export is the same in either)."""
    options = (_export_dir_opt, _moved_opt, _max_keys_opt, _min_keys_opt, _region_opt, _rollup_opt, _no_rollups_opt)
    for option in reversed(options):
        command = option(command)
    return command


def _export_config(
    region: str, max_keys_per_file: int, min_keys_per_file: int, rollup_after_days: int, no_rollups: bool
) -> ExportConfig:
    from bluezone.server.exports import ExportConfig

    return ExportConfig(region, max_keys_per_file, rollup_after_days=None if no_rollups else rollup_after_days,
                        min_keys_per_file=min_keys_per_file)


def _exported_sentence(batches: list, out: Path) -> str:
    """What an export wrote: key batches apart from venue-warning files (whose check-in reports, decoys
    included, were counted as keys: '4 keys in 1 new batch(es)' for one check-in and no key)."""
    from bluezone.keyformat.venue_export import is_venue_file

    keys = [b for b in batches if not is_venue_file(b.name)]
    venues = [b for b in batches if is_venue_file(b.name)]
    said = f"{sum(b.num_keys for b in keys)} keys in {len(keys)} new batch(es)"
    if padding := sum(b.padding_keys for b in keys):
        said += f" (padded with {padding} fake keys)"
    if venues:
        said += (f" and {sum(b.num_keys for b in venues)} check-in report(s), decoys included,"
                 f" in {len(venues)} venue-warning file(s)")
    return printable_line(f"{said} in {out}")


@server.command("export")
@_db
@_key_dir
@_export_options
@_create_db
@json_option
def export_cmd(
    db: str, signing_key_dir: Path, export_dir: Path | None, moved: bool, max_keys_per_file: int, min_keys_per_file: int,
    region: str, rollup_after_days: int, no_rollups: bool, create_db: bool, as_json: bool,
) -> None:
    """Write the keys whose validity has ended into new signed batches now.

    Held (nothing written or deleted; one line on stderr, exit 3, so cron mails it) when the clock reads more
    than two of the last exports' gaps past the last one; the next export goes ahead whatever its clock reads."""
    from bluezone.server.exportclock import HELD_EXIT, export_unless_clock_jumped
    from bluezone.server.exports import embargoed
    from bluezone.server.signing import load_signer

    config = _export_config(region, max_keys_per_file, min_keys_per_file, rollup_after_days, no_rollups)
    _existing_key_dir(signing_key_dir)
    signer = load_signer(signing_key_dir)
    out = _export_dir(db, export_dir, signing_key_dir)
    storage = _open_exporting(db, create_db, out, moved)
    now = cli_clock().now()
    try:
        _make_export_dirs(out)  # after the database: a typo in --server-db leaves no directory behind
        try:
            run = export_unless_clock_jumped(storage, signer, out, now, config)
        except OSError as exc:  # a full disk was 'OSError: [Errno 28] No space left on device', no word where
            raise ServerError(
                f"the export stopped: cannot write into {out}: {exc.strerror or exc}; keys and check-ins not in a"
                " file it recorded still wait (make room, then export again)"
            ) from None
        waiting = embargoed(storage, now)
    finally:
        storage.close()
    if as_json:
        doc = {"export_dir": str(out), "batches": [b.as_dict() for b in run.batches], "waiting": waiting.as_dict(),
               "held_clock_jump_seconds": run.jump}
        click.echo(json.dumps(doc, indent=2))
    else:
        if run.jump is None:
            click.echo(_exported_sentence(run.batches, out))
        if waiting.keys:
            click.echo(waiting.sentence())
    if run.jump is not None:
        click.echo(run.held_sentence(), err=True)
        raise SystemExit(HELD_EXIT)


@server.command("status")
@_db
@click.option("--late-after", default=5400, show_default=True, type=click.IntRange(60),
              help="Seconds a key may wait past its validity before the exporter counts as late (exit 1).")
@_guessing_alarm_opt
@json_option
def status_cmd(db: str, late_after: int, guessing_alarm: int, as_json: bool) -> None:
    """Whether the exporter keeps up, the last export file, where exports go, codes of the last 24 h, failed codes
    of the hour (exit 1 when the exporter is late, files on record are missing there, or codes are being guessed)."""
    from bluezone.server.status import server_status

    storage = _open_existing(db)
    try:
        status = server_status(storage, cli_clock().now(), late_after, guessing_alarm)
    finally:
        storage.close()
    if as_json:
        click.echo(json.dumps(status.as_dict(), indent=2))
    else:
        for line in status.lines():
            click.echo(line)
    if not status.ok:
        raise SystemExit(1)


@server.command("run")
@_db
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@_key_dir
@_export_options
@click.option("--export-every", default=3600, show_default=True, type=click.IntRange(0),
              help="Seconds between exports (hourly: a sixth of the files of 10-minute exports); 0: never.")
@click.option("--max-keys-per-day", default=14, show_default=True, type=click.IntRange(1, 144),
              help="Upload limit: keys starting on one UTC day.")
@_guessing_alarm_opt
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request with the client's address (off: a 200 on /v1/publish beside an address "
                   "says who tested positive).")
@click.option("--forwarded-allow-ips", default=None, metavar="ADDRS",
              help="Comma-separated addresses or networks of the reverse proxy in front: only their X-Forwarded-For "
                   "is believed. Default: none; the per-client limits count the peer address.")
@click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(1),
              help="Open connections in all (kept below the file descriptor limit); more are closed at once.")
@click.option("--max-connections-per-client", default=50, show_default=True, type=click.IntRange(1),
              help="Open connections from one address (a named proxy is exempt).")
@click.option("--request-timeout", default=20.0, show_default=True, type=FloatRange(0.1),
              help="Seconds to receive a request's headers and body; then 408 and the connection is closed.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes serving on the one port (PostgreSQL only); the first of them runs the exports. "
                   "The connection limits are per worker.")
@click.option("--docs/--no-docs", default=False, show_default=True,
              help="Serve FastAPI's interactive API page at /docs: it loads swagger-ui's JavaScript from a CDN "
                   "(cdn.jsdelivr.net) into the server's origin. The spec is at /openapi.json either way.")
def run_cmd(
    db: str, host: str, port: int, signing_key_dir: Path, export_dir: Path | None, moved: bool, max_keys_per_file: int,
    min_keys_per_file: int, region: str, rollup_after_days: int, no_rollups: bool, export_every: int,
    max_keys_per_day: int, guessing_alarm: int, access_log: bool,
    forwarded_allow_ips: str | None, max_connections: int, max_connections_per_client: int, request_timeout: float,
    workers: int, docs: bool,
) -> None:
    """Serve the API (OpenAPI at /openapi.json) and the export files with uvicorn."""
    import contextlib

    from bluezone.server.app import create_app
    from bluezone.server.codes import CodeKey
    from bluezone.server.publish import PublishConfig
    from bluezone.server.serve import ServeSettings, bind, serve, serve_workers
    from bluezone.server.signing import load_signer
    from bluezone.server.storage import is_postgres

    settings = ServeSettings(
        host, port, forwarded_allow_ips=forwarded_allow_ips, max_connections=max_connections,
        max_connections_per_client=max_connections_per_client, request_timeout=request_timeout,
        access_log=access_log,
    )
    export_config = _export_config(region, max_keys_per_file, min_keys_per_file, rollup_after_days, no_rollups)
    _existing_key_dir(signing_key_dir)
    signer = load_signer(signing_key_dir)
    code_key = CodeKey.load(signing_key_dir)
    exports = _export_dir(db, export_dir, signing_key_dir)
    if moved and not export_every:
        raise InputError(
            "--export-dir-moved moves the directory on record where this server's exports are written, and"
            " --export-every 0 writes none: give it to the command that exports (server export, or the server run"
            " with --export-every)"
        )
    if workers > 1 and not is_postgres(db):
        # one SQLite file takes one writer at a time: more processes add waiting, not uploads a second
        raise InputError(
            f"--workers {workers} needs PostgreSQL (--server-db postgresql://...): on SQLite every upload waits for the"
            " one file's write lock, so serve it with one worker"
        )
    # the address first: a port in use (or a --host of no address here) left a new database and export
    # directory behind before its one line
    sock = bind(host, port)
    from bluezone.server.staging import staging_root

    made = _missing_dirs(staging_root(exports)) + _missing_dirs(exports)
    try:
        _make_export_dirs(exports)  # at start, not every scheduled export failing in the log
        # the server owns its database: the first start creates it; one that exports claims the directory
        storage = _open_exporting(db, True, exports, moved) if export_every else _open(db, create=True)
        if not export_every:
            _warn_if_another_is_on_record(storage, exports)
    except BaseException:
        sock.close()
        for folder in made:  # a database refused left the export directories this run made (empty: rmdir)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise

    def app_of(storage: Any, exporter: bool) -> Any:
        return create_app(
            storage, code_key=code_key, export_dir=exports, signer=signer, export_config=export_config,
            export_every=(export_every or None) if exporter else None,
            publish_config=PublishConfig(max_keys_per_day=max_keys_per_day, guessing_alarm=guessing_alarm), docs=docs,
        )

    schedule = f"every {export_every} s" if export_every else "off: this process writes none"
    started = (
        f"key server: database {_shown_db(db)}, exports in {exports.resolve()} (schedule {schedule}), signing key "
        f"{signer.info.key_id}/{signer.info.key_version} in {signing_key_dir.resolve()}"
    )
    if workers == 1:
        try:
            serve(app_of(storage, exporter=True), settings, started, sock)
        finally:
            storage.close()
        return
    storage.close()  # created or migrated the tables; each worker opens its own connection

    @contextlib.contextmanager
    def worker_app(index: int) -> Any:
        own = _open(db, create=False)
        try:
            yield app_of(own, exporter=index == 0)  # one exporter: exports must not run twice
        finally:
            own.close()

    serve_workers(worker_app, settings, started, workers, sock)


def _open_exporting(db: str, create: bool, out: Path, moved: bool) -> Any:
    """The database of a command that exports into ``out``: refused if another export directory is on record
    (``bluezone.server.exportdir``), ``out`` recorded if none is."""
    from bluezone.server.exportdir import claim_export_dir

    storage = _open(db, create)
    try:
        claim_export_dir(storage, out, moved)
    except BaseException:
        storage.close()
        raise
    return storage


def _warn_if_another_is_on_record(storage: Any, exports: Path) -> None:
    """``server run --export-every 0`` writes no export, so it records no directory: recording the one it serves
    would refuse the exporter's own (a cron job's, on this machine or another, that a copy is synced from).  Serving
    a directory other than the one on record is said at start: unless it is a copy of that one, nodes get nothing."""
    import logging

    recorded, served = storage.export_dir(), str(exports.resolve())
    if recorded is not None and recorded != served:
        logging.getLogger(__name__).warning(
            "serving the exports in %s, but this server's exports are written into %s (on record): unless %s is a copy"
            " of it, no node gets their keys (give --export-dir %s)", served, recorded, served, recorded,
        )


def _make_export_dirs(out: Path) -> None:
    """Make the export directory and the one beside it its files are written into first (moved in once
    recorded: ``bluezone.server.staging``), or find them writable."""
    from bluezone.server.staging import staging_root

    make_writable_dir(out, "export", "--export-dir")
    make_writable_dir(staging_root(out), "export staging", "--export-dir: it is made beside the export directory")


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first: what making it would create."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _shown_db(db: str) -> str:
    """The database as logged: a PostgreSQL URL without its password, also one given as libpq's
    ``?password=`` (it was logged whole), and its host as given (``[::1]`` had lost its brackets)."""
    import re
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in db:
        return str(Path(db).resolve())
    parts = urlsplit(db)
    shown = db
    if parts.password is not None:
        shown = urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"))
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", shown)


@server.command("benchmark")
@click.option(
    "--server-db", "db", default=None,
    help="A scratch database to measure (postgresql://..., or a SQLite file; default: a temporary SQLite): a new one or "
         "one an earlier benchmark used. A key server's own is refused: the benchmark adds random keys and re-exports "
         "every key in it to a temporary directory.",
)
@click.option("--uploads", default=300, show_default=True, type=click.IntRange(1), help="Uploads to time over loopback.")
@click.option("--export-keys", default=1_000_000, show_default=True, type=click.IntRange(0), help="Keys to export into signed batches (0: skip).")
# --repeats too, as `bluezone benchmark` spelled it (each refused the other's spelling)
@click.option("--repeat", "--repeats", "repeat", default=3, show_default=True, type=click.IntRange(1),
              help="Repetitions; medians are reported.")
@json_option
def benchmark_cmd(db: str | None, uploads: int, export_keys: int, repeat: int, as_json: bool) -> None:
    """Uploads/s over loopback HTTP and seconds to export N keys (medians), each beside a same-run baseline."""
    from bluezone.progress import terminal_progress
    from bluezone.server.benchmark import run_benchmark

    start = f"server benchmark: {uploads} uploads three ways x {repeat}" + (
        f", then an export of {export_keys:,} keys" if export_keys else ""
    ) + " (a few minutes)"
    with terminal_progress(start) as progress:
        result = run_benchmark(db, uploads, export_keys, repeat, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['backend']}: {result['uploads_per_second']:.0f} uploads/s over loopback HTTP (median of {repeat})")
    click.echo(
        f"  baseline, same run: {result['uploads_per_second_new_connection']:.0f}/s with a new connection per upload"
        f" ({result['keepalive_speedup_vs_new_connection']:.1f}x), {result['uploads_per_second_new_client']:.0f}/s"
        f" with a new client per upload ({result['keepalive_speedup_vs_new_client']:.1f}x)"
    )
    if export_keys:
        click.echo(
            f"export of {result['export_keys']:,} keys into {result['export_files']} signed files: "
            f"{result['export_seconds']:.1f} s (median of {result['export_repeat']})"
        )
        click.echo(
            f"  floor, same run: protobuf + signing + zipping alone {result['export_sign_zip_floor_seconds']:.1f} s"
            f" (export takes {result['export_vs_sign_zip_floor']:.1f}x that)"
        )
