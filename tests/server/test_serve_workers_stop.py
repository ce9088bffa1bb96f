"""`serve_workers` stopped as systemd stops a service: SIGTERM to every process of the group at once.

systemd's default KillMode (control-group) signals the workers together with the parent, and so does
Ctrl-C in a terminal (SIGINT to the foreground group).  The workers then end first, by themselves; the
parent must take that for the stop it was asked for (exit 0), not for a worker that died (exit 1, an
error line, and a unit left "failed").
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import free_port, until_it_answers

_SERVER = """
import contextlib, sys
from bluezone.server.serve import ServeSettings, serve_workers

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

@contextlib.contextmanager
def make_app(index):
    try:
        yield app
    finally:  # where `server run` closes the worker's database connection
        print(f"worker {index} closed its database", flush=True)

serve_workers(make_app, ServeSettings(port=int(sys.argv[1])), "test server", 2)
"""


def _read_until(proc: subprocess.Popen[bytes], output: bytes, marker: bytes, deadline: float) -> bytes:
    """``output`` with what ``proc`` prints until ``marker`` has come twice (once from each worker)."""
    while output.count(marker) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, output.decode()
        output += proc.stdout.read1(65536)  # type: ignore[union-attr]
    return output


@contextlib.contextmanager
def _running(script: str = _SERVER) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The two-worker server ``script`` on a free port, in a session of its own (so a signal can go to its whole
    group as systemd sends it), and its port; killed with its group at the end."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", script, str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("to", ["group", "parent"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_sent_to_the_whole_group_is_a_clean_stop(sig: signal.Signals, to: str) -> None:
    """Stopped as systemd stops it (the whole group) or by `kill` of the parent: exit 0, and each worker
    closes what its app opened (uvicorn 0.29+ raised the stop signal again once shut down, which killed
    each worker before `server run` closed its database connection)."""
    with _running() as (proc, port):
        until_it_answers(proc, f"http://127.0.0.1:{port}/")
        time.sleep(0.5)  # both workers serving
        if to == "group":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert "stopping the other workers" not in output
    assert sorted(re.findall(r"worker (\d) closed its database", output)) == ["0", "1"], output


_STOPPED_AS_IT_OPENS = _SERVER.replace(
    "    try:\n        yield app",
    "    try:\n        if index == 1:  # systemd's stop comes while this worker opens its database, before uvicorn runs\n"
    "            import os, signal; os.killpg(0, signal.SIGTERM)\n        yield app",
)


def test_a_stop_while_a_worker_opens_its_database_closes_it() -> None:
    """A SIGTERM to the group while a worker opens its app (its database connection), before uvicorn's handler
    is in place: the worker closes what it opened and the server stops cleanly (the default handler killed the
    worker there, its PostgreSQL connection cut: test_server_workers.py's check of the log, in CI)."""
    assert _STOPPED_AS_IT_OPENS != _SERVER
    with _running(_STOPPED_AS_IT_OPENS) as (proc, _):
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert "worker 1 closed its database" in output, output


def test_workers_end_with_their_parent_killed() -> None:
    """The parent killed (SIGKILL, the OOM killer) left its workers serving, orphans on the port: a new
    `server run` there failed 'port in use' while an unwatched exporter went on.  They follow it now."""
    with _running() as (proc, _):
        pids = _worker_pids(_read_until(proc, b"", b" of 2 serving", time.monotonic() + 60))
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids)


def _worker_pids(output: bytes) -> list[int]:
    """The workers' pids, from their "serving" lines."""
    return [int(p) for p in re.findall(r"\[(\d+)\] bluezone\.server\.serve: worker \d of 2 serving", output.decode())]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended and not yet reaped by init, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


_SLOW_TO_STOP = """
import asyncio, contextlib, sys
from bluezone.server.serve import ServeSettings, serve_workers

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                print("finishing its export", flush=True)
                await asyncio.sleep(120)  # an export under way when asked to stop
                await send({"type": "lifespan.shutdown.complete"})
                return

serve_workers(lambda index: contextlib.nullcontext(app), ServeSettings(port=int(sys.argv[1])), "test server", 2)
"""


