"""``bluezone run``: real radio by default, the emulated radio kept out of the real database,
one start-up line naming radio and database, and a live count before the first status line."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.errors import ConfigError, NotAStoreError, StoreInUseError
from bluezone.proximity.daemon import DaemonStats
from bluezone.proximity.runner import one_daemon_per_store, run_daemon
from bluezone.proximity.store import SightingStore, default_db_path
from bluezone.proximity.store.daemonlock import daemon_runs_on, lock_path

from .conftest import NOON


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "bluezone"


def test_run_defaults_to_the_real_radio_as_the_readme_says() -> None:
    backend = next(p for p in cli.commands["run"].params if p.name == "backend")
    assert backend.default == "auto"


def test_the_emulated_radio_never_writes_into_the_default_database(data_home: Path) -> None:
    clock = VirtualClock(NOON)
    lines: list[str] = []
    stats = clock.run(run_daemon("emulated", None, DaemonConfig(), 120, clock=clock, on_start=lines.append,
                                 handle_signals=False))
    assert stats.sightings_stored > 0
    assert not default_db_path().exists()
    with SightingStore.open(data_home / "emulated.db", create=False) as store:
        assert store.count_sightings() == stats.sightings_stored
    assert lines == [
        f"bluezone daemon: radio emulated:self with 2 invented neighbour(s), database {data_home / 'emulated.db'}; "
        "a status line every 60 s (Ctrl-C stops)"
    ]


def test_the_emulated_radio_refuses_the_default_database_by_name(data_home: Path) -> None:
    clock = VirtualClock(NOON)
    with pytest.raises(ConfigError, match="does not write into the real database"):
        clock.run(run_daemon("emulated:1", default_db_path(), None, 60, clock=clock, handle_signals=False))
    assert not default_db_path().exists()


def test_a_live_count_fills_the_first_status_interval(tmp_path: Path) -> None:
    clock = VirtualClock(NOON)
    ticks: list[tuple[int, float]] = []
    status: list[str] = []

    def progress(stats: DaemonStats, seconds: float) -> None:
        ticks.append((stats.adverts_received, seconds))

    clock.run(run_daemon("emulated:1", tmp_path / "x.db", DaemonConfig(), 150, clock=clock, on_status=status.append,
                         on_progress=progress, handle_signals=False))
    assert [s for _, s in ticks] == [5.0 * k for k in range(1, 12)]  # 5 ... 55 s, then the status lines
    heard = [n for n, _ in ticks]
    assert heard == sorted(heard) and heard[-1] > 0
    assert len(status) == 2


def test_run_names_its_radio_and_database_first(data_home: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--duration", "0.5"], obj={})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("bluezone daemon: radio emulated:self with 1 invented neighbour(s), database ")
    assert str(data_home / "emulated.db") in lines[0]
    assert lines[-1].startswith("stopped: ") and len(lines) == 2  # piped: no live count
    assert not default_db_path().exists()


@pytest.mark.parametrize("source", ["env", "config"])
def test_a_configured_database_is_the_real_one_too(data_home: Path, tmp_path: Path, source: str) -> None:
    # BLUEZONE_DB (or [run] db in config.toml) names the user's everyday database: the emulated
    # radio's invented neighbours went into it (only the built-in default path was kept out)
    real = tmp_path / "mine" / "real.db"
    env = {"BLUEZONE_DB": str(real)}
    if source == "config":
        config = tmp_path / "config.toml"
        config.write_text(f'[run]\ndb = "{real}"\n')
        env = {"BLUEZONE_CONFIG": str(config)}
    result = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--duration", "0.5"], obj={}, env=env)
    assert result.exit_code == 0, result.output
    assert f"database {real.with_name('emulated.db')};" in result.output
    assert not real.exists() and not default_db_path().exists()


def test_a_real_radio_uses_the_configured_database() -> None:
    from bluezone.proximity.runner import database_for

    assert database_for("bluez:hci0", None, real=Path("/x/real.db")) == Path("/x/real.db")
    assert database_for("emulated", None, real=Path("/x/real.db")) == Path("/x/emulated.db")


def test_a_second_daemon_on_one_store_is_refused(tmp_path: Path) -> None:
    """Two daemons on one store send its key and hear each other: its owner would be its own F1."""
    db = tmp_path / "own" / "bluezone.db"
    clock = VirtualClock(NOON)
    with one_daemon_per_store(db):
        with pytest.raises(StoreInUseError, match=rf"another bluezone daemon \(pid {os.getpid()}\) runs on .*own"):
            clock.run(run_daemon("emulated:1", db, DaemonConfig(), 60, clock=clock, handle_signals=False))
        assert not db.exists()  # refused before the store or the radio opened
    stats = clock.run(run_daemon("emulated:1", db, DaemonConfig(), 60, clock=clock, handle_signals=False))
    assert stats.sightings_stored > 0  # the first one gone, the lock is free again
    assert (db.parent.stat().st_mode & 0o777) == 0o700 and (db.with_name("bluezone.db.lock").stat().st_mode & 0o777) == 0o600


def test_a_second_run_command_on_one_store_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with one_daemon_per_store(db):
        result = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--db", str(db), "--duration", "0.5"], obj={})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: another bluezone daemon (pid {os.getpid()}) runs on {db}: two daemons on one store send one key and "
        "hear each other; stop it, or give this one another --db"
    ]


def test_a_lock_holding_no_pid_is_said_as_an_unknown_pid(tmp_path: Path) -> None:
    """The holder's pid is read from the lock and printed: a lock written with a terminal escape sequence
    (a shared folder's planted lock, held open) reached the terminal."""
    db = tmp_path / "x.db"
    lock = tmp_path / "x.db.lock"
    lock.write_bytes(b"\x1b]0;owned\x07\x1b[2J12\n")
    with open(lock, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreInUseError) as refused, one_daemon_per_store(db):
            pass
    assert "(pid ?)" in str(refused.value) and "\x1b" not in str(refused.value)


def test_the_lock_is_released_however_the_daemon_ends(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with pytest.raises(RuntimeError), one_daemon_per_store(db):
        raise RuntimeError("radio gone")
    with one_daemon_per_store(db):  # free again
        pass


def test_a_lock_that_is_a_link_is_refused_and_what_it_names_is_untouched(tmp_path: Path) -> None:
    """attack12: the lock was opened through a symlink and truncated: a link planted as <db>.lock (a store
    given in a shared folder) emptied whatever file it named and wrote the daemon's pid into it."""
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me\n")
    db = tmp_path / "x.db"
    db.with_name("x.db.lock").symlink_to(victim)
    with pytest.raises(NotAStoreError, match="x.db.lock as the store's lock"), one_daemon_per_store(db):
        pass
    assert victim.read_text() == "keep me\n"


def test_a_lock_that_is_a_hard_link_is_refused_and_what_it_names_is_untouched(tmp_path: Path) -> None:
    """A hard link passes O_NOFOLLOW and is a regular file: a <db>.lock hard-linked to the store itself
    (or any file of the owner) was truncated and given the daemon's pid, the store destroyed."""
    db = tmp_path / "x.db"
    SightingStore.open(db).close()
    kept = db.read_bytes()
    os.link(db, db.with_name("x.db.lock"))
    with pytest.raises(NotAStoreError, match="x.db.lock"), one_daemon_per_store(db):
        pass
    assert db.read_bytes() == kept


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_lock_that_is_no_file_is_one_line_exit_2(tmp_path: Path, kind: str) -> None:
    """A directory or a FIFO as <db>.lock was 'IsADirectoryError' / 'OSError: [Errno 22]', exit 1 (systemd retried)."""
    db = tmp_path / "x.db"
    lock = db.with_name("x.db.lock")
    lock.mkdir() if kind == "directory" else os.mkfifo(lock)
    result = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--db", str(db), "--duration", "0.5"], obj={})
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "x.db.lock" in result.output and "remove it" in result.output


def test_a_store_under_a_file_is_one_line_that_says_no_remove_it(tmp_path: Path) -> None:
    """attack28: '--db /etc/hostname/x.db' said 'cannot use /etc/hostname/x.db.lock as the store's lock: Not a
    directory; remove it': there is nothing there to remove."""
    (tmp_path / "file").write_text("")
    db = tmp_path / "file" / "x.db"
    result = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--db", str(db), "--duration", "0.5"], obj={})
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Not a directory" in result.output, result.output
    assert "remove it" not in result.output


def test_a_folder_without_locks_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NFS mounted without a lock manager answers flock with ENOLCK: that was an OSError, exit 1, retried for ever."""
    import errno
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(NotAStoreError, match="cannot lock .*x.db.lock .*local disk"), one_daemon_per_store(tmp_path / "x.db"):
        pass


def test_a_store_reached_through_a_link_is_the_same_store(tmp_path: Path) -> None:
    """attack12: the lock sat beside the name given, so a daemon on the store's real path (a hand-started run)
    and one on a link to it (the service's default path, linked to a larger disk) both started: the close
    contact with itself the lock is there to prevent."""
    real = tmp_path / "disk" / "bluezone.db"
    real.parent.mkdir()
    real.touch()
    (tmp_path / "home").mkdir()
    link = tmp_path / "home" / "bluezone.db"
    link.symlink_to(real)
    with one_daemon_per_store(real):
        with pytest.raises(StoreInUseError), one_daemon_per_store(link):
            pass
    folder = tmp_path / "data"
    folder.symlink_to(real.parent)  # a linked folder too
    with one_daemon_per_store(folder / "bluezone.db"):
        with pytest.raises(StoreInUseError), one_daemon_per_store(real):
            pass


def test_a_full_disk_that_refuses_the_locks_pid_still_holds_the_lock_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a full disk the lock file is made (an inode) but the pid written into it is not (a block):
    `bluezone run` said 'Error: OSError: [Errno 28] No space left on device', exit 1 (systemd restarting it
    every few seconds), though the daemon keeps what a full store refuses for later (test_full_disk.py)."""
    import errno

    def disk_full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", disk_full)
    db = tmp_path / "x.db"
    with one_daemon_per_store(db):
        with pytest.raises(StoreInUseError, match=r"\(pid \?\)"), one_daemon_per_store(db):
            pass
    result = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--db", str(db), "--duration", "0.5"], obj={})
    assert result.exit_code == 0, result.output
    with SightingStore.open(db, create=False) as store:
        assert store.daily_keys()  # the daemon ran: its key is stored


def test_a_daemon_starting_while_a_command_asks_whether_one_runs_is_not_refused(tmp_path: Path) -> None:
    """A command's open asks whether a daemon runs (``daemon_runs_on``) by taking the lock shared and letting it go:
    a daemon starting between those two system calls must not be refused as a second daemon."""
    db = tmp_path / "x.db"
    assert not daemon_runs_on(db)  # no lock file: no daemon
    with one_daemon_per_store(db):
        assert daemon_runs_on(db)  # (this process's own daemon too)
    assert not daemon_runs_on(db)
    probe = os.open(lock_path(db), os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH)  # a probe caught between its two calls
    threading.Timer(0.02, os.close, [probe]).start()
    with one_daemon_per_store(db):
        assert daemon_runs_on(db)
    assert not daemon_runs_on(db)


def test_a_lock_file_that_is_a_fifo_is_no_daemon_to_a_command(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    os.mkfifo(lock_path(db))
    assert not daemon_runs_on(db)  # (without blocking on it)


@pytest.mark.parametrize("written", [b"", b"\x1b[31mred\n", b"\xff\xfe", b"999999999\n", b"-1\n", b"1" * 64])
def test_a_held_lock_with_no_readable_pid_is_believed(tmp_path: Path, written: bytes) -> None:
    """The holder's note is only read to tell a stopped daemon (``/proc``'s state T): a note that is empty, not ASCII,
    an escape sequence or a pid of no process reads as not stopped, so the lock is believed (the command leaves the
    rewrite to that daemon) and nothing is raised."""
    db = tmp_path / "x.db"
    lock = lock_path(db)
    lock.write_bytes(written)
    holder = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert daemon_runs_on(db)
    finally:
        os.close(holder)
    assert not daemon_runs_on(db)


def test_a_store_path_with_a_tilde_has_its_lock_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """attack28: no command expands '~' in --db (a config file's or a quoted one), so '~/x.db' is a folder '~' where
    the command runs; the daemon's lock (and run's check for a store it makes) read it as $HOME/x.db: a daemon held
    the lock of a store it never opened (a command there left its purge to it), and run could remove $HOME/x.db."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    done = CliRunner().invoke(cli, ["run", "--backend", "emulated:1", "--db", "~/x.db", "--duration", "60"],
                              obj={"clock": VirtualClock(NOON)})
    assert done.exit_code == 0, done.output
    assert (work / "~" / "x.db").is_file() and (work / "~" / "x.db.lock").is_file()
    assert lock_path("~/x.db") == work / "~" / "x.db.lock"
    assert not any(home.iterdir())
