"""Ctrl-C, wherever it comes, ends ``bluezone`` with one line and exit code 130 (128 + SIGINT, what a shell
reports), once everything under it has unwound: no worker, thread or connection left, the store intact.

It said click's "Aborted!" and exit 1 (a script took it for the command's own failure) while the config
was read, a traceback while the CLI's modules loaded, and a two-job check interrupted in its last steps
crashed (SIGSEGV) ~15 % of the time, closing its store under a count still running and leaving -wal and
-shm beside it.  Real SIGINTs go to the whole process group, as a terminal sends them, at points seen
from outside (the store opened, the workers forked, the daemon on air)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import bluezone.cliconfig as cliconfig
from bluezone.cli import cli
from bluezone.keyformat.export import signed_export_zip
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.store import SightingStore
from bluezone.server.signing import keygen

DAY = 86_400


def _raise_ctrl_c(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_while_the_config_is_read_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any command runs: click's "Aborted!", exit 1, before."""
    monkeypatch.setattr(cliconfig, "load_defaults", _raise_ctrl_c)
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 130 and result.stderr.split() == ["Interrupted"], result.stderr


def test_ctrl_c_in_a_command_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import bluezone.proximity.store as store_package

    monkeypatch.setattr(store_package.SightingStore, "open", _raise_ctrl_c)
    result = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 130 and result.stderr.split() == ["Interrupted"], result.stderr


#: The console script (``bluezone.__main__``) with a Ctrl-C arriving as click is imported.
CTRL_C_AS_CLICK_LOADS = """
import os, signal, sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, CtrlC())
sys.argv = ["bluezone", "--help"]
from bluezone.__main__ import main
main()
"""


def test_ctrl_c_while_the_cli_loads_is_one_line_and_130(tmp_path: Path) -> None:
    """A traceback from the import of click (~0.03 s after start), before."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_AS_CLICK_LOADS], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 130 and done.stderr.split() == ["Interrupted"] and done.stdout == "", done.stderr


#: The same, with the Ctrl-C landing in a weak reference's callback as module ARGV[1] loads, as it can in importlib's
#: own (``_get_module_lock.<locals>.cb``, run as each import's lock is freed); the command line after it.
CTRL_C_IN_A_WEAKREF_CALLBACK = """
import os, signal, sys, weakref
loading = sys.argv[1]
class Lock:
    pass
def freed(_ref):
    os.kill(os.getpid(), signal.SIGINT)
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == loading:
            lock = Lock()
            ref = weakref.ref(lock, freed)
            del lock  # the callback runs here
        return None
sys.meta_path.insert(0, CtrlC())
sys.argv = ["bluezone", *sys.argv[2:]]
from bluezone.__main__ import main
main()
"""


@pytest.mark.parametrize("loading", [
    ["click", "--help"],  # the CLI's modules
    ["bluezone.proximity.cli", "status", "--help"],  # the module of the command named
])
def test_ctrl_c_in_a_callback_while_the_cli_loads_is_one_line_and_130(tmp_path: Path, loading: list[str]) -> None:
    """Python cannot raise out of a weak reference's callback: it said "Exception ignored in: <function ...>",
    the Ctrl-C was lost and the command ran on to exit 0 (1 in 400 random Ctrl-Cs of a check, in importlib's)."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_A_WEAKREF_CALLBACK, *loading], capture_output=True, text=True, cwd=tmp_path
    )
    assert (done.returncode, done.stderr.split(), done.stdout) == (130, ["Interrupted"], ""), done.stderr


#: The console script with a Ctrl-C once the CLI has loaded, before click's main has begun (``cli.main``'s first steps).
CTRL_C_BEFORE_CLICK_S_MAIN = """
import os, signal, sys
import bluezone.cli
def cli(**_kwargs):
    os.kill(os.getpid(), signal.SIGINT)
bluezone.cli.cli = cli
sys.argv = ["bluezone", "--help"]
from bluezone.__main__ import main
main()
"""


def test_ctrl_c_before_click_s_main_is_one_line_and_130(tmp_path: Path) -> None:
    """A traceback and death by SIGINT (-2), before: the CLI's ``main`` ran outside any ``try``."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_BEFORE_CLICK_S_MAIN], capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stderr.split(), done.stdout) == (130, ["Interrupted"], ""), done.stderr


#: ``python -m bluezone`` (what CPython's note of an unhandled Ctrl-C ends by SIGINT) with the Ctrl-C landing in code
#: run from a string, as namedtuple, dataclasses and enum make methods: ``loading`` as the CLI's modules load,
#: ``running`` in a command.
CTRL_C_IN_A_STRING_S_CODE = """
import os, signal, sys
when = sys.argv[1]
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click" and when == "loading":
            exec("os.kill(os.getpid(), signal.SIGINT)")
        return None
