"""``bluezone keys derive`` / ``keys export``, ``check`` and ``benchmark``: thin wrappers over bluezone.matching
(imported when first named, see bluezone/cli.py); check's report is bluezone.checkreport."""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from bluezone.clitypes import (
    OnceOption, cli_clock, cli_now, db_option, emit_json, end_quickly, jobs_option, json_option, json_text,
)
from bluezone.config import TRUSTED_CORRECTION_DB
from bluezone.printable import printable_line



def _hex_bytes(length: int) -> Any:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
        if value is None:
            return None
        try:
            raw = bytes.fromhex(value.strip())
        except ValueError:
            digits = "".join(value.split())
            if len(digits) % 2 and all(c in "0123456789abcdefABCDEF" for c in digits):
                # fromhex's odd-length error: the digits are fine, one is missing or extra
                raise click.BadParameter(f"must be {2 * length} hex digits, got {len(digits)}: {value!r}") from None
            raise click.BadParameter(f"not hexadecimal: {value!r}") from None
        if len(raw) != length:
            raise click.BadParameter(f"must be {length} bytes ({2 * length} hex digits), got {len(raw)}")
        return raw

    return convert


@click.group()
def keys() -> None:
    """Daily keys: derive RPIs/AEMs for interop checks, export this device's keys."""