def test_a_second_stop_kills_workers_still_finishing() -> None:
    """`kill` (to the parent only) while a worker is still finishing: the parent waits for it up to 30 s;
    asked a second time it kills the workers at once (a second signal changed nothing: 30 s)."""
    with _running(_SLOW_TO_STOP) as (proc, _):
        deadline = time.monotonic() + 60
        output = _read_until(proc, b"", b"serving", deadline)
        proc.send_signal(signal.SIGTERM)
        output = _read_until(proc, output, b"finishing its export", deadline)
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output += proc.communicate(timeout=15)[0]
        assert time.monotonic() - asked < 10 and proc.returncode == 0, output.decode()
        assert b"killed: asked again to stop" in output


_SLOW_TO_CLOSE = _SERVER.replace(
    '    finally:  # where `server run` closes the worker\'s database connection\n',
    '    finally:  # where `server run` closes the worker\'s database connection\n'
    '        print(f"worker {index} closing", flush=True)\n'
    '        import time; time.sleep(1.5)\n',
)


def test_a_stop_asked_again_while_a_worker_closes_waits_for_the_close() -> None:
    """systemd's SIGTERM to the whole group, then the parent's own to each worker (it terminates the workers it
    sees alive): one that came once uvicorn had shut down met the default handler and killed the worker before
    `server run` closed its database (PostgreSQL logged "unexpected EOF on client connection": srv21's
    test_server_workers caught it once in a full suite).  Here the second SIGTERM comes while each closes."""
    assert "closing" in _SLOW_TO_CLOSE
    with _running(_SLOW_TO_CLOSE) as (proc, port):
        deadline = time.monotonic() + 60
        output = _read_until(proc, b"", b" of 2 serving", deadline)
        pids = _worker_pids(output)
        for _ in range(4):  # (each connection to one of them)
            until_it_answers(proc, f"http://127.0.0.1:{port}/")
        time.sleep(0.5)  # both serving, under uvicorn's handlers
        os.killpg(proc.pid, signal.SIGTERM)
        output = _read_until(proc, output, b"closing", deadline)
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        output += proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output.decode()
    assert sorted(re.findall(r"worker (\d) closed its database", output.decode())) == ["0", "1"], output.decode()


_STOPPED_AS_IT_OPENS_SLOW_TO_CLOSE = _STOPPED_AS_IT_OPENS.replace(
    '    finally:  # where `server run` closes the worker\'s database connection\n',
    '    finally:  # where `server run` closes the worker\'s database connection\n'
    '        import os, time; print(f"worker {index} closing [{os.getpid()}]", flush=True); time.sleep(1.5)\n',
)


def test_a_stop_asked_again_while_a_worker_stopped_as_it_opens_closes_waits_for_the_close() -> None:
    """The same before uvicorn runs: systemd's SIGTERM while a worker opens its database, then the parent's own to it
    (within half a second: its terminate) while it closes met the handler of the first, which raised SystemExit again
    inside the close: its PostgreSQL connection cut (the window left by a0bcac4, wider on a loaded machine)."""
    assert "closing" in _STOPPED_AS_IT_OPENS_SLOW_TO_CLOSE
    with _running(_STOPPED_AS_IT_OPENS_SLOW_TO_CLOSE) as (proc, _):
        output = b""
        deadline = time.monotonic() + 60
        while not (closing := re.search(rb"worker 1 closing \[(\d+)\]", output)):
            assert proc.poll() is None and time.monotonic() < deadline, output.decode()
            output += proc.stdout.read1(65536)  # type: ignore[union-attr]
        os.kill(int(closing[1]), signal.SIGTERM)
        output += proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output.decode()
    assert b"worker 1 closed its database" in output, output.decode()
