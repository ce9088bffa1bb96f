"""Fixtures for key server tests: node stores that met, a server on a virtual clock, PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for server_helpers.py, mock_exports.py, pg_cluster.py

from pg_cluster import PrivateCluster, pg_bin


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """A private PostgreSQL cluster for this session (this xdist worker); yields a base DSN.

    Skipped with the reason when the binaries are missing, except under CI=true, where
    the PostgreSQL tests must run and a missing server is a failure.
    """
    bindir = pg_bin()
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