@keys.command("derive")
@click.option(
    "--protocol",
    type=click.Choice(["gaen", "bluezone3"]),
    default="gaen",
    show_default=True,
    help="GAEN v1.2 (--tek) or Bluezone v3 (--daily-key).",
)
@click.option("--tek", callback=_hex_bytes(16), help="GAEN: Temporary Exposure Key, 32 hex digits.")
@click.option("--interval", type=click.IntRange(0, 2**32 - 1), help="GAEN: first ENIntervalNumber.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 144), help="GAEN: how many RPIs.")
@click.option(
    "--metadata", default="40000000", show_default=True, callback=_hex_bytes(4), help="GAEN: 4 metadata bytes, hex."
)
@click.option("--daily-key", callback=_hex_bytes(32), help="Bluezone v3: daily key, 64 hex digits.")
@click.option("--slots", default="0-95", show_default=True, help="Bluezone v3: slots, e.g. 0,1,95 or 0-3.")
@click.option(
    "--slots-per-day", default=96, show_default=True, type=int, help="Bluezone v3: IDs per day (the app's max)."
)
@click.option(
    "--days-after", default=0, show_default=True, type=int, help="Bluezone v3: use the key this many days later."
)
@json_option
def keys_derive(
    protocol: str,
    tek: bytes | None,
    interval: int | None,
    count: int,
    metadata: bytes,
    daily_key: bytes | None,
    slots: str,
    slots_per_day: int,
    days_after: int,
    as_json: bool,
) -> None:
    """Print what a daily key broadcasts, for interop checks.

    GAEN: RPIK, the RPIs, AEMK and the AEMs.  Bluezone v3: the 12-byte ID of each 15-minute slot.
    """
    from bluezone.errors import InputError
    from bluezone.matching.derive import derive, derive_bluezone3

    if protocol == "bluezone3":
        if daily_key is None or tek is not None:
            raise InputError("--protocol bluezone3 takes --daily-key (64 hex digits), not --tek")
        bz = derive_bluezone3(daily_key, slots, slots_per_day, days_after)
        if as_json:
            emit_json(bz)
            return
        click.echo(f"daily key {bz['daily_key']}")
        for row in bz["slots"]:
            click.echo(f"slot {row['slot']:>3}  {row['from_utc']} UTC  ID {row['id']}")
        return
    if tek is None or interval is None or daily_key is not None:
        raise InputError("--protocol gaen takes --tek and --interval (--daily-key is for bluezone3)")
    result = derive(tek, interval, count, metadata)
    if as_json:
        emit_json(result)
        return
    click.echo(f"RPIK  {result['rpik']}")
    click.echo(f"AEMK  {result['aemk']}")
    click.echo(f"metadata {result['metadata']}")
    for row in result["intervals"]:
        click.echo(f"interval {row['interval']}  RPI {row['rpi']}  AEM {row['aem']}")


@keys.command("export")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 14), help="Days of keys to export.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, allow_dash=True), help="File, or -.")
@click.option(
    "--protocol", type=click.Choice(["gaen", "bluezone3"]), default="gaen", show_default=True,
    help="GAEN publish-API JSON, or a Bluezone v3 F0 list of the v3 IDs this device sent (--also-bluezone-v3).",
)
@click.option("--force", is_flag=True, help="Replace a file already at --out (an F0 list never replaces one).")
@db_option
def keys_export(days: int, out: str, protocol: str, force: bool, db_path: Path | None) -> None:
    """Write this device's daily keys as GAEN publish-API JSON (what a positive case uploads).

    With --protocol bluezone3: its Bluezone v3 key chain as an F0 list, for `check --bluezone3-list`;
    a new chain starts at once (the key written would give away every later v3 ID of the old one).
    """
    import os

    from bluezone.errors import InputError
    from bluezone.keyformat.keyfile import dump_keys_json
    from bluezone.keyformat.keys import keys_from_daily
    from bluezone.matching.export_own import own_keys_to_export, released_today
    from bluezone.proximity.store import SightingStore

    if out != "-":
        _not_an_input("--out", Path(out), db_path, {})
    if out != "-" and protocol == "gaen" and not force and _regular_file_there(out):
        # before the store is read: a refusal cuts no key of today short
        raise InputError(f"{out} already exists: give --force to replace it, or another --out")
    if out != "-" and protocol == "bluezone3" and os.path.lexists(out):  # before the store starts a new chain
        raise InputError(_f0_list_there(out))
    with SightingStore.open(db_path, create=False, purge_now=cli_clock().now()) as store:
        # the daemon's measured time while it does not believe a step of the clock (a year ahead: no key within --days)
        now = store.believed_time(cli_clock().now(), quiet=True)
        if protocol == "bluezone3":
            _export_f0_list(store, now, days, out)
            return
        chosen = own_keys_to_export(store.daily_keys(), days, now)
        own, released = keys_from_daily(chosen), released_today(chosen, now)
        data = dump_keys_json(own)
        with store.commits_synced():  # on the disk before the file is written: a power cut undoes neither alone
            for key in released:  # today's key goes off air when the current 10 minutes end: stored before it leaves
                store.save_daily_key(key)
    _write_out(out, data, new=False)
    if out != "-":
        click.echo(printable_line(f"wrote {len(own)} keys to {out}"), err=True)
    if released:
        click.echo("today's key is cut to end with the current 10 minutes; the daemon starts a new key then", err=True)


def _export_f0_list(store: Any, now: float, days: int, out: str) -> None:
    """Write the store's Bluezone v3 chain as an F0 list to ``out`` and replace the chain, both or neither: the key
    written reveals every later day of its chain, so the list must not leave while the device stays on it, nor the
    chain change with no list made (its days could not be exported again).  One transaction holds the store's write
    lock from the chain's read to its replacement's commit, the list written inside it: a list not written rolls
    the new chain back, a commit refused (a full disk) deletes the list."""
    import contextlib
    import os

    from bluezone.errors import StoreError
    from bluezone.matching.bluezone3 import own_f0_list, restart_chain

    written = False
    try:
        with store.commits_synced(), store.bluezone3_key_held():  # the new chain on the disk before "wrote" is said
            own = own_f0_list(store, now, days)["data"]
            restart_chain(store, now)
            _write_out(out, (json.dumps({"data": own}, indent=2) + "\n").encode(), new=True)
            written = True
    except BaseException as exc:
        if written and out != "-":  # the commit was refused: the list names the chain still in use
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
        elif written and isinstance(exc, StoreError):
            raise type(exc)(f"{exc}; the F0 list printed names the chain still in use: do not hand it over, export"
                            " again once the store can be written") from None
        raise
    if out != "-":
        click.echo(printable_line(
            f"wrote {len(own)} F0 list entry to {out}: hand it to whoever collects Bluezone v3 F0 lists for your area"
            f" (bluezone's key server takes none; anyone checks it with `bluezone check --bluezone3-list FILE`); this"
            " device's v3 IDs from now on come from a new chain the list does not reveal"
        ), err=True)


