"""scripts/pg-dev-cluster.sh, the throwaway cluster docs/server.md has a health authority try PostgreSQL with."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pg_cluster import pg_bin

SCRIPT = Path(__file__).parents[2] / "scripts" / "pg-dev-cluster.sh"


@pytest.mark.slow
def test_a_second_start_says_the_url_again() -> None:
    """Run again to see the URL (it is printed once, at the start), `start` failed on the running cluster
    ('pg_ctl: could not start server', exit 1) and printed no URL (walk12). Now the same URL, exit 0."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL binaries not found (install Debian's postgresql to run these tests)")
    root = Path(tempfile.mkdtemp(prefix="bluezone-devpg-"))
    try:
        first = subprocess.run(["sh", str(SCRIPT), "start", str(root)], capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        assert first.stdout == f"postgresql://bluezone@/postgres?host={root}/sock\n"
        second = subprocess.run(["sh", str(SCRIPT), "start", str(root)], capture_output=True, text=True, timeout=300)
        assert second.returncode == 0 and second.stdout == first.stdout, second.stderr
    finally:
        subprocess.run(["sh", str(SCRIPT), "stop", str(root)], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
