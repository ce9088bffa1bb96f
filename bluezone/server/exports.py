"""The export batcher: published keys -> signed GAEN zips + ``index.txt``.

Keys are exported only once their validity has ended (today's still-valid key is
embargoed until its period is over, so nobody can use it to follow the person), grouped
by UTC day, shuffled (upload order must not link a person's keys), and split into files
of at most ``max_keys_per_file``.  A key revised after it was exported (a "likely" report
confirmed, or revoked by a negative test) goes into ``revised_keys`` of the next file for its
day, as GAEN clients expect; a file of few keys, or few revisions, is padded with fakes, or with
revisions of fakes published before (``bluezone.server.padding``).  Files are written first, then recorded in the database
in one transaction, then moved into the export directory, then the index is rewritten atomically.  Files
are written outside the export directory (``bluezone.server.staging``) and moved in only once recorded: a
file there is servable (the key server serves it by name, a CDN syncing the directory copies it), and one
an interrupted export left there beside the next export's, which holds the same keys with other fakes,
told the real keys from the fakes.  A crash leaves at worst a recorded file not moved in yet (the next
export moves it in), never a listed missing one.  The export directory can be served by the key server
itself or synced to any static host or CDN.

Roll-ups keep ``index.txt`` small at national scale: an export every 10 minutes writes up to ~30
files (one per day of its keys and of its check-ins), ~4,300 a day, and 14 days of them would not fit
in the 1 MiB a node reads of the index.  Once an export day is ``rollup_after_days`` old, its files
are replaced by one set per day of their keys (and of their check-ins), named so a node can tell it
already processed every file a roll-up replaces (``bluezone.client.keyserver.covered_rollups``): a
node checking at least that often never downloads a roll-up; one away longer downloads the roll-ups
instead of thousands of small files.  Roll-ups are cut per day of the keys as the files they replace,
so nothing stays published longer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.errors import BluezoneError, ExportSignatureError, InputError, KeyFileError, ServerStorageError
from bluezone.keyformat.batch_names import EXPORT_FILE, ROLLUP_FILE
from bluezone.keyformat.export import load_public_key, open_signed_export, public_key_base64, signed_export_zip
from bluezone.keyformat.keys import KEY_DTYPE, MAX_KEY_FILE_BYTES, NO_DAYS_SINCE_ONSET, REPORT_TYPE_CERTAINTY
from bluezone.server.exportdir import claim_export_dir
from bluezone.server.padding import fake_keys, fake_revisions, is_fake, new_secret, padding_count, revisable_like
from bluezone.server.signing import Signer
from bluezone.server.staging import Staging, settle_leftovers
from bluezone.server.storage import LIKELY, RECURSIVE, BatchRecord, Storage
from bluezone.keyformat.venue_export import MAX_REPORTS_PER_FILE, open_signed_venue_zip, signed_venue_zip
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.readfile import read_regular_file
from bluezone.writefile import final_name, write_file

log = logging.getLogger(__name__)

INDEX_FILE = "index.txt"
#: Export files are public (served as they are, synced to a CDN): a new file's mode, under the umask.
PUBLIC = None
DEFAULT_MAX_KEYS_PER_FILE = 30_000
RETENTION_DAYS = 14
#: An export day's files are rolled up once the day has been over this long: a node checking at least
#: daily has then processed them all, and never downloads the roll-up.
ROLLUP_AFTER_DAYS = 1
#: Each file of a day's keys looks like up to this many people's (one key each a day): Google's reference
#: server pads an export of all 14 days to 1,000 keys plus 0-100, about 71 a day.
MIN_KEYS_PER_FILE = 100
PADDING_RANGE = 20


REGION = re.compile(r"^[A-Za-z0-9-]{2,16}$")  # ISO 3166 ("VN", "US-WA") or a mobile country code ("452")


@dataclass(frozen=True)
class ExportConfig:
    """How exports are cut: region, keys per file, how long batches are listed, and when an export
    day's files are rolled up (None: never)."""

    region: str = "XX"
    max_keys_per_file: int = DEFAULT_MAX_KEYS_PER_FILE
    retention_days: int = RETENTION_DAYS
    rollup_after_days: int | None = ROLLUP_AFTER_DAYS
    #: A file with fewer keys of its own is filled up to this many plus 0-``padding_range`` with fake keys
    #: (0: never; bluezone/server/padding.py and docs/server.md, "Padding")
    min_keys_per_file: int = MIN_KEYS_PER_FILE
    padding_range: int = PADDING_RANGE

    def __post_init__(self) -> None:
        # written into every export.bin that clients download: catch a typo before it is signed
        if not isinstance(self.region, str) or not REGION.fullmatch(self.region):
            raise InputError(f"region must be 2-16 letters, digits or '-' (e.g. VN), got {self.region!r}")
        if self.max_keys_per_file < 1 or self.retention_days < 1:
            raise InputError("max_keys_per_file and retention_days must be at least 1")
        if self.min_keys_per_file < 0 or self.padding_range < 0:
            raise InputError("min_keys_per_file and padding_range must be 0 or more")
        if self.rollup_after_days is not None and not 0 <= self.rollup_after_days < self.retention_days:
            raise InputError(f"rollup_after_days must be 0-{self.retention_days - 1} (or None: no roll-ups)")

    def rolled_up_through(self, now: float) -> int | None:
        """The last UTC day (number) whose exports are rolled up at ``now``; None without roll-ups."""
        if self.rollup_after_days is None:
            return None
        return int(now // DAY_SECONDS) - self.rollup_after_days - 1


@dataclass(frozen=True)
class Embargo:
    """Keys on the server not exported yet because they are still valid (today's keys)."""

    keys: int
    first_release: float | None  # Unix time the first of them can be exported
    last_release: float | None

    def as_dict(self) -> dict[str, object]:
        return {"keys": self.keys, "first_release": _iso(self.first_release), "last_release": _iso(self.last_release)}

    def sentence(self) -> str:
        """E.g. "3 keys wait until their validity ends: exportable from 2026-11-21 00:00 UTC"."""
        when = f"exportable from {_iso(self.first_release, ' ')} UTC"
        if self.last_release != self.first_release:
            when += f", all by {_iso(self.last_release, ' ')} UTC"
        return f"{self.keys} key(s) wait until their validity ends: {when}"


def _iso(t: float | None, sep: str = "T") -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(sep=sep, timespec="minutes").removesuffix("+00:00")


def embargoed(storage: Storage, now: float) -> Embargo:
    """What the next exports will publish once today's keys have ended (``export_batches`` leaves them)."""
    count, first, last = storage.embargoed_keys(interval_number(now))
    return Embargo(
        count,
        None if first is None else first * INTERVAL_SECONDS,
        None if last is None else last * INTERVAL_SECONDS,
    )


def write_index(storage: Storage, out_dir: Path, now: float, retention_days: int | None = RETENTION_DAYS) -> list[str]:
    """Rewrite ``index.txt``: one batch file name per line, oldest first, last 14 days only (None: every
    file on record, as when an export is held: the 14 days before a jumped clock hold none of them)."""
    since = 0.0 if retention_days is None else now - retention_days * DAY_SECONDS
    names = [b.name for b in storage.batches(since) if (out_dir / b.name).is_file()]
    write_file(out_dir / INDEX_FILE, "".join(f"{n}\n" for n in names).encode(), PUBLIC)
    return names


def export_batches(
    storage: Storage,
    signer: Signer,
    out_dir: str | Path,
    now: float,
    config: ExportConfig = ExportConfig(),
    rng: np.random.Generator | None = None,
    *,
    hold: bool = False,
) -> list[BatchRecord]:
    """Write every exportable key into new signed batches; returns the batches written.

    ``hold``: the clock just jumped ahead (``exportclock.clock_jump``, for ``server run``'s schedule and
    ``server export`` alike), so nothing it would decide is done this
    time: no key exported (the embargo is judged by the clock: today's keys, still broadcast, went out at a
    clock past midnight), nothing deleted past the retention (one export a month ahead deleted every key
    and file the server had), nothing rolled up; only the index is rewritten, listing every file kept.

    ``out_dir`` is recorded as the export directory at the first export, and another is refused (InputError,
    nothing written: ``exportdir``): its files would be recorded as published, and never served."""
    out_dir = Path(out_dir)
    claim_export_dir(storage, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.max_keys_per_file < 1:
        raise ValueError("max_keys_per_file must be at least 1")
    settle_leftovers(storage, out_dir)  # what an interrupted export recorded is published, the rest deleted
    if hold:
        write_index(storage, out_dir, now, None)
        return []
    rng = rng or np.random.default_rng(secrets.randbits(128))
    storage.note_signing_key(public_key_base64(signer.public_key), now)  # what a roll-up after a rotation verifies with
    oldest = rolling_start(now) - config.retention_days * ROLLING_PERIOD
    _settle_revision_queue(storage)
    withheld = storage.keys_withheld()  # a revocation deleting keys from here on: this export records nothing
    new_keys, new_ids, new_revisions = storage.pending_keys(max_end_interval=interval_number(now), min_start_interval=oldest)
    revised_keys, revised_ids, revisions = storage.pending_revisions(min_start_interval=oldest)
    # one queue: new keys (as they stand: a revision before the first export is in its type), then
    # revisions of keys exported before (they go in ``revised_keys``)
    keys = np.concatenate([new_keys, revised_keys])
    is_revision = np.r_[np.zeros(len(new_keys), bool), np.ones(len(revised_keys), bool)]
    # the revisions the files carry, by their own ids (a key's later revision queued meanwhile is not taken)
    carried = np.sort(np.r_[new_revisions[new_revisions > 0], revisions])
    # read before the transaction: what pads a day's file of revisions
    revisable, onsets_before = (
        _revisable_fakes(storage, signer, out_dir, revised_keys, revised_ids, now, config)
        if config.min_keys_per_file else ({}, {})
    )
    written: list[BatchRecord] = []
    if len(keys):
        # the day's padding secret before the keys leave their queues: on PostgreSQL they leave on a connection
        # of their own while the files are written, and an upload revising one of them waits for its row while
        # holding the storage, which a secret asked for then waited for: both for ever (attack19)
        day_secret = storage.padding_secret(int(now // DAY_SECONDS), new_secret()) if config.min_keys_per_file else None
        # if anything fails, the staged files are settled by the database's word (nothing recorded: deleted)
        with Staging(out_dir, storage) as staging:
            # every key read, and every revision in a file, leave their queues when the files are recorded
            with storage.export_transaction(np.sort(new_ids), carried, withheld) as written:
                _write_batches(
                    keys, is_revision, signer, staging.path, now, config, rng, written, lambda: day_secret, revisable,
                    onsets_before,
                )
                staging.sync()  # every file's rename, before the transaction recording them commits
            staging.publish(record.name for record in written)
    venue_files = export_venue_reports(storage, signer, out_dir, now, config, rng)
    rolled = roll_up_closed_days(storage, signer, out_dir, now, config, rng)
    listed = write_index(storage, out_dir, now, config.retention_days)
    remove_stale_files(storage, out_dir, listed, now, config)
    # after the files: a file's record says until when it is kept
    removed = storage.purge(oldest, now - 2 * DAY_SECONDS, batches_before=now - config.retention_days * DAY_SECONDS)
    log.info(
        "exported %d keys and %d revisions in %d files, %d venue-warning files (%d expired keys purged; %d roll-up files)",
        len(new_keys), len(revised_keys), len(written), len(venue_files), removed, len(rolled),
    )
    return written + venue_files


def _settle_revision_queue(storage: Storage) -> None:
    """Drop queued revisions no file may carry (one already carried, one undone), with a warning: each such
    row made every export record nothing until its key aged out (``Storage.settle_revision_queue``)."""
    dropped, requeued = storage.settle_revision_queue()
    if dropped:
        log.warning(
            "%d queued revision(s) already carried by a file, or undone by a revocation, dropped from the queue"
            " (%d key(s) queued again as they stand): nothing is published twice and exports go on; no known path"
            " makes these, so please report it with the output of `bluezone server status --json`", dropped, requeued,
        )


def _write_batches(
    keys: np.ndarray,
    is_revision: np.ndarray,
    signer: Signer,
    out_dir: Path,
    now: float,
    config: ExportConfig,
    rng: np.random.Generator,
    written: list[BatchRecord],
    padding_secret: Callable[[], bytes | None],
    revisable: dict[int, np.ndarray],
    onsets_before: dict[bytes, int],
) -> None:
    """Write ``keys`` (revisions where ``is_revision``) into signed files in ``out_dir`` (an export's staging
    folder) by UTC day, shuffled, at most ``max_keys_per_file`` each, every file durable when this returns; each
    file's record goes into ``written`` as it is handed to the writer (the staging settles them if anything fails).

    One thread writes and fsyncs each file while the next is signed (zlib and fsync release the GIL):
    1M keys, 42 files, 0.1-0.3 s of fsyncs no longer add to the export."""
    with ThreadPoolExecutor(1, thread_name_prefix="bluezone-export-write") as writer:
        writes = []
        for record, data in _signed_batches(
            keys, is_revision, signer, now, config, rng, padding_secret, revisable, onsets_before
        ):
            written.append(record)
            writes.append(writer.submit(write_file, out_dir / record.name, data, PUBLIC, sync=False))
        for done in writes:
            done.result()


def _signed_batches(
    keys: np.ndarray, is_revision: np.ndarray, signer: Signer, now: float, config: ExportConfig, rng: np.random.Generator,
    padding_secret: Callable[[], bytes | None], revisable: dict[int, np.ndarray], onsets_before: dict[bytes, int],
) -> Iterator[tuple[BatchRecord, bytes]]:
    """Each batch file's record and signed zip, signed as they are asked for; a day with fewer new keys
    than ``config.min_keys_per_file`` padded with fake keys under ``padding_secret()``, and a day with
    fewer revisions padded with revisions of its fakes published before (``revisable``, per day), their
    onsets moved as the real revisions moved theirs (``onsets_before``: a real key's days since onset as
    first published)."""
    stamp = int(now)
    days = keys["rolling_start"] // ROLLING_PERIOD
    for day in np.unique(days):
        on_day = np.flatnonzero(days == day)
        prefix = f"{stamp}-{int(day) * DAY_SECONDS}-{secrets.token_hex(3)}"
        new = on_day[~is_revision[on_day]]
        revised = on_day[is_revision[on_day]]
        room = max(0, config.max_keys_per_file - len(on_day))  # one file at most
        fakes = min(padding_count(len(new), config.min_keys_per_file, config.padding_range, rng), room)
        pool = revisable_like(revisable.get(int(day), keys[:0]), keys.take(revised))
        fake_revised = min(padding_count(len(revised), config.min_keys_per_file, config.padding_range, rng),
                           len(pool), room - fakes)
        secret = padding_secret() if fakes else None
        added = ([fake_keys(keys.take(new), fakes, secret, rng)] if secret is not None else []) + (
            [_fake_revisions(pool, keys.take(revised), fake_revised, rng, onsets_before)] if fake_revised else [])
        if not added:
            yield from _signed_day(keys, is_revision, None, on_day, int(day), prefix, signer, now, config, rng)
            continue
        padded = np.concatenate([keys.take(on_day), *added])
        revision = np.r_[is_revision[on_day], np.zeros(fakes, bool), np.ones(len(padded) - len(on_day) - fakes, bool)]
        fake = np.r_[np.zeros(len(on_day), bool), np.ones(len(padded) - len(on_day), bool)]
        yield from _signed_day(padded, revision, fake, np.arange(len(padded)), int(day), prefix, signer, now, config, rng)


def _signed_day(
    keys: np.ndarray,
    is_revision: np.ndarray,
    fake: np.ndarray | None,
    on_day: np.ndarray,
    day: int,
    prefix: str,
    signer: Signer,
    now: float,
    config: ExportConfig,
    rng: np.random.Generator,
) -> Iterator[tuple[BatchRecord, bytes]]:
    """The files of the keys ``on_day`` (rows of ``keys``, all of UTC day ``day``), shuffled, named ``<prefix>-NNNN.zip``;
    ``fake`` (None: none) marks fake keys, recorded as the files' padding, not as their keys."""
    on_day = on_day[rng.permutation(len(on_day))]
    n_files = -(-len(on_day) // config.max_keys_per_file)
    start_ts, end_ts = day * DAY_SECONDS, (day + 1) * DAY_SECONDS
    for i in range(n_files):
        chunk = on_day[i * config.max_keys_per_file : (i + 1) * config.max_keys_per_file]
        plain, revised = chunk[~is_revision[chunk]], chunk[is_revision[chunk]]
        name = f"{prefix}-{i + 1:04d}.zip"
        # take(): indexing a structured array by a list of rows copies field by field (1M keys: 0.5 s, not 0.06)
        data = signed_export_zip(
            keys.take(plain),
            signer.private_key,
            signer.info,
            region=config.region,
            batch_num=i + 1,
            batch_size=n_files,
            start_timestamp=start_ts,
            end_timestamp=end_ts,
            revised_keys=keys.take(revised),
        )
        fakes = chunk[fake[chunk]] if fake is not None else chunk[:0]
        yield BatchRecord(
            name, now, start_ts, end_ts, i + 1, n_files, len(chunk) - len(fakes), len(fakes), _digest(data),
            _rows(keys, plain[np.isin(plain, fakes)]), _rows(keys, revised[np.isin(revised, fakes)]),
        ), data


def _rows(keys: np.ndarray, rows: np.ndarray) -> bytes:
    """``keys``' ``rows`` (KEY_DTYPE) end to end, as a batch record keeps its file's fakes."""
    return np.ascontiguousarray(keys.take(rows)).tobytes()


def export_venue_reports(
    storage: Storage, signer: Signer, out_dir: Path, now: float, config: ExportConfig, rng: np.random.Generator
) -> list[BatchRecord]:
    """Write the check-ins (venue reports, fakes mixed in) not yet published into signed
    ``<stamp>-venues-<tag>-NNNN.zip`` files, shuffled, listed in the same index as key batches.

    One set of files per day of the reports, as key batches are cut per day of the keys: a file is
    listed and kept until 14 days after its day, so no check-in is published longer (a file of
    every day pending stayed 14 days after the export, its oldest check-ins 28 days after the visit)."""
    oldest_day = int(now // DAY_SECONDS) - config.retention_days
    by_day: dict[int, list[tuple[int, bytes]]] = {}  # day start -> (report id, report)
    for report_id, day, data in storage.pending_venue_reports(oldest_day):
        by_day.setdefault(day * DAY_SECONDS, []).append((report_id, data))
    records: list[BatchRecord] = []
    tag = secrets.token_hex(3)  # one per export, files numbered across its days: two days' tags could collide
    if not by_day:
        return records
    # a file not recorded (another export published its check-ins first) is deleted unseen when this ends
    with Staging(out_dir, storage) as staging:
        for number, (start, i, n_files, chunk) in enumerate(_checkin_files(by_day, config, rng), 1):
            name = f"{int(now)}-venues-{tag}-{number:04d}.zip"
            reports = [ProtectedReport.from_bytes(data) for _, data in chunk]
            data = signed_venue_zip(reports, signer.private_key, signer.info, config.region, int(now // 3600))
            write_file(staging.path / name, data, PUBLIC)
            record = BatchRecord(name, now, start, start + DAY_SECONDS, i, n_files, len(chunk), sha256=_digest(data))
            storage.add_venue_batch(record, [report_id for report_id, _ in chunk])
            staging.publish([name])
            records.append(record)
    return records


_Item = TypeVar("_Item")


def _checkin_files(
    by_day: dict[int, list[_Item]], config: ExportConfig, rng: np.random.Generator
) -> Iterator[tuple[int, int, int, list[_Item]]]:
    """Check-ins (``by_day``: day start -> them) cut into files, one set per day of the check-ins, as
    (day start, number among the day's files, files of the day, the file's check-ins): each day's
    shuffled and cut at the per-file maximum, the days in random order (a name says nothing of its
    check-ins' day, and numbers given in day order would rank the days)."""
    per_file = min(config.max_keys_per_file, MAX_REPORTS_PER_FILE)
    for start in rng.permutation(sorted(by_day)).tolist():
        items = by_day[start]
        order = rng.permutation(len(items))
        n_files = -(-len(items) // per_file)
        for i in range(n_files):
            yield start, i + 1, n_files, [items[j] for j in order[i * per_file : (i + 1) * per_file]]


def roll_up_closed_days(
    storage: Storage, signer: Signer, out_dir: Path, now: float, config: ExportConfig, rng: np.random.Generator
) -> list[BatchRecord]:
    """Replace the files of every export day ``config.rolled_up_through(now)`` or older by roll-ups:
    per day of the keys, one set of files holding every key (and revision) of that export day's files
    for that day; per export day, one set per day of the check-ins.  Each roll-up is written durably,
    then recorded in place of the files it replaces in one transaction (the index, rewritten after,
    then lists it instead of them; ``remove_stale_files`` deletes them).  A day another exporter
    rolled up first is left to it (its files removed, a warning).  Files signed before a key rotation
    are verified with the key that signed them (``storage.signing_keys``) and rolled up with the new one."""
    last = config.rolled_up_through(now)
    if last is None:
        return []
    since = now - config.retention_days * DAY_SECONDS
    groups: dict[tuple[int, str], list[BatchRecord]] = {}
    # check-in files of a day rolled up now end at most 3 days before the listed ones (and all count in n)
    for batch in storage.batches(since - ((config.rollup_after_days or 0) + 3) * DAY_SECONDS):
        match = EXPORT_FILE.fullmatch(batch.name)
        if match and int(match["stamp"]) // DAY_SECONDS <= last:
            groups.setdefault((int(match["stamp"]) // DAY_SECONDS, match["kind"]), []).append(batch)
    rolled: list[BatchRecord] = []
    if not groups:
        return rolled
    verifiers = _verifiers(storage, signer, since)
    with Staging(out_dir, storage) as staging:
        for (day, kind), files in sorted(groups.items()):
            live = [b for b in files if b.end_timestamp >= since]
            if not live:
                continue
            try:
                if kind == "venues":
                    made = list(_venue_rollup(live, len(files), day, signer, verifiers, out_dir, now, config, rng))
                else:
                    # its fakes, and the revisions of earlier fakes, were made on this export day or since their key day
                    made_with = [storage.padding_secret(d) for d in range(int(kind) // DAY_SECONDS, day + 1)]
                    made = list(_key_rollup(live, len(files), day, signer, verifiers, out_dir, now, config, rng, made_with))
            except (BluezoneError, OSError) as exc:  # a file gone or damaged on disk: those files stay as they are
                log.error("export day %s (%s) not rolled up: %s", _iso(day * DAY_SECONDS), kind, exc)
                continue
            written: list[BatchRecord] = []
            try:
                for record, data in made:
                    written.append(record)
                    write_file(staging.path / record.name, data, PUBLIC, sync=False)
                staging.sync()  # every roll-up durable before it is recorded
                storage.replace_batches([b.name for b in live], written)
            except (OSError, ServerStorageError) as exc:
                staging.discard(record.name for record in written)  # not recorded: never seen
                if isinstance(exc, OSError):  # a full disk: this export's new files are recorded, and must be listed
                    log.error("export day %s (%s) not rolled up, tried again next export: %s", _iso(day * DAY_SECONDS), kind, exc)
                else:
                    log.warning("export day %s (%s): %s (another exporter rolled it up)", _iso(day * DAY_SECONDS), kind, exc)
                continue
            staging.publish(record.name for record in written)
            rolled += written
    return rolled


def _fake_revisions(
    pool: np.ndarray, real: np.ndarray, count: int, rng: np.random.Generator, onsets_before: dict[bytes, int]
) -> np.ndarray:
    """``padding.fake_revisions`` with the real revisions' days since onset as first published."""
    before = np.array([onsets_before.get(k, NO_DAYS_SINCE_ONSET) for k in _key_bytes(real)], np.int64)
    return fake_revisions(pool, real, count, rng, before)


def _revisable_fakes(
    storage: Storage, signer: Signer, out_dir: Path, revisions: np.ndarray, key_ids: np.ndarray, now: float,
    config: ExportConfig,
) -> tuple[dict[int, np.ndarray], dict[bytes, int]]:
    """Per day of ``revisions``' keys (``key_ids``) that may get fake revisions (fewer real ones than a file's
    padding fills up to), the fakes this server published in its listed files of that day, as they stand
    (first published, or as the most certain revision of them a file carried), of a type a revision may
    still change (likely, recursive), each once: what pads a file of revisions, so that it does not hold
    exactly one person's revised keys.  A fake revised recursive -> likely may be revised again, as a real
    key may (an F1 diagnosed, then tested): else a key in two files' revisions was a real one.  And each of
    those revisions' days since onset as the files last published it (how far the revision moves it).

    Each file's fakes come with its record (schema 18); a day with a file recorded before is read from the
    files as before (``_fakes_from_files``)."""
    days = revisions["rolling_start"] // ROLLING_PERIOD
    counts = dict(zip(*(a.tolist() for a in np.unique(days, return_counts=True))))
    wanted = {day * DAY_SECONDS for day, n in counts.items() if n < config.min_keys_per_file + config.padding_range}
    if not wanted:
        return {}, {}
    since = now - config.retention_days * DAY_SECONDS
    padded = np.isin(days, [start // DAY_SECONDS for start in wanted])  # (day numbers: seconds overflow int32 in 2038)
    records = [r for r in storage.batch_padding(since, sorted(wanted)) if r[0].split("-", 2)[1] != "venues"]
    if any(fakes is None or revised is None for _, _, fakes, revised in records):
        return _fakes_from_files(storage, signer, out_dir, revisions[padded], now, config)
    found: dict[int, list[np.ndarray]] = {start: [] for start in wanted}
    stands: dict[bytes, tuple[int, int]] = {}
    for _, start, fakes, revised in records:
        found[start].append(np.frombuffer(fakes or b"", KEY_DTYPE))
        _note_revisions(stands, np.frombuffer(revised or b"", KEY_DTYPE))
    onsets_before = storage.published_onsets(key_ids[padded].tolist())
    return _standing(found, stands, revisions[:0]), onsets_before


def _fakes_from_files(
    storage: Storage, signer: Signer, out_dir: Path, revisions: np.ndarray, now: float, config: ExportConfig
) -> tuple[dict[int, np.ndarray], dict[bytes, int]]:
    """``_revisable_fakes`` for ``revisions`` (of days that may get fake revisions) where files recorded before
    schema 18 hold some of the fakes: every listed file of their days read back and verified, its fakes told
    apart with its export day's padding secret, kept longer than any of its keys can be revised
    (``Storage.purge``), and the revisions' days since onset as those files last published them.  A file
    gone or damaged on disk lends none (a warning)."""
    wanted = {int(day) * DAY_SECONDS for day in np.unique(revisions["rolling_start"] // ROLLING_PERIOD)}
    since = now - config.retention_days * DAY_SECONDS
    verifiers = _verifiers(storage, signer, since)
    found: dict[int, list[np.ndarray]] = {start: [] for start in wanted}
    stands: dict[bytes, tuple[int, int]] = {}  # a key's type and onset as the files' revisions of it left it
    onsets_before: dict[bytes, int] = {}
    for batch in storage.batches(since):
        stamp, kind = batch.name.split("-", 2)[:2]
        if kind == "venues" or batch.start_timestamp not in wanted:
            continue
        try:
            export, _ = _read_own(_own_file(out_dir, batch), open_signed_export, verifiers)
        except (BluezoneError, OSError) as exc:
            log.warning("%s lends no fakes to pad revisions: %s", batch.name, exc)
            continue
        found[batch.start_timestamp].append(export.keys[is_fake(export.keys, storage.padding_secret(int(stamp) // DAY_SECONDS))])
        _note_revisions(stands, export.revised_keys)
        first = export.keys[np.isin(export.keys["key"], revisions["key"])]
        onsets_before.update(zip(_key_bytes(first), first["days_since_onset"].tolist()))
    onsets_before.update((key, stands[key][1]) for key in _key_bytes(revisions) if key in stands)
    return _standing(found, stands, revisions[:0]), onsets_before


def _note_revisions(stands: dict[bytes, tuple[int, int]], revised: np.ndarray) -> None:
    """Keep in ``stands`` each key's most certain (type, onset) of a file's ``revised`` keys."""
    for key, report_type, onset in zip(
        _key_bytes(revised), revised["report_type"].tolist(), revised["days_since_onset"].tolist()
    ):
        if REPORT_TYPE_CERTAINTY.get(report_type, 0) > REPORT_TYPE_CERTAINTY.get(stands.get(key, (0, 0))[0], 0):
            stands[key] = (report_type, onset)


def _standing(
    found: dict[int, list[np.ndarray]], stands: dict[bytes, tuple[int, int]], empty: np.ndarray
) -> dict[int, np.ndarray]:
    """Per day (number), its files' fakes (``found``, per day start) each once (a roll-up holds its day's fakes
    again), as ``stands`` revised them, of a type a revision may still change."""
    revisable, seen = {}, set()
    for start, parts in found.items():
        fakes = np.concatenate(parts) if parts else empty
        keep = np.ones(len(fakes), bool)
        for i, key in enumerate(_key_bytes(fakes)):
            keep[i] = key not in seen
            seen.add(key)
            if key in stands:
                fakes["report_type"][i], fakes["days_since_onset"][i] = stands[key]
        revisable[start // DAY_SECONDS] = fakes[keep & np.isin(fakes["report_type"], (LIKELY, RECURSIVE))]
    return revisable


def _key_bytes(keys: np.ndarray) -> list[bytes]:
    raw = np.ascontiguousarray(keys["key"]).tobytes()
    return [raw[i : i + 16] for i in range(0, len(raw), 16)]


#: Public keys a roll-up verifies the files it reads with, and the key id each must name (None: any).
_Verifiers = list[tuple[ec.EllipticCurvePublicKey, str | None]]
_Read = TypeVar("_Read")


def _verifiers(storage: Storage, signer: Signer, since: float) -> _Verifiers:
    """The server's signing key, then each key it signed files with before (a key rotation) that may still
    be listed: a roll-up reads them and signs their keys again with the new key."""
    current = public_key_base64(signer.public_key)
    earlier = [load_public_key(key) for key in storage.signing_keys(since - DAY_SECONDS) if key != current]
    return [(signer.public_key, signer.info.key_id), *((key, None) for key in earlier)]


def _digest(data: bytes) -> str:
    """What a batch record keeps of its file's bytes (``_own_file`` compares)."""
    return hashlib.sha256(data).hexdigest()


def _own_file(out_dir: Path, batch: BatchRecord) -> bytes:
    """The bytes of one of the exporter's files, refused unless they are the ones it wrote (the SHA-256
    recorded with the file).  A signature alone does not do after a key rotation: the roll-up verifies
    older files with every key the exporter signed with, so whoever held a leaked old key and could write
    into the export directory would have forged keys signed again with the new key.  Files recorded before
    server schema 14 have no digest: their signature alone is checked, as before.  Read as a regular file
    of bounded size: a FIFO put there held the export (and the server's stop) for ever."""
    data = read_regular_file(out_dir / batch.name, MAX_KEY_FILE_BYTES, "batch file", KeyFileError)
    if batch.sha256 is not None and _digest(data) != batch.sha256:
        raise ExportSignatureError(f"{batch.name} changed since it was written (not the SHA-256 recorded with it)")
    return data


def _read_own(
    data: bytes, opener: Callable[[bytes, ec.EllipticCurvePublicKey, str | None], _Read], verifiers: _Verifiers
) -> _Read:
    """What ``opener`` reads of one of the exporter's own files, verified with the first of ``verifiers`` its
    signature verifies with (a file another key signed, or damaged, raises ExportSignatureError)."""
    for public_key, key_id in verifiers[:-1]:
        try:
            return opener(data, public_key, key_id)
        except ExportSignatureError:
            continue
    return opener(data, *verifiers[-1])


def _key_rollup(
    live: list[BatchRecord], replaces: int, day: int, signer: Signer, verifiers: _Verifiers, out_dir: Path, now: float,
    config: ExportConfig, rng: np.random.Generator, padding_secrets: list[bytes | None],
) -> Iterator[tuple[BatchRecord, bytes]]:
    """The roll-up of ``live``, an export day's files of one day of keys (``replaces`` files in all).

    It keeps their fake keys and fake revisions (told apart with the ``padding_secrets`` of the export
    days they were made on, to count them as padding): without them, the keys of a small file missing from its roll-up would be its fakes, and
    the rest the keys of the few people it held."""
    plain, revised = [], []
    for batch in live:
        export, _ = _read_own(_own_file(out_dir, batch), open_signed_export, verifiers)
        plain.append(export.keys)
        revised.append(export.revised_keys)
    keys = np.concatenate(plain + revised)
    is_revision = np.r_[np.zeros(sum(map(len, plain)), bool), np.ones(sum(map(len, revised)), bool)]
    key_day = live[0].start_timestamp // DAY_SECONDS
    prefix = f"{day * DAY_SECONDS}-{live[0].start_timestamp}-day{replaces}x{secrets.token_hex(3)}"
    fake = np.zeros(len(keys), bool)
    for secret in padding_secrets:
        fake |= is_fake(keys, secret)
    yield from _signed_day(keys, is_revision, fake, np.arange(len(keys)), key_day, prefix, signer, now, config, rng)


def _venue_rollup(
    live: list[BatchRecord], replaces: int, day: int, signer: Signer, verifiers: _Verifiers, out_dir: Path, now: float,
    config: ExportConfig, rng: np.random.Generator,
) -> Iterator[tuple[BatchRecord, bytes]]:
    """The roll-up of ``live``, an export day's check-in files (``replaces`` in all): one set per day of the check-ins."""
    by_day: dict[int, list[ProtectedReport]] = {}
    for batch in live:
        data = _own_file(out_dir, batch)
        by_day.setdefault(batch.start_timestamp, []).extend(_read_own(data, open_signed_venue_zip, verifiers))
    tag = secrets.token_hex(3)
    for number, (start, i, n_files, chunk) in enumerate(_checkin_files(by_day, config, rng), 1):
        name = f"{day * DAY_SECONDS}-venues-day{replaces}x{tag}-{number:04d}.zip"
        data = signed_venue_zip(chunk, signer.private_key, signer.info, config.region, int(now // 3600))
        yield BatchRecord(name, now, start, start + DAY_SECONDS, i, n_files, len(chunk), sha256=_digest(data)), data


def remove_stale_files(storage: Storage, out_dir: Path, listed: list[str], now: float, config: ExportConfig) -> int:
    """Delete the exporter's files (and copies half written: ``writefile.final_name``) that ``index.txt`` does not list
    and never will again; returns how many.  Published keys and check-ins are kept 14 days, on disk too, as
    in the database (the server would otherwise serve them by name for good):

    - a recorded file once its day is past the retention (it left the index);
    - an export day's small files once rolled up: its check-in files at once (their names do not say the
      day of their check-ins, so one kept longer could outlive its 14 days), its key files a day later (a
      node that read the index before, a CDN's cached copy: neither gets a 404);
    - a file nobody recorded, at once: an export of an earlier version interrupted between writing and
      recording it left it here, its keys exported again with other fakes, and the two files together told
      the real keys from the fakes (attack21).  Exports now move a file in only once it is recorded
      (``bluezone.server.staging``), so no other exporter's file lies here unrecorded.

    The directory is listed before the records are read: a file another exporter moves in meanwhile was
    recorded before it was moved, so it is among the records read after."""
    keep = set(listed)
    paths = [path for path in out_dir.glob("*.zip*") if path.name not in keep]
    recorded = {batch.name: batch for batch in storage.batches()}
    rolled, a_day_ago = config.rolled_up_through(now), config.rolled_up_through(now - DAY_SECONDS)
    oldest = now - config.retention_days * DAY_SECONDS
    removed = 0
    for path in paths:
        name = final_name(path.name)
        small, rollup = EXPORT_FILE.fullmatch(name), ROLLUP_FILE.fullmatch(name)
        if not small and not rollup:
            continue
        if name in recorded:  # (or a copy of it half written)
            stale = recorded[name].end_timestamp < oldest
        elif small and small["kind"] != "venues" and rolled is not None and a_day_ago is not None:
            # replaced by a roll-up less than a day ago: kept for whoever read the index before
            stale = not a_day_ago < int(small["stamp"]) // DAY_SECONDS <= rolled
        else:
            stale = True
        if stale:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("deleted %d file(s) no longer listed (past %d days, rolled up, or left by an interrupted export)",
                 removed, config.retention_days)
    return removed
