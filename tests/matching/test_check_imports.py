"""What ``bluezone check --keys ZIP`` imports before its work, measured by issue 17 as serial time:
with the compiled helper and no ``--server-key`` nothing of ``cryptography`` is imported before the
store's read begins (the daily keys' HKDF, the ciphers, the export's signature verification and the
helper's probe did, ~8 ms); with one job a check that finds nothing never imports it, with more its
AES is imported while the workers derive (the exposures' AEMs; test_check_serial_start.py).  ``multiprocessing`` (~8-12 ms) is
imported only for more than one job, once the store's thread reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tests.crypto.conftest import require_native

from bluezone.keyformat.export import signed_export_zip
from bluezone.keyformat.keyfile import write_keys_json
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


def signed_zip_and_store(tmp_path: Path, keys: np.ndarray, sightings: np.ndarray) -> tuple[Path, Path]:
    """A signed export zip of ``keys`` (the form of a real day's file) and a store of ``sightings``."""
    signer = keygen(tmp_path / "signing")
    zip_path = tmp_path / "keys.zip"
    zip_path.write_bytes(signed_export_zip(keys, signer.private_key, signer.info, region="VN"))
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=float(sightings["time"].max())) as store:
        store.add_sightings(sightings)
    return zip_path, db


def test_a_one_job_check_that_finds_nothing_imports_no_cryptography(tmp_path: Path) -> None:
    require_native()
    keys, sightings, _ = synthetic_data(2_000, 5_000, seed=3, planted=0)
    zip_path, db = signed_zip_and_store(tmp_path, keys, sightings)
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
        # with more jobs its AES is imported while the workers derive, to be ready for the exposures' AEMs
        assert bool([m for m in loaded if m.startswith("cryptography")]) == (jobs == "2"), f"--jobs {jobs}"
        assert jobs != "1" or "multiprocessing" not in loaded


def test_what_a_check_imports_before_its_store_is_read_holds_no_cryptography_and_no_multiprocessing() -> None:
    code = "import sys, bluezone.cli, bluezone.cliconfig, bluezone.matching.cli, bluezone.matching.check; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "bluezone.matching.check" in loaded and "numpy" in loaded
    assert not sorted(m for m in loaded if m.startswith(("cryptography", "multiprocessing", "concurrent.futures.process")))


#: Imported by a check's start (the steps one thread does before its store's thread reads) only for other
#: commands or for rarer paths: hashlib (the Python derivation's HKDF), tempfile (a counter off Linux),
#: difflib (a mistyped variable), tomllib (a settings file, --set), importlib.resources (the scorer's
#: table, now read beside its module), concurrent.futures (the store's thread is a plain thread),
#: shutil (a full disk's free space; ~2.5 ms with bz2 and lzma, the twenty-second session).
NOT_BEFORE_THE_STORE_IS_READ = (
    "hashlib", "tempfile", "difflib", "tomllib", "importlib.resources", "concurrent.futures",
    "multiprocessing", "cryptography", "google.protobuf", "zipfile", "shutil",
)

MODULES_AS_THE_CHECK_BEGINS = """
import json, sys
import bluezone.cli
import bluezone.matching.check as check
plain = check.check_keys
def check_keys(*args, **kwargs):  # the library call of the command: its store is opened from here
    print(json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True)
    return plain(*args, **kwargs)
check.check_keys = check_keys
sys.argv = ["bluezone", *sys.argv[1:]]
bluezone.cli.main()
"""