def _write_out(out: str, data: bytes, *, new: bool) -> None:
    """``data`` to standard output (``-``) or to the file ``out`` only its owner reads (``new``: only a new file, as an
    F0 list is: a second export of it would put the new chain's list, IDs nobody heard yet, over the one to hand over)."""
    from bluezone.errors import InputError
    from bluezone.keyformat.keyfile import write_private

    if out == "-":
        click.echo(data.decode(), nl=False)
        return
    try:
        write_private(out, data, new=new)
    except FileExistsError:
        raise InputError(_f0_list_there(out)) from None
    except OSError as exc:
        raise InputError(f"cannot write the keys to {out}: {exc.strerror or exc}") from None


def _regular_file_there(out: str) -> bool:
    """Whether ``out`` names a regular file (through a link too): what --out replaces only with --force, as
    other writers do.  A terminal or a pipe (/dev/stdout, ``>(gpg -e)``) is written into, not replaced."""
    import os
    import stat

    try:
        return stat.S_ISREG(os.stat(out).st_mode)
    except OSError:
        return False


def _f0_list_there(out: str) -> str:
    """Why an F0 list was not written to ``out``, where something is: a file may be the list not yet handed
    over; a FIFO (a pipe), a socket or a link is said to be what it is (all were "already exists: it may be
    the F0 list")."""
    import os
    import stat

    from bluezone.readfile import file_kind

    try:
        mode = os.lstat(out).st_mode
    except OSError:
        mode = stat.S_IFREG
    if not stat.S_ISREG(mode):
        return (
            f"{out} is {file_kind(mode)}: an F0 list is written only to a new file (the chain it names is replaced"
            " once it is written); give --out a new file's name, or - for standard output (a pipe)"
        )
    return (
        f"{out} already exists: it may be the F0 list not yet handed over, whose IDs cannot be exported"
        " again (the chain was replaced when it was written); give another --out"
    )


