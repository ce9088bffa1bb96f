"""Fixtures for key server tests: node stores that met, a server on a virtual clock, PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for server_helpers.py, mock_exports.py

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_bin() -> Path | None:
    if os.environ.get("BLUEZONE_NO_POSTGRES"):  # behave as on a machine without PostgreSQL
        return None
    for d in PG_BIN_DIRS:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found else None


#: room the cluster needs in /dev/shm: a database a test (postgres_dsn), ~11 MB each, ~2 GB for the whole suite
CLUSTER_IN_MEMORY = 4 << 30


def _cluster_parent() -> str | None:
    """/dev/shm (tmpfs) where it has room, else the temp dir.  Each test's database is a copy of template1
    (~11 MB, ~300 files); deleting the suite's ~180 of them took 74 s on disk (load 7, 05:53), the last
    test's teardown (205 s in a serial run at load 5-10), and 2.3 s on tmpfs.  Dropping each database
    after its test cost more (DROP DATABASE waits for a checkpoint: 235 s for 180)."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= CLUSTER_IN_MEMORY:
            return str(shm)
    except OSError:
        pass
    return None


class PrivateCluster:
    """A PostgreSQL cluster on a unix socket in a temp dir of its own (``dsn``), stopped and deleted by ``close``, or
    by its reaper (``pg_reaper.py``) once process ``owner`` is gone, however it ended (kill -9 too)."""

    def __init__(self, bindir: Path, owner: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bluezone-pg-", dir=_cluster_parent()))
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as postgres
            shutil.chown(self.root, "postgres")
            shutil.chown(sock, "postgres")
            prefix = ["runuser", "-u", "postgres", "--"]
        self._stop = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        # started first: a session killed while the cluster starts leaves nothing either
        self.reaper = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("pg_reaper.py")), str(owner), str(self.root), *self._stop],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.dsn = f"postgresql://bluezone@/postgres?host={sock}"
        env = {**os.environ, "LC_ALL": "C"}
        try:
            subprocess.run(
                [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bluezone", "-E", "UTF8",
                 "--no-sync"],
                check=True, capture_output=True, env=env, timeout=120,
            )
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(self.root / "log"), "-o",
                 f"-k {sock} -c listen_addresses= -c fsync=off", "start"],
                check=True, capture_output=True, env=env, timeout=120,
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        subprocess.run(self._stop, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
        self.reaper.kill()  # nothing left for it to do
        self.reaper.wait()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """A private PostgreSQL cluster for this session (this xdist worker); yields a base DSN.

    Skipped with the reason when the binaries are missing, except under CI=true, where
    the PostgreSQL tests must run and a missing server is a failure.
    """
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL binaries not found (install Debian's postgresql to run these tests)")
    try:
        cluster = PrivateCluster(bindir, os.getpid())
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        message = f"could not start a private PostgreSQL cluster: {exc} {detail.decode(errors='replace')[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield cluster.dsn
    finally:
        cluster.close()


@pytest.fixture
def postgres_dsn(postgres_cluster: str) -> str:
    """A fresh database in the private cluster for one test."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_cluster, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_cluster.replace("/postgres?", f"/{name}?")


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The same storage tests over SQLite and a real PostgreSQL."""
    from bluezone.server.storage import open_storage

    if request.param == "sqlite":
        s = open_storage(tmp_path / "server.db")
    else:
        s = open_storage(request.getfixturevalue("postgres_dsn"))
    try:
        yield s
    finally:
        s.close()