def test_a_check_begins_its_work_without_what_only_other_paths_need(tmp_path: Path) -> None:
    """The real command line, through the console script: what is imported when ``check_keys`` is
    called (with more than one job the store's thread starts there) holds none of the modules only
    later steps or other commands use (each was 1-3 ms of the serial start; db09ff3 imported all six)."""
    tomorrow = (int(time.time()) // 86_400 + 1) * 86_400  # the check purges on the wall clock: data up to now
    keys, sightings, _ = synthetic_data(500, 2_000, seed=5, planted=2, end_time=tomorrow, days=3)
    keys_path = tmp_path / "keys.json"
    write_keys_json(keys, keys_path)
    db = tmp_path / "s.db"
    with SightingStore.open(db, purge_now=float(sightings["time"].max())) as store:
        store.add_sightings(sightings)
    out = subprocess.run(
        [sys.executable, "-c", MODULES_AS_THE_CHECK_BEGINS, "check", "--keys", str(keys_path), "--db", str(db), "--json", "--jobs", "2"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert out.returncode == 0 and len(json.loads(out.stdout)["exposures"]) >= 2, out.stderr
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    assert "numpy" in loaded and "bluezone.proximity.store" in loaded and "bluezone.matching.bluezone_scorer" in loaded
    early = sorted(m for m in loaded if m in NOT_BEFORE_THE_STORE_IS_READ or m.startswith(tuple(f"{n}." for n in NOT_BEFORE_THE_STORE_IS_READ)))
    assert not early, f"imported before the check's work began: {early}"


def test_the_command_line_and_the_store_s_early_reader_import_no_numpy() -> None:
    """``bluezone check`` starts its store's early reader (``heardread``) before numpy is imported (~75 ms),
    so that SQLite reads on the core the imports leave idle: the group's setup (cliconfig -> config ->
    crypto's time units), the command's module and the reader must come without numpy (config took the
    TX power range from crypto.payload, whose package imported the derivation, and numpy with it)."""
    code = (
        "import sys, bluezone.cli, bluezone.cliconfig, bluezone.matching.cli, bluezone.matching.linkminute,"
        " bluezone.proximity.store.files, bluezone.proximity.store.heardread; print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "bluezone.proximity.store.heardread" in loaded and "sqlite3" in loaded
    assert not sorted(m for m in loaded if m.split(".")[0] in ("numpy", "sqlite_utils", "cryptography"))


MODULES_AS_THE_WORKERS_FORK = """
import json, sys
import bluezone.matching.sharedbatches as sharedbatches
plain = sharedbatches.SharedBatches.__init__
def noted(self, *args, **kwargs):
    print(json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True)
    plain(self, *args, **kwargs)
sharedbatches.SharedBatches.__init__ = noted
import bluezone.matching.check as check
check._HeardInBackground.ready = lambda self: self.result() is not None  # the store read before the file ends
from bluezone.cli import main
sys.argv = ["bluezone", *sys.argv[1:]]
main()
"""

#: Not needed to stream a signed export's keys (unverified) to the workers: the export's message classes and
#: protobuf's runtime (signature infos are parsed at the file's end), and the AES of the exposures' AEMs.
NOT_BEFORE_THE_WORKERS = ("cryptography", "bluezone.keyformat.gaen_export_pb2", "google.protobuf.descriptor",
                          "google.protobuf.descriptor_pool", "google.protobuf.internal")


def test_a_two_job_check_forks_its_workers_before_protobuf_and_aes_are_imported(tmp_path: Path) -> None:
    """The real command line on a signed export zip streamed to two jobs: neither is needed to stream its keys
    (signature infos are parsed at the file's end), ~12-25 ms and ~7-10 ms of the serial start while the
    second core idled (issue 17, twenty-fifth session; test_check_serial_start.py)."""
    tomorrow = (int(time.time()) // 86_400 + 1) * 86_400  # the check purges on the wall clock: data up to now
    keys, sightings, _ = synthetic_data(120_000, 20_000, seed=5, planted=3, end_time=tomorrow, days=3)
    zip_path, db = signed_zip_and_store(tmp_path, keys, sightings)
    out = subprocess.run(
        [sys.executable, "-c", MODULES_AS_THE_WORKERS_FORK, "check", "--keys", str(zip_path), "--db", str(db), "--json",
         "--jobs", "2"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert out.returncode == 0 and len(json.loads(out.stdout)["exposures"]) >= 3, out.stderr
    forked = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("[")]
    assert len(forked) == 1, out.stderr  # the workers were forked once, while the file streamed
    early = sorted(m for m in forked[0] if m.startswith(NOT_BEFORE_THE_WORKERS))
    assert not early, f"imported before the workers were forked: {early}"
