"""What an operator (or a monitoring job) asks of a running key server: is the exporter keeping up, when
did the last export write a file, how many codes went out.  ``bluezone server status``.

Read from the database alone, so it works wherever ``issue-code`` does (any machine that reaches
PostgreSQL), and tells a stopped exporter from a quiet day: keys whose validity ended long ago and
are still queued mean no export ran, whatever ``/healthz`` (liveness only) says.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from collections.abc import Iterable
from dataclasses import dataclass, field

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.keyformat.batch_names import ROLLUP_FILE
from bluezone.server.codes import REPORT_TYPES
from bluezone.printable import printable_line
from bluezone.server.exports import INDEX_FILE, Embargo, embargoed
from bluezone.server.publish import EVERYBODY, PublishConfig
from bluezone.server.storage import Storage

RETENTION_SECONDS = 14 * DAY_SECONDS
#: What ``server status`` names during a guessing alarm: the IPv6 prefix an ISP (or a hosting provider) is
#: given, 65,536 /48s, each with a failed-try budget of its own (docs/server.md, "What guessing buys").
NETWORK_PREFIX = 32
#: ... and the IPv4 block it names: 65,536 addresses, each with a budget of its own (IPv4 has no shared one:
#: a mobile network's subscribers share a pool of addresses behind carrier-grade NAT)
IPV4_NETWORK_PREFIX = 16

#: Keys exportable for longer than this mean the exporter is not running (it runs every 3600 s by default,
#: so a key may wait an hour for the next export).
LATE_AFTER_SECONDS = 5400


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="minutes")


@dataclass(frozen=True)
class ServerStatus:
    """The key server's state as its database holds it, at ``now``."""

    now: float
    overdue_keys: int  # validity ended, not exported yet
    overdue_since: float | None  # when the first of them became exportable
    waiting: Embargo  # still valid: exported once their validity ends
    files_14_days: int  # export files (keys and check-ins) written in the last 14 days
    last_file_at: float | None
    codes_issued_24h: dict[str, int]
    codes_used_24h: dict[str, int]
    late_after: float = LATE_AFTER_SECONDS
    failed_code_tries: int = 0  # from everybody, in the current window of the failed-try budgets (an hour)
    guessing_alarm: int = PublishConfig.guessing_alarm
    rollup_files_14_days: int = 0  # of files_14_days: roll-ups, each in place of an export day's files
    codes_revoked_24h: dict[str, int] = field(default_factory=dict)  # `server revoke-code` in the last 24 h
    #: the IPv6 /32 whose /48s failed most in the window: (network, failed tries, /48s), None if none did
    busiest_network: tuple[str, int, int] | None = None
    #: the IPv4 /16 whose addresses failed most in the window: (network, failed tries, addresses), None if none did
    busiest_ipv4_network: tuple[str, int, int] | None = None
    #: queued revisions no file may carry (one carried already, or undone): the next export drops them
    stale_revisions: int = 0
    revisions_dropped: int = 0  # such rows the exports have dropped so far (each with a warning in their log)
    export_dir: str | None = None  # where exports go (on record since the first: ``exportdir``), None before it
    #: what this machine has there: "checked" (an index.txt), else a key of ``NOT_CHECKED_HERE``; None: none on record
    export_dir_here: str | None = None
    #: files of the last 14 days on record that are not in ``export_dir`` (no node gets their keys); None: not
    #: checked (no directory on record, or no index.txt there on this machine)
    missing_files: tuple[str, ...] | None = None

    @property
    def exporter_late(self) -> bool:
        return self.overdue_since is not None and self.now - self.overdue_since > self.late_after

    @property
    def being_guessed(self) -> bool:
        """Failed codes past the alarm level: somebody is guessing (each client now gets fewer tries)."""
        return self.failed_code_tries >= self.guessing_alarm

    @property
    def ok(self) -> bool:
        """Nothing for the operator to do (``server status`` exits 1 otherwise)."""
        return not (self.exporter_late or self.being_guessed or self.missing_files)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "exporter_late": self.exporter_late,
            "failed_code_tries": self.failed_code_tries,
            "being_guessed": self.being_guessed,
            "overdue_keys": self.overdue_keys,
            "overdue_since": _iso(self.overdue_since),
            "waiting": self.waiting.as_dict(),
            "files_14_days": self.files_14_days,
            "rollup_files_14_days": self.rollup_files_14_days,
            "last_file_at": _iso(self.last_file_at),
            "codes_issued_24h": self.codes_issued_24h,
            "codes_used_24h": self.codes_used_24h,
            "codes_revoked_24h": self.codes_revoked_24h,
            "stale_revisions": self.stale_revisions,
            "revisions_dropped": self.revisions_dropped,
            "export_dir": self.export_dir,
            "export_dir_here": self.export_dir_here,
            "missing_files": None if self.missing_files is None else list(self.missing_files),
            "busiest_network": None if self.busiest_network is None else dict(
                zip(("network", "failed_code_tries", "sites"), self.busiest_network)
            ),
            "busiest_ipv4_network": None if self.busiest_ipv4_network is None else dict(
                zip(("network", "failed_code_tries", "addresses"), self.busiest_ipv4_network)
            ),
        }

    def lines(self) -> list[str]:
        if self.exporter_late:
            minutes = int((self.now - self.overdue_since) // 60) if self.overdue_since is not None else 0
            export = (f"LATE: {self.overdue_keys} key(s) exportable for {minutes} min are not exported"
                      " (is the exporter running? see the log of `server run --export-every` or the cron job)")
        elif self.overdue_keys:
            export = f"ok: {self.overdue_keys} key(s) go out with the next export"
        elif self.waiting.keys:  # "no key waits" above "1 key(s) wait until their validity ends" read as a contradiction
            export = "ok: no key is exportable yet"
        else:
            export = "ok: no key waits for an export"
        last = _iso(self.last_file_at) or "none"
        issued = ", ".join(f"{n} {kind}" for kind, n in self.codes_issued_24h.items() if n) or "none"
        used = ", ".join(f"{n} {kind}" for kind, n in self.codes_used_24h.items() if n) or "none"
        revoked = ", ".join(f"{n} {kind}" for kind, n in self.codes_revoked_24h.items() if n)
        out = [
            f"exports: {export}",
            f"export files of the last 14 days: {self.files_14_days}"
            + (f" ({self.rollup_files_14_days} of them roll-ups)" if self.rollup_files_14_days else "")
            + f", the last written {last}",
            f"codes in the last 24 h: issued {issued}; used {used}" + (f"; revoked {revoked}" if revoked else ""),
        ]
        if self.waiting.keys:
            out.insert(1, self.waiting.sentence())
        out.insert(-1, self._export_dir_line())
        if self.stale_revisions or self.revisions_dropped:
            out.append(f"revisions: {self.stale_revisions} queued revision(s) already carried by a file or undone (the"
                       f" next export drops them), {self.revisions_dropped} dropped so far: a defect, please report it")
        if self.being_guessed:
            out.append(f"GUESSING: {self.failed_code_tries} failed verification codes within the hour (alarm at"
                       f" {self.guessing_alarm}): each client now gets fewer tries; issue long codes, not --short,"
                       " until it stops")
            if self.busiest_network is not None:
                network, tries, sites = self.busiest_network
                out.append(f"GUESSING: {tries} of them from {network} ({sites} /48s of one provider): if none of your"
                           " users is there (a hosting provider's), block it at the firewall or ask its abuse contact")
            if self.busiest_ipv4_network is not None:
                network, tries, addresses = self.busiest_ipv4_network
                out.append(f"GUESSING: {tries} of them from {network} ({addresses} IPv4 addresses): if none of your"
                           " users is there (a hosting provider's), block it at the firewall or ask its abuse contact")
        else:
            out.append(f"failed verification codes within the hour: {self.failed_code_tries}")
        return out


    def _export_dir_line(self) -> str:
        if self.export_dir is None:
            return "export directory: none on record yet (the first export records its --export-dir)"
        where = printable_line(self.export_dir)
        if self.missing_files is None:
            return (f"export directory: {where} {NOT_CHECKED_HERE[self.export_dir_here or 'absent']}: its files are not"
                    " checked here (run status on the machine that exports)")
        if not self.missing_files:
            return f"export directory: {where}"
        return (f"MISSING: {len(self.missing_files)} export file(s) of the last 14 days on record are not in {where}"
                f" (the first: {printable_line(self.missing_files[0])}): index.txt leaves them out, so no node gets"
                " their keys; copy them there from where they were written (an export into another --export-dir),"
                " and the next export lists them")


def server_status(
    storage: Storage, now: float, late_after: float = LATE_AFTER_SECONDS, guessing_alarm: int = PublishConfig.guessing_alarm
) -> ServerStatus:
    """The state ``bluezone server status`` reports (reads only)."""
    queued, first_end, _ = storage.embargoed_keys(-1)  # every queued key, and the earliest end of validity
    waiting = embargoed(storage, now)
    files = storage.batches(now - RETENTION_SECONDS)
    day_ago = now - DAY_SECONDS
    overdue = queued - waiting.keys
    stale, dropped = storage.stale_revisions()
    export_dir, here, missing = check_export_dir(storage, now - RETENTION_SECONDS)
    return ServerStatus(
        now=now,
        overdue_keys=overdue,
        overdue_since=None if not overdue or first_end is None else float(first_end * INTERVAL_SECONDS),
        waiting=waiting,
        files_14_days=len(files),
        rollup_files_14_days=sum(1 for b in files if ROLLUP_FILE.fullmatch(b.name)),
        last_file_at=max((b.created_at for b in files), default=None),
        codes_issued_24h={kind: storage.count_codes(t, issued_since=day_ago) for kind, t in REPORT_TYPES.items()},
        codes_used_24h={kind: storage.count_codes(t, used_since=day_ago) for kind, t in REPORT_TYPES.items()},
        codes_revoked_24h={kind: storage.count_codes(t, revoked_since=day_ago) for kind, t in REPORT_TYPES.items()},
        late_after=late_after,
        failed_code_tries=storage.count_failures(now - PublishConfig.failure_window, EVERYBODY),
        guessing_alarm=guessing_alarm,
        busiest_network=_busiest(storage, "ipv6", now - PublishConfig.failure_window, 6),
        busiest_ipv4_network=_busiest(storage, "ipv4", now - PublishConfig.failure_window, 4),
        stale_revisions=stale,
        revisions_dropped=dropped,
        export_dir=export_dir,
        export_dir_here=here,
        missing_files=None if missing is None else tuple(missing),
    )


#: What ``server status`` says of the export directory on record where this machine has no index.txt in it (its
#: files are checked only in one that has: ``export_dir_here`` is then "checked").
NOT_CHECKED_HERE = {
    "absent": "does not exist on this machine",
    "empty": "is empty on this machine",
    "no index": "has no index.txt on this machine",
    "unreadable": "cannot be read on this machine",
}


def check_export_dir(storage: Storage, since: float) -> tuple[str | None, str | None, list[str] | None]:
    """The export directory on record, what this machine has there (``ServerStatus.export_dir_here``), and the names
    of the files recorded since ``since`` that are not in it (the index leaves them out: no node gets their keys);
    None for the names unless it holds an ``index.txt`` here: ``server status`` runs wherever the database is
    reached, and a ``server run --export-every 0`` on another machine makes an empty directory of the same name,
    which is not the one served.  Absent and empty are said apart from each other and from a directory checked."""
    recorded = storage.export_dir()
    if recorded is None:
        return None, None, None
    folder = Path(recorded)
    try:
        if (folder / INDEX_FILE).is_file():
            return recorded, "checked", [b.name for b in storage.batches(since) if not (folder / b.name).is_file()]
        if not folder.is_dir():
            return recorded, "absent", None
        return recorded, "no index" if any(folder.iterdir()) else "empty", None
    except PermissionError:
        return recorded, "unreadable", None


def _busiest(storage: Storage, kind: str, since: float, version: int) -> tuple[str, int, int] | None:
    """``busiest_block`` of the database's busiest blocks, read further while every block read is no address:
    client texts a proxy passed on (``999.1.2.3``) with more tries than the real block must not hide it."""
    limit = 8
    while True:
        blocks = storage.busiest_blocks(kind, since, limit)
        found = busiest_block(blocks, version)
        if found is not None or len(blocks) < limit:
            return found
        limit *= 8


def busiest_block(blocks: Iterable[tuple[str, int, int]], version: int = 6) -> tuple[str, int, int] | None:
    """The first of ``blocks`` (``Storage.busiest_blocks``: key, tries, clients; most tries first) that is a
    provider's block, as (network, tries, clients): an IPv6 /32 (key ``2001:db8``; ``version`` 6) or an IPv4
    /16 (key ``198.51``; 4).  A client text that is no address (``999.1.2.3``, from a proxy's header) makes no
    block and is skipped.  No budget is kept per /32 or /16 (one customer of a national provider would lock out
    all its other customers' uploads): an operator decides whether to block it."""
    for key, tries, clients in blocks:
        try:
            network: ipaddress.IPv4Network | ipaddress.IPv6Network = (
                ipaddress.IPv4Network(f"{key}.0.0/{IPV4_NETWORK_PREFIX}") if version == 4
                else ipaddress.IPv6Network(f"{key}::/{NETWORK_PREFIX}")
            )
        except ValueError:
            continue
        return str(network), tries, clients
    return None
