"""What ``bluezone check --keys ZIP`` imports before its work, measured by issue 17 as serial time:
with the compiled helper and no ``--server-key`` nothing of ``cryptography`` is imported before the
store's read begins (the daily keys' HKDF, the ciphers, the export's signature verification and the
helper's probe did, ~8 ms); with one job a check that finds nothing never imports it, with more its
AES is imported while the store is read (the exposures' AEMs).  ``multiprocessing`` (~8-12 ms) is
imported only for more than one job, once the store's thread reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.crypto.conftest import require_native

from bluezone.keyformat.export import signed_export_zip
from bluezone.matching.benchmark import synthetic_data
from bluezone.proximity.store import SightingStore
from bluezone.server.signing import keygen

CHECK_THEN_MODULES = """
import json, sys
from bluezone.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_a_one_job_check_that_finds_nothing_imports_no_cryptography(tmp_path: Path) -> None:
    require_native()
    keys, sightings, _ = synthetic_data(2_000, 5_000, seed=3, planted=0)
    signer = keygen(tmp_path / "signing")
    zip_path = tmp_path / "keys.zip"
    zip_path.write_bytes(signed_export_zip(keys, signer.private_key, signer.info, region="VN"))
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=float(sightings["time"].max())) as store:
        store.add_sightings(sightings)
    for jobs in ("1", "2"):
        args = ["check", "--keys", str(zip_path), "--db", str(db), "--json", "--jobs", jobs]
        out = subprocess.run(
            [sys.executable, "-c", CHECK_THEN_MODULES, *args], capture_output=True, text=True, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        )
        report = json.loads(out.stdout)
        assert report["keys"] == 2_000 and report["exposures"] == [], out.stderr
        loaded = json.loads(out.stderr.strip().splitlines()[-1])
        assert "bluezone.matching.check" in loaded and "bluezone_native" in loaded
        # with more jobs its AES is imported while the store is read, to be ready for the exposures' AEMs
        assert bool([m for m in loaded if m.startswith("cryptography")]) == (jobs == "2"), f"--jobs {jobs}"
        assert jobs != "1" or "multiprocessing" not in loaded


def test_what_a_check_imports_before_its_store_is_read_holds_no_cryptography_and_no_multiprocessing() -> None:
    code = "import sys, bluezone.cli, bluezone.cliconfig, bluezone.matching.cli, bluezone.matching.check; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "bluezone.matching.check" in loaded and "numpy" in loaded
    assert not sorted(m for m in loaded if m.startswith(("cryptography", "multiprocessing", "concurrent.futures.process")))
