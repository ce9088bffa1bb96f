"""`bluezone server run --workers N`: several processes on one port and one PostgreSQL, one exporter.

Each worker is a forked process with its own app and database connection; the first runs the
scheduled exports and the others never do (two exporters would cut every export in two).  On SQLite
the option is refused: one file takes one writer at a time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from server_helpers import connections_left, connections_open, free_port

from bluezone.cli import cli
from bluezone.crypto.intervals import rolling_start
from bluezone.keyformat.keyfile import publish_body
from bluezone.keyformat.keys import empty_keys


def test_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["server", "keygen", "--out", str(tmp_path / "k")], obj={}).exit_code == 0
    result = CliRunner().invoke(cli, [
        "server", "run", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(tmp_path / "k"),
        "--port", "0", "--workers", "2",
    ], obj={})
    assert result.exit_code == 2, result.output
    assert "--workers 2 needs PostgreSQL" in result.output and len(result.output.strip().splitlines()) == 1


def _start(postgres_dsn: str, tmp_path: Path, port: int, own_group: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bluezone.cli", "server", "run", "--server-db", postgres_dsn, "--port", str(port),
         "--signing-key-dir", str(tmp_path / "k"), "--export-dir", str(tmp_path / "e"), "--export-every", "1",
         "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=own_group,
    )


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.communicate()[0].decode())


def _upload(url: str, code: str, seed: int) -> int:
    rng = np.random.default_rng(seed)
    keys = empty_keys(2)
    keys["key"] = [rng.bytes(16) for _ in range(2)]
    keys["rolling_start"] = rolling_start(time.time()) - 144 * np.arange(2, 4)
    keys["rolling_period"] = 144
    with httpx.Client() as http:  # a new connection each: the kernel hands each to one worker
        return http.post(f"{url}/v1/publish", json=publish_body(keys, code)).status_code


def _exported(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(num_keys), 0) FROM batches").fetchone()[0])


def _waiting(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM export_queue").fetchone()[0])


@pytest.mark.slow
@pytest.mark.wall_clock
def test_two_workers_serve_one_port_and_only_one_exports(postgres_dsn: str, tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["server", "keygen", "--out", str(tmp_path / "k")], obj={}).exit_code == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(postgres_dsn, tmp_path, port)
    try:
        _wait_ready(proc, url)
        issue = ["server", "issue-code", "--server-db", postgres_dsn, "--signing-key-dir", str(tmp_path / "k"), "--json"]
        statuses = []
        for seed in range(40):
            code = json.loads(CliRunner().invoke(cli, issue, obj={}).stdout)["code"]
            statuses.append(_upload(url, code, seed))
        assert statuses == [200] * 40
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _waiting(postgres_dsn):
            time.sleep(0.2)  # until the schedule has exported every key
        time.sleep(3)  # and a few more ticks
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output  # stopped as asked
    workers = dict(re.findall(r"\[(\d+)\] bluezone\.server\.serve: worker (\d) of 2 serving", output))
    assert sorted(workers.values()) == ["0", "1"], output
    exporter = next(pid for pid, index in workers.items() if index == "0")
    exports = re.findall(r"\[(\d+)\] bluezone\.server\.exports: exported (\d+) keys", output)
    assert len(exports) >= 3 and {pid for pid, _ in exports} == {exporter}, output  # one exporter, every tick
    assert _exported(postgres_dsn) == 80  # every key once (the log lines are rate-limited: the database counts)
    served = set(re.findall(r"\[(\d+)\] bluezone\.server\.publish: published", output))
    assert served == set(workers), output  # both took uploads
    assert f"listening on {url} with 2 workers" in output


@pytest.mark.slow
@pytest.mark.wall_clock
def test_a_worker_that_dies_stops_the_server(postgres_dsn: str, tmp_path: Path) -> None:
    """Half a server (or one without its exporter) is not left running unnoticed: exit 1, systemd restarts it."""
    assert CliRunner().invoke(cli, ["server", "keygen", "--out", str(tmp_path / "k")], obj={}).exit_code == 0
    port = free_port()
    proc = _start(postgres_dsn, tmp_path, port)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        output = b""
        pids: list[str] = []
        while len(pids) < 2 and time.monotonic() < deadline:
            output += proc.stdout.read1(65536)  # type: ignore[union-attr]
            pids = re.findall(r"\[(\d+)\] bluezone\.server\.serve: worker \d of 2 serving", output.decode())
        os.kill(int(pids[1]), signal.SIGKILL)
        output += proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output.decode()
    assert "stopping the other workers" in output.decode()
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.slow
@pytest.mark.wall_clock
@pytest.mark.parametrize("to", ["group", "parent"])
def test_two_workers_stopped_close_their_connections(postgres_dsn: str, tmp_path: Path, to: str) -> None:
    """`server run --workers 2` on PostgreSQL stopped as systemd stops it (SIGTERM to the group) or by `kill` of
    the parent: exit 0, and every connection it opened closed, none cut.  This database's backends log at
    debug1, where PostgreSQL says "unexpected EOF on client connection" for a client gone without closing
    (a worker killed before `server run` closed its storage, as uvicorn 0.29+'s re-raised signal did)."""
    import psycopg

    assert CliRunner().invoke(cli, ["server", "keygen", "--out", str(tmp_path / "k")], obj={}).exit_code == 0
    database = postgres_dsn.split("?")[0].rsplit("/", 1)[1]
    log = Path(postgres_dsn.split("host=")[1]).parent / "log"  # the private cluster's (conftest.py)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {database} SET log_min_messages = 'debug1'")
    port = free_port()
    proc = _start(postgres_dsn, tmp_path, port, own_group=True)
    logged = log.stat().st_size
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        output = b""
        while output.count(b" of 2 serving") < 2 or not (tmp_path / "e" / "index.txt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, output.decode()
            output += proc.stdout.read1(65536)  # type: ignore[union-attr]
        assert connections_open(postgres_dsn) >= 2  # each worker's
        if to == "group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        output += proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output.decode()
    assert connections_left(postgres_dsn) == 0
    with log.open("rb") as f:
        f.seek(logged)
        cut = [line for line in f.read().decode(errors="replace").splitlines() if "unexpected EOF" in line]
    assert cut == [], cut
