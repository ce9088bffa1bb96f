"""A store on a read-only file system (a backup medium, an image of a device mounted read-only): every command
said "SQLite could not make a file it needs", exit 1, since SQLite reads a WAL store through a -shm file it makes
beside it.  Now commands that only read it read it (the file alone as immutable; through its -wal and -shm where
writes wait in them), a write says the file system is read-only in one line, exit 1, and a -wal without its -shm,
whose writes SQLite cannot read there, is said as such rather than read without them.

Each command runs in a mount namespace of its own (``unshare``), over a tmpfs mounted read-only there: nothing is
left mounted when it ends, and no root is needed where user namespaces are allowed (``unshare -r``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.errors import StoreReadOnlyError
from bluezone.keyformat.keyfile import write_keys_json
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.files import read_only_uri

DAY = 86_400
#: Mount a tmpfs at $RO, copy $FILES into it, remount it read-only, then run the command given.
MOUNTED = 'mount -t tmpfs -o size=64m tmpfs "$RO" && cp -p $FILES "$RO" && mount -o remount,ro "$RO" && exec "$@"'


def _unshare() -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", *([] if os.geteuid() == 0 else ["--map-root-user"])]


@pytest.fixture(scope="module")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip where no mount namespace with a tmpfs can be made (no unshare, no user namespaces, a container
    without CAP_SYS_ADMIN)."""
    where = tmp_path_factory.mktemp("probe")
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    probe = subprocess.run([*_unshare(), "sh", "-c", 'mount -t tmpfs tmpfs "$0" && mount -o remount,ro "$0"', str(where)],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"no read-only tmpfs in a mount namespace here: {probe.stderr.strip()}")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store (sightings of an F0's key, one check-in), the F0's keys, and two crashed writers' copies of
    it with a second check-in waiting in the WAL: one with its -wal and -shm, one with its -wal alone."""
    tmp = tmp_path_factory.mktemp("stores")
    tomorrow = (int(time.time()) // DAY + 1) * DAY  # the commands purge on the wall clock
    keys, sightings, _ = synthetic_data(40, 200, seed=3, planted=1, end_time=tomorrow, days=2)
    write_keys_json(keys, tmp / "keys.json")
    url = json.loads(CliRunner().invoke(cli, ["venue", "create", "--name", "Cafe", "--address", "Pho Hue",
                                              "--out", str(tmp / "cafe"), "--json"], obj={}).stdout)["url"]
    with SightingStore.open(tmp / "s.db") as store:
        store.add_sightings(sightings)
    visit = [dt.datetime.fromtimestamp(time.time() - hours * 3600, dt.UTC).isoformat(timespec="seconds") for hours in (2, 1)]
    done = CliRunner().invoke(cli, ["checkin", url, "--start", visit[0], "--end", visit[1], "--db", str(tmp / "s.db")], obj={})
    assert done.exit_code == 0, done.output
    for crashed in ("wal", "walonly"):
        (tmp / crashed).mkdir()
        shutil.copy(tmp / "s.db", tmp / crashed / "s.db")
        with SightingStore.open(tmp / crashed / "s.db") as store:
            store.add_checkin(b"w" * 16, b"p", "in the WAL", "street", time.time() - 600, time.time(), True, url, time.time())
            shutil.copy(tmp / crashed / "s.db", tmp / "copy.db")  # the files as a crash leaves them: the WAL not
            shutil.copy(tmp / crashed / "s.db-wal", tmp / "copy.db-wal")  # checkpointed into the file
            if crashed == "wal":
                shutil.copy(tmp / crashed / "s.db-shm", tmp / "copy.db-shm")
        for suffix in ("", "-wal", "-shm"):
            (tmp / crashed / f"s.db{suffix}").unlink(missing_ok=True)
            if (tmp / f"copy.db{suffix}").exists():
                (tmp / f"copy.db{suffix}").rename(tmp / crashed / f"s.db{suffix}")
    (tmp / "old").mkdir()  # a store holding a sighting past the 14 days, which no open on the mount can purge
    with SightingStore.open(tmp / "old" / "s.db") as store:
        store.add_sightings(sightings[:1])
        old = sightings[1:2].copy()
        old["time"] = time.time() - 20 * DAY
        store.add_sightings(old)
    return tmp


#: ``early-read DB``: whether a check's early reader (``EarlyRead``) read the store at DB, and what.
EARLY_READ = """
import sys
from pathlib import Path
from bluezone.proximity.store.heardread import EarlyRead
with EarlyRead(Path(sys.argv[2]), 2) as early:
    read = early.result()
print("none" if read is None else len({every[i:i + 16] for every, _ in read.blobs.parts for i in range(0, len(every), 16)}))
"""


def _on_read_only_mount(stores: Path, which: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bluezone ARGS`` with ``{db}`` the store ``which`` (its -wal and -shm too) on a read-only tmpfs."""
    source = stores / which if which else stores
    files = [str(p) for p in sorted(source.glob("s.db*"))] + [str(stores / "keys.json")]
    ro = stores / f"ro-{which or 'closed'}"
    ro.mkdir(exist_ok=True)
    command = [sys.executable, *(["-c", EARLY_READ] if args[0] == "early-read" else ["-m", "bluezone"]),
               *(a.replace("{ro}", str(ro)) for a in args)]
    return subprocess.run([*_unshare(), "sh", "-c", MOUNTED, "sh", *command], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RO": str(ro), "FILES": " ".join(files)})


@pytest.mark.usefixtures("mounts")
@pytest.mark.parametrize("which", ["", "wal"], ids=["closed", "with its -wal and -shm"])
def test_commands_that_only_read_read_it(stores: Path, which: str) -> None:
    status = _on_read_only_mount(stores, which, "status", "--db", "{ro}/s.db", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["sightings"] > 0
    checkins = _on_read_only_mount(stores, which, "checkins", "--db", "{ro}/s.db", "--json")
    assert checkins.returncode == 0, checkins.stderr
    assert len(json.loads(checkins.stdout)["checkins"]) == (2 if which else 1)  # the WAL's check-in read too
    check = _on_read_only_mount(stores, which, "check", "--keys", "{ro}/keys.json", "--db", "{ro}/s.db", "--json")
    assert check.returncode == 0, check.stderr
    assert len(json.loads(check.stdout)["exposures"]) >= 1
    assert "could not make a file" not in status.stderr + checkins.stderr + check.stderr


@pytest.mark.usefixtures("mounts")
@pytest.mark.parametrize("which", ["", "wal"], ids=["closed", "with its -wal and -shm"])
def test_a_checks_early_reader_reads_it_there(stores: Path, which: str) -> None:
    """A closed store it read nothing of there (opened as on a writable disk, a WAL store wants a -shm that cannot
    be made there), so the check read it only after its key file (one with its -wal and -shm it read, through them);
    a -wal without its -shm is left to the open, which says why."""
    with contextlib.closing(sqlite3.connect(read_only_uri(stores / which / "s.db"), uri=True)) as conn:  # (as it is)
        heard = conn.execute("SELECT COUNT(DISTINCT rpi) FROM sightings").fetchone()[0]
    done = _on_read_only_mount(stores, which, "early-read", "{ro}/s.db")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(heard)]
    assert _on_read_only_mount(stores, "walonly", "early-read", "{ro}/s.db").stdout.split() == ["none"]


@pytest.mark.usefixtures("mounts")
def test_rows_past_the_retention_are_said_once_with_what_deletes_them(stores: Path) -> None:
    """Each command said "retention purge on open postponed: cannot write to ...: ... commands that only read it
    (status, checkins, check) do ...", a full disk's words, whether or not the store held anything a purge deletes;
    a store holding nothing past the 14 days says nothing now."""
    old = _on_read_only_mount(stores, "old", "status", "--db", "{ro}/s.db", "--json")
    assert old.returncode == 0, old.stderr
    assert json.loads(old.stdout)["sightings"] == 1
    ro = stores / "ro-old" / "s.db"
    assert [line.partition(" WARNING ")[2] for line in old.stderr.splitlines()] == [
        f"bluezone.proximity.store: {ro} holds sightings older than 14 days: no command shows or matches them, but they"
        " stay in the file until an open that can write it deletes them (it is on a read-only file system: once it is"
        f" mounted read-write, `bluezone purge --db {ro}`)"
    ]
    recent = _on_read_only_mount(stores, "", "status", "--db", "{ro}/s.db")
    assert recent.returncode == 0 and recent.stderr == "", recent.stderr


@pytest.mark.usefixtures("mounts")
@pytest.mark.parametrize("store", ["s.db", "new/s.db"], ids=["the store there", "a new one"])
def test_run_says_the_file_system_is_read_only(stores: Path, store: str) -> None:
    """It said "cannot use PATH.lock as the store's lock: Read-only file system", exit 2 (a usage error, as for a
    path mistyped), and a new store's folder to make there "OSError: [Errno 30] ...", exit 1."""
    done = _on_read_only_mount(stores, "", "run", "--backend", "emulated:1", "--duration", "0.5", "--db", f"{{ro}}/{store}")
    assert done.returncode == 1, done.stderr
    db = stores / "ro-closed" / store
    readers = "; commands that only read it (status, checkins, check) do" if store == "s.db" else ""
    assert done.stderr.splitlines() == [
        f"Error: cannot run on {db}: it is on a read-only file system, where the daemon can write neither its sightings"
        f" nor its lock s.db.lock{readers}: to record, give --db a store in a writable folder"
    ]


@pytest.mark.usefixtures("mounts")
@pytest.mark.parametrize("command", ["purge", "checkin"])
def test_commands_that_write_say_the_file_system_is_read_only(stores: Path, command: str) -> None:
    args = ["purge"] if command == "purge" else ["checkin", json.loads((stores / "cafe" / "venue.json").read_text())["url"]]
    done = _on_read_only_mount(stores, "", *args, "--db", "{ro}/s.db")
    assert done.returncode == 1, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: cannot write to {stores}/ro-closed/s.db: it is on a read-only file system; commands that only read it"
        " (status, checkins, check) do: to change it, copy it into a writable folder and give the copy with --db"
    ]


@pytest.mark.usefixtures("mounts")
def test_a_wal_without_its_shm_is_said_not_read_without_its_writes(stores: Path) -> None:
    done = _on_read_only_mount(stores, "walonly", "checkins", "--db", "{ro}/s.db")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot read {stores}/ro-walonly/s.db: it is on a read-only file system, with writes not yet in it"
        " waiting in its s.db-wal and no s.db-shm, without which SQLite cannot read them there: copy the store and"
        " its -wal into a writable folder and give the copy with --db"
    ]


def test_the_uri_reads_what_the_files_hold(stores: Path) -> None:
    """Where no mount can be made too: the file alone as immutable, a -wal with its -shm read read-only through
    them, a -wal alone refused (each read here on a writable copy, which SQLite reads the same way)."""
    for which, how, checkins in (("", "?immutable=1", 1), ("wal", "?mode=ro", 2)):
        uri = read_only_uri(stores / which / "s.db")
        assert uri.endswith(how)
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM checkins").fetchone() == (checkins,)
    with pytest.raises(StoreReadOnlyError, match="no s.db-shm"):
        read_only_uri(stores / "walonly" / "s.db")