@click.command("check")
@click.option("--keys", "keys_path", cls=OnceOption, type=click.Path(dir_okay=False, path_type=Path), help="Diagnosis key file (one).")
@click.option("--scorer", "scorer_name", default=None, help="Risk scorer: bluezone (default) or gaen.")
@click.option("--scorer-config", type=click.Path(dir_okay=False, path_type=Path), help="TOML with scorer settings.")
@click.option(
    "--set", "scorer_settings", multiple=True, metavar="NAME=VALUE", help="Scorer setting, e.g. --set threshold_db=57 (bluezone), or near_weight=1.0 with --scorer gaen."
)
@click.option(
    "--rssi-correction", default=None, type=click.IntRange(-TRUSTED_CORRECTION_DB, TRUSTED_CORRECTION_DB),
    help="This device's RSSI correction, dB, added to every sighting (default: rssi_correction of the daemon config "
    f"that bluezone calibrate writes, added to the sightings of the adapter it calibrated, if within +-{TRUSTED_CORRECTION_DB}"
    " dB; else 0).",
)
@click.option("--server", "server_url", cls=OnceOption, default=None, help="Key server URL: download, verify and match new batches.")
@click.option(
    "--server-key", type=click.Path(dir_okay=False, path_type=Path),
    help="The server's signing key (file): pinned with --server, and with --keys the export .zip must verify with it.",
)
@click.option(
    "--repin", is_flag=True,
    help="With --server and --server-key: replace the key pinned for that server (the health authority changed it).",
)
@click.option(
    "--bluezone3-list",
    "bluezone3_path",
    cls=OnceOption,
    type=click.Path(dir_okay=False, path_type=Path),
    help='Bluezone v3 F0 list (JSON {"data": [...]}) to match against stored Bluezone v3 sightings.',
)
@jobs_option
@db_option
@json_option
@click.option(
    "--json-to", "json_to", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Also write the --json report to FILE, only its owner may read (the text is still printed): a script"
    " decides on its fields (new_to_act_on, --server's) and mails the text, as README's cron recipe.",
)
def check(
    keys_path: Path | None,
    scorer_name: str | None,
    scorer_config: Path | None,
    scorer_settings: tuple[str, ...],
    rssi_correction: int | None,
    server_url: str | None,
    server_key: Path | None,
    repin: bool,
    bluezone3_path: Path | None,
    jobs: int | None,
    db_path: Path | None,
    as_json: bool,
    json_to: Path | None,
) -> None:
    """Match diagnosis keys against stored sightings and print each exposure.

    GAEN keys come from --keys or --server; a Bluezone v3 F0 list from --bluezone3-list (alone or beside either).
    A check of a key file remembers nothing, so its JSON has no new_to_act_on: each check of a file tells all
    it finds there.
    """
    if json_to is not None:
        _report_path_usable(json_to, db_path, {"--keys": keys_path, "--bluezone3-list": bluezone3_path, "--server-key": server_key})
    end_quickly()  # every store, file, thread and worker below is closed by the time it returns (or fails)
    # Started before numpy is imported (~75 ms: the scorer, the matcher), so that SQLite reads the store's
    # RPIs on the core the imports leave idle; a check of a key file only, whose store it may read.
    key_file = keys_path is not None and server_url is None
    with _cycles_left_for_later(key_file), _early_read(db_path) if key_file else nullcontext() as early:
        from bluezone.config import load_config, trusted_correction
        from bluezone.errors import InputError
        from bluezone.matching.matcher import available_cores
        from bluezone.matching.scoring import DEFAULT_SCORER, get_scorer, parse_setting
        from bluezone.proximity.store.adapters import RssiCorrection

        jobs = jobs_within_cores(jobs, available_cores(), "check")

        not_believed = None
        if rssi_correction is None:  # a calibration's is its adapter's: for the sightings that adapter heard
            config = load_config()
            correction = RssiCorrection(trusted_correction(config.rssi_correction), config.calibration_adapter or None)
            not_believed = config.rssi_correction if correction.db != config.rssi_correction else None
        else:
            correction = RssiCorrection(rssi_correction)
        overrides = dict(parse_setting(text) for text in scorer_settings)
        f0_entries = None
        if bluezone3_path is not None:
            from bluezone.matching.bluezone3 import load_f0_list

            f0_entries = load_f0_list(bluezone3_path)  # before touching the database, as the key file
        keys_path, server_url, server_key = _typed_sources(keys_path, server_url, server_key)
        if repin and server_url is None:
            raise InputError("--repin goes with --server URL and --server-key FILE")
        scorer_named = functools.partial(get_scorer, scorer_name or DEFAULT_SCORER, scorer_config, overrides)
        result, scorer = _check_gaen(
            keys_path, server_url, server_key, repin, db_path, scorer_named, correction, jobs,
            bluezone3_alone=f0_entries is not None, early=early,
        )
        result.rssi_correction, result.rssi_correction_not_believed = correction, not_believed
        if f0_entries is not None:
            _add_bluezone3(result, f0_entries, db_path, scorer, correction)
        if as_json or json_to is not None:
            from bluezone.checkreport import report_as_dict

            report = json_text(report_as_dict(result))
        if as_json:
            click.echo(report)
        else:
            _print_check(result, gaen=keys_path is not None or server_url is not None, db_path=db_path, server_url=server_url)
        if json_to is not None:
            _write_report(json_to, report)
        if server_url is not None:
            result.raise_for_rejected()


