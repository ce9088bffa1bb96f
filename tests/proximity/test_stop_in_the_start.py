"""A stop (SIGTERM, Ctrl-C) while the daemon starts is the clean stop a later one gives, wherever the start is: the
signals are taken before the store opens, the open (and its purge) runs in a thread so that the loop takes the stop at
once, and the stop ends the open's purge, rolled back.  Before, a SIGTERM while a 1M-sighting store opened (its
purge: 1.6 s with 3 days to delete, at load 15) killed the process: exit 143, no "stopped" line."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.backends.emulated import Air
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

from silent_radio import SilentRadio
from store_rows import rows_in_file

from .conftest import NOON, random_sightings

EXPIRED = 3000  # sightings past the retention: a purge of some 10^6 SQLite steps, past the first look at a stop


def _store_with_expired_rows(path: Path, now: float) -> None:
    with SightingStore.open(path, purge_now=now - 20 * DAY_SECONDS) as store:
        store.add_sightings(random_sightings(EXPIRED, now - 20 * DAY_SECONDS, 3600, seed=1))
        store.add_sightings(random_sightings(100, now - DAY_SECONDS, 3600, seed=2))


def test_a_stop_during_the_purge_rolls_it_back_and_reads_still_keep_the_retention(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    _store_with_expired_rows(path, NOON)
    stopping = threading.Event()
    stopping.set()
    with SightingStore.open(path, purge_now=NOON, stopping=stopping) as store:
        assert store.purged_on_open is not None and store.purged_on_open["stopped"]
        assert store.purged_on_open["sightings_deleted"] == 0
        assert rows_in_file(path, "sightings") == EXPIRED + 100  # nothing deleted: the next purge's
        assert store.count_sightings() == 100  # (reads keep the 14 days all the same)
        assert store.purge(NOON)["sightings_deleted"] == EXPIRED  # without a stop, the next one deletes them
    assert rows_in_file(path, "sightings") == 100


def test_a_daemon_stopped_before_it_runs_begins_nothing(tmp_path: Path) -> None:
    clock = VirtualClock(NOON)
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    daemon = Daemon(Air(clock, 1).radio("me", (0.0, 0.0)), store, clock)
    daemon.stop()  # (a SIGTERM while the store opened)
    stats = clock.run(daemon.run())
    assert stats.rpi_rotations == 0 and daemon.key is None and store.count_daily_keys() == 0
    assert store.daemon_state() is None  # no report of a run that never was
    store.close()


# The child: `bluezone run` whose store's open gets SIGTERM as its purge begins (the purge goes on once the loop has
# taken it, as a signal landing in the purge's first instant).
CHILD = textwrap.dedent("""
    import os, signal, sys
    from bluezone.proximity.store import SightingStore

    real = SightingStore.purge

    def purge(self, *args, stopping=None, **kwargs):
        if not getattr(purge, "sent", False):
            purge.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
            if stopping is not None:
                assert stopping.wait(60)
        return real(self, *args, stopping=stopping, **kwargs)

    SightingStore.purge = purge
    from bluezone.cli import main
    sys.argv = ["bluezone", "run", "--backend", "emulated:1", "--db", sys.argv[1]]
    main()