sys.meta_path.insert(0, CtrlC())
sys.argv = ["bluezone", "--help"]
if when == "running":
    import bluezone.cli
    @bluezone.cli.cli.command("interrupted")
    def interrupted() -> None:
        exec("os.kill(os.getpid(), signal.SIGINT)")
    sys.argv = ["bluezone", "interrupted"]
from bluezone.__main__ import main
main()
"""


@pytest.mark.parametrize("when", ["loading", "running"])
def test_ctrl_c_in_code_run_from_a_string_is_130_under_python_m(tmp_path: Path, when: str) -> None:
    """"Interrupted", then death by SIGINT (-2), before: CPython noted the KeyboardInterrupt that left the string's
    code as unhandled, caught though it was (3 in 60 random Ctrl-Cs of a check as its modules loaded)."""
    (tmp_path / "ctrl_c_in_a_string.py").write_text(CTRL_C_IN_A_STRING_S_CODE)
    done = subprocess.run(
        [sys.executable, "-m", "ctrl_c_in_a_string", when], capture_output=True, text=True, cwd=tmp_path
    )
    assert (done.returncode, done.stderr.split(), done.stdout) == (130, ["Interrupted"], ""), done.stderr


def _env(home: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BLUEZONE_")}, "HOME": str(home), "XDG_CONFIG_HOME": str(home)}


def _start(args: list[str], home: Path) -> subprocess.Popen[str]:
    """``bluezone ARGS`` in a process group of its own (a terminal's foreground job), SIGINT not blocked."""
    return subprocess.Popen(
        [sys.executable, "-m", "bluezone", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=home, env=_env(home), start_new_session=True,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, []),  # (a mask an earlier test left)
    )


def _until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Wait, looking from outside, until ``condition`` holds (the process still running)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.002)


def _open_on(pid: int, path: Path) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(path)):
                return True
        except OSError:
            continue
    return False


def _has_children(pid: int) -> bool:
    try:
        return any(Path(f"/proc/{pid}/task/{t}/children").read_text().split() for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return False


def _group_gone(pgid: int) -> bool:
    """No process of the group left (a worker reaped once its parent has gone)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def _ctrl_c(proc: subprocess.Popen[str]) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGINT)  # to the whole group, as Ctrl-C at a terminal
    try:
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _intact(db: Path) -> int:
    """The store's sightings, once SQLite finds every page sound; no -wal or -shm left beside it."""
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    conn = sqlite3.connect(db)  # (read-write: the last to close removes the -wal it made)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return int(conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def day_and_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A signed export large enough for a two-job check to stream it to its workers for a while (200,000
    keys, ~1 s), a store of 3 days."""
    tmp = tmp_path_factory.mktemp("ctrl_c")
    tomorrow = (int(time.time()) // DAY + 1) * DAY  # the check purges on the wall clock: nothing here
    keys, sightings, _ = synthetic_data(200_000, 30_000, seed=3, planted=5, end_time=tomorrow, days=3)
    signer = keygen(tmp / "signing")
    keys_path = tmp / "keys.zip"
    keys_path.write_bytes(signed_export_zip(keys, signer.private_key, signer.info, region="VN"))
    db = tmp / "store.db"
    with SightingStore.open(db) as store:
        store.add_sightings(sightings)
    return keys_path, db, len(sightings)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", ["store open", "workers forked"])
def test_a_check_interrupted_says_one_line_exits_130_and_leaves_nothing(
    day_and_store: tuple[Path, Path, int], tmp_path: Path, point: str
) -> None:
    keys_path, db, rows = day_and_store
    before = sorted(os.listdir(db.parent))
    for _ in range(3):  # each point a few times: where the signal lands within it varies
        proc = _start(["check", "--keys", str(keys_path), "--db", str(db), "--json", "--jobs", "2"], tmp_path)
        if point == "store open":
            _until(lambda: _open_on(proc.pid, db), proc, "opened the store")
        else:
            _until(lambda: _has_children(proc.pid), proc, "forked its workers")
        out, err = _ctrl_c(proc)
        assert proc.returncode == 130 and err.split() == ["Interrupted"] and out == "", (proc.returncode, err, out[:200])
        assert _group_gone(proc.pid), "a worker outlived the check"
        assert sorted(os.listdir(db.parent)) == before  # no -wal, -shm or temporary file left
        assert _intact(db) == rows


@pytest.mark.wall_clock
@pytest.mark.timeout(120)
def test_the_daemon_interrupted_stops_cleanly_and_its_store_holds_what_it_said(tmp_path: Path) -> None:
    """Ctrl-C is how the foreground daemon is stopped (docs/proximity.md): it flushes what it heard, says
    so in one line and exits 0, as it does on systemd's SIGTERM."""
    db = tmp_path / "d.db"
    proc = _start(["run", "--backend", "emulated:2", "--db", str(db)], tmp_path)
    assert proc.stdout is not None and proc.stdout.readline().startswith("bluezone daemon: radio emulated")
    _until(lambda: db.exists() and _stored(db) > 0, proc, "stored a sighting")
    out, err = _ctrl_c(proc)
    assert proc.returncode == 0 and "Traceback" not in err and "Interrupted" not in err, err
    (stopped,) = [line for line in out.splitlines() if line.startswith("stopped: ")]
    assert _group_gone(proc.pid)
    assert _intact(db) == int(stopped.split()[1])  # "stopped: N sightings stored, ..."