def _report_path_usable(path: Path, db_path: Path | None, inputs: dict[str, Path | None]) -> None:
    """--json-to checked before the check runs: its folder writable (a check with --server remembers what it told,
    so a report it could not write afterwards would have told a script's next run nothing new), and none of the
    files the check reads (``_not_an_input``)."""
    import os

    from bluezone.errors import InputError

    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "not a folder this user may write" if folder.is_dir() else "no such folder"
        raise InputError(printable_line(f"--json-to {path}: {folder} is {why}"))
    _not_an_input("--json-to", path, db_path, inputs)


def _not_an_input(option: str, path: Path, db_path: Path | None, inputs: dict[str, Path | None]) -> None:
    """InputError if the file ``option`` writes (replacing what is there) is the sighting store, one of its SQLite
    files, or one of ``inputs`` (option: path): 'check --db s.db --json-to s.db' turned the store (14 days of
    sightings, the daily keys an upload sends) into the JSON report, and 'keys export --out s.db --force' into
    the keys."""
    import os

    from bluezone.errors import InputError
    from bluezone.proximity.store.files import default_db_path

    store = db_path or default_db_path()
    taken = {"the sighting database": store} | {f"the sighting database's {tail} file": Path(f"{store}{tail}")
                                                 for tail in ("-wal", "-shm", "-journal", ".lock")}
    taken |= {f"the {given_as} file": given for given_as, given in inputs.items() if given is not None}
    for what, other in taken.items():
        try:
            same = os.path.samefile(path, other)
        except OSError:  # either not there: nothing to lose, but for a companion SQLite makes when it opens the store
            same = what.startswith("the sighting database's") and os.path.realpath(path) in {
                os.path.realpath(other), os.path.realpath(store) + str(other)[len(str(store)):]}
        if same:
            raise InputError(printable_line(f"{option} {path} is {what}: give it a file of its own"))


def _write_report(path: Path, report: str) -> None:
    """The report written whole or not at all, only its owner reading it (it says whom the reader was near)."""
    from bluezone.errors import InputError
    from bluezone.keyformat.keyfile import write_private

    try:
        write_private(path, (report + "\n").encode())
    except OSError as exc:
        raise InputError(printable_line(f"cannot write the report to {path}: {exc.strerror or exc}")) from None


@contextmanager
def _cycles_left_for_later(paused: bool) -> Iterator[None]:
    """Python's cycle collector paused (``paused``: while a key file is checked, a serial start's imports
    and all): its ~40 passes over the objects that numpy, the matcher and the file's readers make as they
    load took ~5-8 ms of CPU before the workers could start.  A check makes no reference cycle as it works
    (the same ~450 cyclic objects, its imports', are left by the largest real day and a 6M-key one), so
    nothing is held meanwhile.  At the end what the check made is handed to the oldest generation
    (``gc.freeze`` then ``unfreeze``): left young, the collector's next pass would walk it all (~12 ms)
    (docs/benchmarks.md, twenty-seventh session); not where a caller had frozen objects of its own, which
    ``unfreeze`` would release."""
    if not paused or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _early_read(db_path: Path | None) -> Any:
    """The store's RPIs read in a thread from now on (``heardread.EarlyRead``, on sqlite3 alone), closed
    (joined) when the check ends, whatever ends it."""
    from bluezone.matching.linkminute import MIN_SIGHTINGS
    from bluezone.proximity.store.files import default_db_path
    from bluezone.proximity.store.heardread import EarlyRead

    return EarlyRead(db_path if db_path is not None else default_db_path(), MIN_SIGHTINGS)