""")


@pytest.mark.wall_clock
def test_sigterm_as_the_open_purges_is_a_clean_stop_and_the_store_intact(tmp_path: Path) -> None:
    path = tmp_path / "me.db"
    _store_with_expired_rows(path, time.time())
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)  # was -15: killed by the signal
    assert "stopped: 0 sightings stored, 0 malformed, 0 dropped, 0 RPI(s) advertised" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    assert rows_in_file(path, "sightings") == EXPIRED + 100  # the purge rolled back, the store as it was
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM daily_keys").fetchone() == (0,)  # no key made, none sent
    conn.close()


def test_a_stop_while_the_radio_opens_ends_the_run_and_closes_the_radio(tmp_path: Path) -> None:
    """attack27: `bluezone run --backend bumble:tcp-client:...` on a silent listener waited in the radio's open for
    ever, deaf to the stop (SIGTERM again is the same stop: only SIGKILL ended it)."""
    clock = VirtualClock(NOON)
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    radio = SilentRadio(Air(clock, 1).radio("me", (0.0, 0.0)))
    daemon = Daemon(radio, store, clock)  # type: ignore[arg-type]

    async def main() -> object:
        running = asyncio.ensure_future(daemon.run())
        await radio.opening.wait()
        daemon.stop()
        async with asyncio.timeout(5):
            return await running

    try:
        stats = asyncio.run(main())
        assert radio.closed == 1 and stats == daemon.stats and store.daily_keys() == []
    finally:
        store.close()


@pytest.mark.parametrize("stored_before", [False, True])
def test_a_run_whose_radio_never_opens_leaves_no_store_it_made(tmp_path: Path, stored_before: bool) -> None:
    """user27: `bluezone run` with no usable Bluetooth left an empty store at the default path, which `status` then
    reported as a daemon's (0 sightings) instead of "no sighting database".  A store there before stays."""
    import socket

    from bluezone.errors import RadioUnavailableError
    from bluezone.proximity.runner import run_daemon

    path = tmp_path / "me.db"
    if stored_before:
        _store_with_expired_rows(path, time.time())
    with socket.socket() as closed:  # a port nobody listens on: the transport's connect is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(RadioUnavailableError, match="cannot open bumble transport"):
        asyncio.run(run_daemon(f"bumble:tcp-client:127.0.0.1:{port}", path, handle_signals=False))
    assert path.exists() == stored_before
    assert not any(tmp_path.glob("me.db-*"))  # (no -wal or -shm either)


class _SlowToOpen(SilentRadio):
    """A radio whose open ends after ``seconds`` of the clock (None: never), as a controller slow to answer its
    power-on (bumble gives it 10 s)."""

    def __init__(self, radio: object, seconds: float | None) -> None:
        super().__init__(radio)
        self.seconds = seconds

    async def open(self) -> None:
        if self.seconds is None:
            await super().open()
        await asyncio.sleep(self.seconds)
        await self._radio.open()  # type: ignore[attr-defined]

    async def close(self) -> None:
        self.closed += 1
        await self._radio.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("opens_after", [None, 3.0])
def test_the_duration_counts_from_the_runs_start_the_radios_open_included(tmp_path: Path, opens_after: float | None) -> None:
    """`run --duration 5` on a radio that takes 10 s to answer (or never does) ended 5 s after it opened (or
    never, but for a stop): the duration now counts from the run's start, the open included."""
    clock = VirtualClock(NOON)
    store = SightingStore.open(tmp_path / "me.db", purge_now=NOON)
    radio = _SlowToOpen(Air(clock, 1).radio("me", (0.0, 0.0)), opens_after)
    daemon = Daemon(radio, store, clock)  # type: ignore[arg-type]
    try:
        stats = clock.run(daemon.run(5.0))
        assert clock.now() == NOON + 5.0  # (was NOON + 8 when it opened at 3 s; never ended when it did not open)
        assert radio.closed == 1 and stats == daemon.stats
        assert len(store.daily_keys()) == (opens_after is not None)  # (opened at 3 s: it ran its last 2 s)
    finally:
        store.close()


