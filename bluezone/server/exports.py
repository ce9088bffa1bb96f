"""The export batcher: published keys -> signed GAEN zips + ``index.txt``.

Keys are exported only once their validity has ended (today's still-valid key is
embargoed until its period is over, so nobody can use it to follow the person), grouped
by UTC day, shuffled (upload order must not link a person's keys), and split into files
of at most ``max_keys_per_file``.  A key revised after it was exported (a "likely" report
confirmed, or revoked by a negative test) goes into ``revised_keys`` of the next file for its
day, as GAEN clients expect.  Files are written first, then recorded in the database
in one transaction, then the index is rewritten atomically: a crash leaves at worst an
unlisted file, never a listed missing one.  The export directory can be served by the
key server itself or synced to any static host or CDN.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD, interval_number, rolling_start
from bluezone.errors import InputError
from bluezone.keyformat.export import signed_export_zip
from bluezone.server.signing import Signer
from bluezone.server.storage import BatchRecord, Storage
from bluezone.keyformat.venue_export import MAX_REPORTS_PER_FILE, signed_venue_zip
from bluezone.keyformat.venue_reports import ProtectedReport

log = logging.getLogger(__name__)

INDEX_FILE = "index.txt"
DEFAULT_MAX_KEYS_PER_FILE = 30_000
RETENTION_DAYS = 14


REGION = re.compile(r"^[A-Za-z0-9-]{2,16}$")  # ISO 3166 ("VN", "US-WA") or a mobile country code ("452")


@dataclass(frozen=True)
class ExportConfig:
    """How exports are cut: region, keys per file, and how long batches are listed."""

    region: str = "XX"
    max_keys_per_file: int = DEFAULT_MAX_KEYS_PER_FILE
    retention_days: int = RETENTION_DAYS

    def __post_init__(self) -> None:
        # written into every export.bin that clients download: catch a typo before it is signed
        if not isinstance(self.region, str) or not REGION.match(self.region):
            raise InputError(f"region must be 2-16 letters, digits or '-' (e.g. VN), got {self.region!r}")
        if self.max_keys_per_file < 1 or self.retention_days < 1:
            raise InputError("max_keys_per_file and retention_days must be at least 1")


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


def _write_atomic(path: Path, data: bytes, *, sync_directory: bool = True) -> None:
    """Write ``path`` whole or not at all, and durably: the file's bytes reach the disk before the
    rename, and the rename before the export takes its keys out of the queue, so a power loss never
    leaves an empty batch file whose keys count as published.  Without ``sync_directory`` the
    caller syncs the directory itself (once for all of an export's files) before recording them."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_directory:
        _sync_directory(path.parent)


def _sync_directory(path: Path) -> None:
    """Make the renames into directory ``path`` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_index(storage: Storage, out_dir: Path, now: float, retention_days: int = RETENTION_DAYS) -> list[str]:
    """Rewrite ``index.txt``: one batch file name per line, oldest first, last 14 days only."""
    since = now - retention_days * DAY_SECONDS
    names = [b.name for b in storage.batches(since) if (out_dir / b.name).is_file()]
    _write_atomic(out_dir / INDEX_FILE, "".join(f"{n}\n" for n in names).encode())
    return names


def export_batches(
    storage: Storage,
    signer: Signer,
    out_dir: str | Path,
    now: float,
    config: ExportConfig = ExportConfig(),
    rng: np.random.Generator | None = None,
) -> list[BatchRecord]:
    """Write every exportable key into new signed batches; returns the batches written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.max_keys_per_file < 1:
        raise ValueError("max_keys_per_file must be at least 1")
    rng = rng or np.random.default_rng(secrets.randbits(128))
    oldest = rolling_start(now) - config.retention_days * ROLLING_PERIOD
    new_keys, new_ids, new_revised = storage.pending_keys(max_end_interval=interval_number(now), min_start_interval=oldest)
    revised_keys, revised_ids, _ = storage.pending_revisions(min_start_interval=oldest)
    # one queue: new keys (as they stand: a revision before the first export is in its type), then
    # revisions of keys exported before (they go in ``revised_keys``)
    keys = np.concatenate([new_keys, revised_keys])
    ids = np.concatenate([new_ids, revised_ids])
    is_revision = np.r_[np.zeros(len(new_keys), bool), np.ones(len(revised_keys), bool)]
    carries_revision = np.r_[new_revised, np.ones(len(revised_keys), bool)]
    written: list[BatchRecord] = []
    try:
        if len(keys):
            # every key read, and every revision in a file, leave their queues when the files are recorded
            with storage.export_transaction(np.sort(new_ids), np.sort(ids[carries_revision])) as written:
                _write_batches(keys, is_revision, signer, out_dir, now, config, rng, written)
                _sync_directory(out_dir)  # every file's rename, before the transaction recording them commits
    except Exception:
        # nothing was recorded: the files written so far would only lie unlisted, their keys still queued
        for record in written:
            (out_dir / record.name).unlink(missing_ok=True)
        raise
    venue_files = export_venue_reports(storage, signer, out_dir, now, config, rng)
    removed = storage.purge(oldest, now - 2 * DAY_SECONDS)
    write_index(storage, out_dir, now, config.retention_days)
    remove_expired_files(storage, out_dir, now, config.retention_days)
    log.info(
        "exported %d keys and %d revisions in %d files, %d venue-warning files (%d expired keys purged)",
        len(new_keys), len(revised_keys), len(written), len(venue_files), removed,
    )
    return written + venue_files


def _write_batches(
    keys: np.ndarray,
    is_revision: np.ndarray,
    signer: Signer,
    out_dir: Path,
    now: float,
    config: ExportConfig,
    rng: np.random.Generator,
    written: list[BatchRecord],
) -> None:
    """Write ``keys`` (revisions where ``is_revision``) into signed files by UTC day, shuffled, at most
    ``max_keys_per_file`` each, every file durable when this returns; each file's record goes into
    ``written`` as it is handed to the writer (the caller removes them all if anything fails).

    One thread writes and fsyncs each file while the next is signed (zlib and fsync release the GIL):
    1M keys, 42 files, 0.1-0.3 s of fsyncs no longer add to the export."""
    with ThreadPoolExecutor(1, thread_name_prefix="bluezone-export-write") as writer:
        writes = []
        for record, data in _signed_batches(keys, is_revision, signer, now, config, rng):
            written.append(record)
            writes.append(writer.submit(_write_atomic, out_dir / record.name, data, sync_directory=False))
        for done in writes:
            done.result()


def _signed_batches(
    keys: np.ndarray, is_revision: np.ndarray, signer: Signer, now: float, config: ExportConfig, rng: np.random.Generator
) -> Iterator[tuple[BatchRecord, bytes]]:
    """Each batch file's record and signed zip, signed as they are asked for."""
    stamp = int(now)
    days = keys["rolling_start"] // ROLLING_PERIOD
    for day in np.unique(days):
        on_day = np.flatnonzero(days == day)
        on_day = on_day[rng.permutation(len(on_day))]
        n_files = -(-len(on_day) // config.max_keys_per_file)
        start_ts, end_ts = int(day) * DAY_SECONDS, (int(day) + 1) * DAY_SECONDS
        tag = secrets.token_hex(3)
        for i in range(n_files):
            chunk = on_day[i * config.max_keys_per_file : (i + 1) * config.max_keys_per_file]
            plain, revised = chunk[~is_revision[chunk]], chunk[is_revision[chunk]]
            name = f"{stamp}-{start_ts}-{tag}-{i + 1:04d}.zip"
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
            yield BatchRecord(name, now, start_ts, end_ts, i + 1, n_files, len(chunk)), data


#: A file an export writes (``<stamp>-<day start>-<tag>-NNNN.zip``, ``<stamp>-venues-<tag>-NNNN.zip``), or its
#: temporary copy before the rename (``.<name>.tmp``); ``stamp``: the Unix time of the export.
_WRITTEN_NAME = re.compile(r"^\.?(?P<stamp>\d{1,12})-(?:\d{1,12}|venues)-[0-9a-f]{6}-\d{4,}\.zip(?:\.tmp)?$")


def remove_expired_files(storage: Storage, out_dir: Path, now: float, retention_days: int = RETENTION_DAYS) -> int:
    """Delete the batch files that left the index: published keys and check-ins are kept 14 days,
    on disk too, as in the database (the server would otherwise serve them by name for good).

    Also the files of an export interrupted or killed between writing and recording them (unlisted,
    their keys exported again): by the export's time in their name, a day later than a recorded file
    of its day.  Not sooner: another exporter's files lie unrecorded too until it records them."""
    since = now - retention_days * DAY_SECONDS
    removed = 0
    recorded = storage.batches()
    for batch in recorded:
        path = out_dir / batch.name
        if batch.end_timestamp < since and path.is_file():
            path.unlink()
            removed += 1
    names = {batch.name for batch in recorded}
    for path in out_dir.iterdir():
        written = _WRITTEN_NAME.match(path.name)
        if written and path.name not in names and int(written["stamp"]) + DAY_SECONDS < since and path.is_file():
            path.unlink()
            removed += 1
    if removed:
        log.info("deleted %d batch file(s) older than %d days", removed, retention_days)
    return removed


def export_venue_reports(
    storage: Storage, signer: Signer, out_dir: Path, now: float, config: ExportConfig, rng: np.random.Generator
) -> list[BatchRecord]:
    """Write the check-ins (venue reports, fakes mixed in) not yet published into signed
    ``<stamp>-venues-<tag>-NNNN.zip`` files, shuffled, listed in the same index as key batches.

    One set of files per day of the reports, as key batches are cut per day of the keys: a file is
    listed and kept until 14 days after its day, so no check-in is published longer (a file of
    every day pending stayed 14 days after the export, its oldest check-ins 28 days after the visit)."""
    oldest_day = int(now // DAY_SECONDS) - config.retention_days
    by_day: dict[int, list[tuple[int, bytes]]] = {}
    for report_id, day, data in storage.pending_venue_reports(oldest_day):
        by_day.setdefault(day, []).append((report_id, data))
    per_file = min(config.max_keys_per_file, MAX_REPORTS_PER_FILE)
    records: list[BatchRecord] = []
    tag = secrets.token_hex(3)  # one per export, files numbered across its days: two days' tags could collide
    for day, pending in sorted(by_day.items()):
        order = rng.permutation(len(pending))
        n_files = -(-len(pending) // per_file)
        for i in range(n_files):
            chunk = [pending[j] for j in order[i * per_file : (i + 1) * per_file]]
            name = f"{int(now)}-venues-{tag}-{len(records) + 1:04d}.zip"
            reports = [ProtectedReport.from_bytes(data) for _, data in chunk]
            data = signed_venue_zip(reports, signer.private_key, signer.info, config.region, int(now // 3600))
            _write_atomic(out_dir / name, data)
            record = BatchRecord(name, now, day * DAY_SECONDS, (day + 1) * DAY_SECONDS, i + 1, n_files, len(chunk))
            try:
                storage.add_venue_batch(record, [report_id for report_id, _ in chunk])
            except Exception:  # not recorded (another export published them): the file would only lie unlisted
                (out_dir / name).unlink(missing_ok=True)
                raise
            records.append(record)
    return records