def _typed_sources(
    keys_path: Path | None, server_url: str | None, server_key: Path | None
) -> tuple[Path | None, str | None, Path | None]:
    """(--keys, --server, --server-key) this check uses: a default from config.toml or the environment
    gives way to the other source typed now, and a --server-key not typed stays with its server."""
    from bluezone.errors import InputError

    if server_url is not None and keys_path is not None:
        # a default from config.toml or the environment gives way to the other one typed now
        # ([check] server = ... is the README's example, and `check --keys FILE` must still work)
        ctx = click.get_current_context()
        typed = {name for name in ("keys_path", "server_url")
                 if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
        if typed == {"keys_path"}:
            server_url = None
        elif typed == {"server_url"}:
            keys_path = None
        else:
            raise InputError("give either --keys FILE or --server URL, not both")
    if keys_path is not None and server_key is not None:
        # a --server-key from config.toml or the environment pins the configured server (the README's
        # example sets both); a key file is held to a key typed with it, else a JSON file is refused
        if click.get_current_context().get_parameter_source("server_key") is not ParameterSource.COMMANDLINE:
            server_key = None
    return keys_path, server_url, server_key


def _check_gaen(
    keys_path: Path | None, server_url: str | None, server_key: Path | None, repin: bool, db_path: Path | None,
    scorer_named: Callable[[], Any], rssi_correction: Any, jobs: int, *, bluezone3_alone: bool, early: Any = None,
) -> tuple[Any, Any]:
    """(the check's result, its scorer) for the GAEN keys of a key server or a key file, or an empty
    result when a Bluezone v3 F0 list is all there is to match.  The scorer is made only once the
    source is known (a check given nothing says so first)."""
    from bluezone.errors import InputError
    from bluezone.matching.check import CheckResult, check_keys

    result: Any
    if server_url is not None:
        from bluezone.client.check import check_with_server
        from bluezone.progress import terminal_progress

        scorer = scorer_named()
        with terminal_progress() as bar:  # on a terminal only: piped, stderr stays for errors
            result = check_with_server(
                server_url, db_path, server_key_path=server_key, scorer=scorer, rssi_correction=rssi_correction,
                now=cli_clock().now(), jobs=jobs, repin=repin,
                progress=None if bar is None else (lambda i, n, name: bar("downloading new batches", i / max(n, 1))),
            )
    elif keys_path is not None:
        public_key, key_id = None, None
        if server_key is not None:  # a key given: the file's signature must verify with it, or no match
            from bluezone.client.pinning import read_server_key

            pinned = read_server_key(server_key)
            public_key, key_id = pinned.key, pinned.key_id
        scorer = scorer_named()
        # the file is read before the database is opened (a bad one leaves it alone), or, when it
        # holds over a million keys, matched as it streams (check_key_file)
        result = check_keys(
            keys_path, db_path, scorer=scorer, rssi_correction=rssi_correction, jobs=jobs, public_key=public_key, key_id=key_id,
            now=cli_now(), early=early,
        )
    elif bluezone3_alone:
        scorer = scorer_named()
        result = CheckResult(scorer=scorer.name)
    else:
        raise InputError("give the diagnosis keys with --keys FILE (or --server URL, or a --bluezone3-list FILE)")
    return result, scorer


def _add_bluezone3(result: Any, f0_entries: Any, db_path: Path | None, scorer: Any, rssi_correction: Any) -> None:
    """The Bluezone v3 F0 list matched against the stored v3 sightings, its exposures added to ``result``."""
    from bluezone.matching.bluezone3 import check_bluezone3_store
    from bluezone.progress import terminal_progress
    from bluezone.proximity.store import SightingStore

    # on a terminal only (piped, stderr stays for errors): a long list at max 1440 takes hours
    with SightingStore.open(db_path, create=False, purge_now=cli_now()) as store, terminal_progress() as bar:
        found, seen = check_bluezone3_store(f0_entries, store, scorer, rssi_correction=rssi_correction, progress=bar)
    result.add_bluezone3(found, len(f0_entries), seen)


def _print_check(result: Any, gaen: bool, db_path: Path | None = None, server_url: str | None = None) -> None:
    """``bluezone check`` as text (``bluezone.checkreport``), each line printed as it is made."""
    from bluezone.checkreport import report_lines

    for line in report_lines(result, gaen, lambda day: _own_keys_since(db_path, day), db_path, server_url):
        click.echo(line)


def _own_keys_since(db_path: Path | None, day: str) -> bool:
    """Whether this device has daily keys from ``day`` on, which ``upload --exposure-date`` would send."""
    from bluezone.client.uploading import keys_to_upload
    from bluezone.matching.levels import keys_since_exposure
    from bluezone.proximity.store import SightingStore

    with SightingStore.open(db_path, create=False, purge_now=cli_now()) as store:
        daily = store.daily_keys()
        now = store.believed_time(cli_now(), quiet=True)  # the daemon's measured time, as the check's own (check.py)
    return len(keys_since_exposure(keys_to_upload(daily, now, include_today=True), dt.date.fromisoformat(day))) > 0


def jobs_within_cores(jobs: int | None, cores: int, command: str) -> int:
    """``--jobs`` capped at the cores this process may use (all of them when not given), saying so on
    stderr when it was more: more processes match no faster and results do not depend on them
    (check --jobs 300 forked 299 workers, ~900 MB and 6.5 s where 2 took 1.4 s)."""
    if jobs is not None and jobs > cores:
        click.echo(f"bluezone {command}: --jobs {jobs} is more than the {cores} core(s) this process may use; using {cores}", err=True)
    return min(jobs or cores, cores)


@click.command("benchmark")
@click.option("--keys", "n_keys", default=100_000, show_default=True, type=click.IntRange(1), help="Diagnosis keys.")
@click.option("--sightings", "n_sightings", default=1_000_000, show_default=True, type=click.IntRange(1), help="Stored sightings to match against.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of the synthetic keys and sightings.")
@click.option("--naive-sample", default=200, show_default=True, type=click.IntRange(1), help="Keys for the baseline.")
@click.option("--with-store", is_flag=True, help="Also time loading the sightings from a temporary SQLite store.")
# --repeat, as `server benchmark` and benchmarks/*.py spell it, and --repeats, its spelling here until now (named
# first: it names BLUEZONE_BENCHMARK_REPEATS and the config key, kept)
@click.option("--repeats", "--repeat", "repeats", default=3, show_default=True, type=click.IntRange(1),
              help="Timings to take the median of.")
@jobs_option
@json_option
def benchmark(
    n_keys: int, n_sightings: int, seed: int, naive_sample: int, with_store: bool, repeats: int, jobs: int | None, as_json: bool
) -> None:
    """Time the matcher on synthetic keys and sightings, beside two naive loops."""
    from bluezone.matching.benchmark import run_benchmark
    from bluezone.matching.matcher import available_cores

    jobs = jobs_within_cores(jobs, available_cores(), "benchmark")
    # Progress goes to stderr and only on a terminal: piped output stays the result alone.
    tty = sys.stderr.isatty()
    result = run_benchmark(
        n_keys, n_sightings, seed, naive_sample, with_store, repeats, jobs=jobs,
        progress=(lambda line: click.echo(f"benchmark: {line} ...", err=True)) if tty else None,
    )
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(
        f"matcher: {result.keys:,} keys against {result.sightings:,} sightings in {result.seconds:.3f} s "
        f"(index {result.index_seconds:.3f} s; median of {result.repeats}; {result.jobs} job(s) on {result.cores} "
        f"core(s)): {result.keys_per_second:,.0f} keys/s, {result.matches} matches"
    )
    click.echo(f"RPI derivation: {result.derivation}")
    if result.speedup_vs_one_job is not None:
        click.echo(f"one process: {result.keys_per_second_one_job:,.0f} keys/s; {result.jobs} jobs are {result.speedup_vs_one_job:.2f}x that")
    click.echo(
        f"baselines on {result.naive_sample_keys} keys: naive (a Cipher per RPI) {result.naive_keys_per_second:,.0f} "
        f"keys/s, speedup {result.speedup_vs_naive:.1f}x; reasonable (an encryptor per key) "
        f"{result.reasonable_naive_keys_per_second:,.0f} keys/s, speedup {result.speedup_vs_reasonable_naive:.1f}x "
        "(store loading not included)"
    )
    if result.store_load_seconds is not None:
        click.echo(
            f"loading the sightings from SQLite: {result.store_load_seconds:.3f} s; with it "
            f"{result.keys_per_second_with_store:,.0f} keys/s"
        )