@pytest.mark.parametrize("stored_before", [False, True])
def test_run_duration_ends_a_run_whose_radio_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored_before: bool
) -> None:
    """The same through `bluezone run`: exit 0 at 5 s with the stop's line (before, only a signal ended it).  The
    store the run made holds nothing and goes, as after a radio that failed (attack28: it stayed, and `status` read
    it as a daemon's, 0 sightings); a store there before stays."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.proximity.backends import register_radio, registry

    monkeypatch.setattr(registry, "_RADIOS", dict(registry._RADIOS))
    clock = VirtualClock(NOON)
    radios: list[SilentRadio] = []

    def silent(spec: str, **options: object) -> object:
        radios.append(SilentRadio(Air(clock, 1).radio("me", (0.0, 0.0))))
        return radios[-1]

    register_radio("silent", silent)  # type: ignore[arg-type]
    path = tmp_path / "me.db"
    if stored_before:
        _store_with_expired_rows(path, NOON)
    done = CliRunner().invoke(cli, ["run", "--backend", "silent", "--db", str(path), "--duration", "5"],
                              obj={"clock": clock})
    assert done.exit_code == 0, done.output
    assert "stopped: 0 sightings stored, 0 malformed, 0 dropped, 0 RPI(s) advertised" in done.output
    assert clock.now() == NOON + 5.0 and radios[0].closed == 1
    assert path.exists() == stored_before and not any(tmp_path.glob("me.db-*"))


class _RefusesOnCue(SilentRadio):
    """A radio whose open waits for ``cue``, then fails as a controller that never powered on."""

    def __init__(self, radio: object, cue: asyncio.Event) -> None:
        super().__init__(radio)
        self.cue = cue

    async def open(self) -> None:
        from bluezone.errors import RadioUnavailableError

        self.opening.set()
        await self.cue.wait()
        raise RadioUnavailableError("no controller answered")


def test_a_store_another_command_wrote_while_the_radio_opened_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """attack28: a first run's store is removed when its radio never opens and it holds no sighting nor key; a
    check-in `bluezone checkin` wrote there meanwhile (bumble's power-on has 10 s) went with it.  A store holding
    anything stays."""
    from bluezone.errors import RadioUnavailableError
    from bluezone.proximity.backends import register_radio, registry
    from bluezone.proximity.runner import run_daemon

    monkeypatch.setattr(registry, "_RADIOS", dict(registry._RADIOS))
    path = tmp_path / "me.db"
    radios: list[_RefusesOnCue] = []

    def refusing(spec: str, **options: object) -> object:
        radios.append(_RefusesOnCue(Air(VirtualClock(NOON), 1).radio("me", (0.0, 0.0)), asyncio.Event()))
        return radios[-1]

    register_radio("refusing", refusing)  # type: ignore[arg-type]

    async def main() -> None:
        running = asyncio.ensure_future(run_daemon("refusing", path, handle_signals=False))
        while not radios or not radios[0].opening.is_set():
            await asyncio.sleep(0.01)
        other = SightingStore.open(path, purge_now=time.time())  # another command: `bluezone checkin`
        try:
            other.add_checkin(b"\x01" * 16, b"poster", "Cafe", "1 Street", time.time(), time.time() + 3600, False,
                              "qr", time.time())
        finally:
            other.close()
        radios[0].cue.set()
        with pytest.raises(RadioUnavailableError, match="no controller answered"):
            await running

    asyncio.run(main())
    assert path.exists() and rows_in_file(path, "checkins") == 1



# The child: `bluezone run` sent SIGTERM (or SIGHUP) as it loads its modules, before the daemon's stop is in place (its
# config read: the first step after its imports), then `main`'s end.
LOADING = textwrap.dedent("""
    import os, signal, sys
    import bluezone.config

    real, sent = bluezone.config.load_config, getattr(signal, sys.argv[2])

    def load_config(*args, **kwargs):
        os.kill(os.getpid(), sent)
        return real(*args, **kwargs)

    bluezone.config.load_config = load_config
    from bluezone.cli import main
    sys.argv = ["bluezone", "run", "--backend", "emulated:1", "--db", sys.argv[1], *sys.argv[3:]]
    main()
""")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_as_run_loads_is_its_clean_stop(tmp_path: Path, sig: str) -> None:
    """Before, a SIGTERM in `run`'s first ~0.8 s (its imports, at load 8) ended it by the signal (exit 143; SIGHUP 129),
    where every later one is the clean stop: SIGTERMs at random moments of its first second killed it up to 965 ms in,
    now up to 275 ms (Python's start and the CLI's imports, before `run`'s first step; load 8)."""
    path = tmp_path / "me.db"
    done = subprocess.run([sys.executable, "-c", LOADING, str(path), sig], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)  # was -15 (-1): killed by the signal
    assert "stopped: 0 sightings stored, 0 malformed, 0 dropped, 0 RPI(s) advertised" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    assert not path.exists()  # (the store it made holds nothing, no key made or sent: removed, as any such run's)


def test_a_stop_signal_noted_as_run_loads_that_no_stop_takes_ends_it_as_before(tmp_path: Path) -> None:
    """A usage error before the daemon's stop is in place (a config file that is no TOML): the SIGTERM noted meanwhile
    ends the process as it would have, by the signal, not hidden behind the error's exit 2."""
    config = tmp_path / "daemon.toml"
    config.write_text("x = [\n")
    done = subprocess.run([sys.executable, "-c", LOADING, str(tmp_path / "me.db"), "SIGTERM", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -15, (done.returncode, done.stderr)
