"""A private PostgreSQL cluster for the key server's tests (``conftest.py``'s fixtures, and the tests of the cluster itself).

Not in conftest.py: a test importing ``from conftest`` got tests/venues' conftest when both folders were collected in
one run (both are the module ``conftest``), and three of these failed to import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_bin() -> Path | None:
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
