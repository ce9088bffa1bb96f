"""A test session's private PostgreSQL cluster does not outlive the session, even one killed outright (kill -9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pg_cluster import PrivateCluster, pg_bin


def _running(process: Path) -> bool:
    """Whether the process of /proc/PID runs (a zombie does not: init may take its time to reap it)."""
    try:
        return "\nState:\tZ" not in (process / "status").read_text()
    except FileNotFoundError:
        return False


def test_the_cluster_of_a_session_killed_outright_is_stopped_and_deleted() -> None:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (install Debian's postgresql to run these tests)")
    import psycopg

    session = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a pytest worker, say
    try:
        cluster = PrivateCluster(bindir, session.pid)
        postmaster = Path("/proc") / (cluster.root / "data" / "postmaster.pid").read_text().split()[0]
        with psycopg.connect(cluster.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        session.kill()
        session.wait()
        assert cluster.reaper.wait(timeout=60) == 0
        assert not _running(postmaster) and not cluster.root.exists()
    finally:
        if session.poll() is None:
            session.kill()
        cluster.close()