def _stored(db: Path) -> int:
    try:
        conn = sqlite3.connect(db, timeout=0)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


class _CtrlCBeforeTheLoop:
    """The clock seam's loop, interrupted before it ran anything: a Ctrl-C between the command making its coroutine
    and the loop taking it (asyncio.run still setting up), seen once in 45 real SIGINTs 0.43 s into `bluezone run`."""

    def now(self) -> float:
        return 1_796_400_000.0

    def run(self, coro: object) -> None:
        raise KeyboardInterrupt


@pytest.mark.parametrize("command", [["run", "--backend", "emulated:1", "--duration", "60"],
                                     ["venue", "beacon", "--backend", "emulated", "--duration", "60"]])
def test_ctrl_c_before_the_loop_runs_a_command_s_coroutine_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """It said "Interrupted", then, as Python ended, "RuntimeWarning: coroutine 'run_daemon' was never awaited" and
    a tracemalloc hint: three lines more than one."""
    import gc
    import warnings

    if command[0] == "run":
        command = [*command, "--db", str(tmp_path / "d.db")]
    else:
        made = CliRunner().invoke(cli, ["venue", "create", "--name", "Café", "--address", "1 Phố Huế", "--out", str(tmp_path / "v")])
        assert made.exit_code == 0, made.output
        command = [*command, str(tmp_path / "v")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, command, obj={"clock": _CtrlCBeforeTheLoop()})
        code, stderr = result.exit_code, result.stderr
        del result
        gc.collect()
    assert code == 130 and stderr.split() == ["Interrupted"], stderr
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


@pytest.mark.parametrize(("command", "loop_run"), [
    (["doctor", "--scan-seconds", "0", "--db", "{tmp}/d.db"], "asyncio.runners:run"),  # (real time: BlueZ waited for)
    (["calibrate", "--radio", "emulated", "--reference", "Pixel 4", "--duration", "60", "--yes", "--config", "{tmp}/d.toml"],
     "bluezone.clock:VirtualClock.run"),  # (the emulated radio on a virtual clock of its own)
])
def test_ctrl_c_as_the_loop_starts_doctor_s_and_calibrate_s_coroutine_is_one_line(
    tmp_path: Path, command: list[str], loop_run: str
) -> None:
    """The same for the commands whose loop is not the CLI's clock's: a Ctrl-C as the loop starts, raised by a profile
    function at the loop's first step (``sys.setprofile``: an exception it raises comes out of the call it sees)."""
    import gc
    import warnings
    from importlib import import_module
    from operator import attrgetter
    from types import FrameType

    module, _, name = loop_run.partition(":")
    loop_s_first_step = attrgetter(name)(import_module(module)).__code__

    def ctrl_c_as_it_starts(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call" and frame.f_code is loop_s_first_step:
            sys.setprofile(None)
            raise KeyboardInterrupt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.setprofile(ctrl_c_as_it_starts)
        try:
            result = CliRunner().invoke(cli, [arg.format(tmp=tmp_path) for arg in command], obj={})
        finally:
            sys.setprofile(None)
        code, stderr = result.exit_code, result.stderr
        del result
        gc.collect()
    assert code == 130 and stderr.split() == ["Interrupted"], stderr
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
