"""``bluezone check --keys``'s early reader of its store (``heardread.EarlyRead``, started by the command
before numpy is imported): the exposures are those of a check without it, with one job or two, whether
the open's purge deletes rows or not; every way out of the command (a bad key file, a bad option, no
store, Ctrl-C) joins its thread and closes its connection, and where the store was left untouched before
(a bad option; a bad file with one job) it still is, file for file, byte for byte; a missing store is
said as before."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from matching_helpers import DAY, SCORERS, day_file

import bluezone.keyformat.keyfile as keyfile_module
import bluezone.matching.scoring as scoring_module
from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.matching.check import check_keys
from bluezone.matching.linkminute import MIN_SIGHTINGS
from bluezone.proximity.store import SCHEMA_VERSION, SightingStore, heardread
from bluezone.proximity.store import schema as schema_module
from bluezone.proximity.store.heardread import EarlyRead
from tests.open_files_helpers import open_on

#: The scene's last day ended: nothing purged.  Fourteen days after its first day's 10:00: that day's
#: morning purged, its neighbours and encounters after 10:00 kept (the early read then is a superset).
NOTHING_PURGED = (DAY + 6 * 144) * INTERVAL_SECONDS
MORNING_PURGED = (DAY + 14 * 144 + 60) * INTERVAL_SECONDS


def _early_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bluezone-early-read"]


def _as_is(db: Path) -> tuple[list[str], bytes]:
    return sorted(os.listdir(db.parent)), db.read_bytes()


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("now", [NOTHING_PURGED, MORNING_PURGED])
def test_a_check_that_read_its_store_early_finds_the_same_exposures(tmp_path: Path, jobs: int, now: float) -> None:
    path, db, _, _ = day_file(tmp_path)
    twin = tmp_path / "twin.db"
    shutil.copy(db, twin)
    plain = check_keys(path, db, scorer=SCORERS["bluezone"], jobs=jobs, now=now)
    with EarlyRead(twin, MIN_SIGHTINGS) as early:
        read_early = check_keys(path, twin, scorer=SCORERS["bluezone"], jobs=jobs, now=now, early=early)
        assert early.result() is not None  # it was read, and what it read was used
    assert plain.exposures and read_early.exposures == plain.exposures
    assert read_early.sightings == plain.sightings and read_early.key_count == plain.key_count
    assert not _early_threads() and not open_on(twin)


def _check(db: Path, *args: str, now: float = NOTHING_PURGED) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", "--db", str(db), "--json", *args], obj={"clock": VirtualClock(now)})
    return result.exit_code, result.stderr + result.stdout


ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_every_way_out_of_a_check_stops_and_joins_its_early_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    """The early read made endless (a query only ``Connection.interrupt`` ends), so that each way out finds
    it still reading: the command must stop it, join its thread and close its connection, or hang."""
    path, db, _, _ = day_file(tmp_path)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    reading = threading.Event()
    closed = threading.Event()
    plain_close = heardread.EarlyRead.close

    def noted_close(self: heardread.EarlyRead) -> None:
        closed.set()
        plain_close(self)

    def endless(conn: sqlite3.Connection, *args: object) -> None:
        def progress() -> bool:  # set while the query runs; and, as the real reader's own handler, ends it once closed:
            reading.set()  # an interrupt sent as no statement ran yet is lost (SQLite < 3.41: this machine's 3.40.1),
            return closed.is_set()  # and this handler replaces the reader's (attack27: a hang past the 120 s timeout)

        conn.set_progress_handler(progress, 1000)
        conn.execute(ENDLESS)

    def interrupted(*args: object, **kwargs: object) -> None:
        assert reading.wait(60)
        raise KeyboardInterrupt

    monkeypatch.setattr(heardread, "read_heard", endless)
    monkeypatch.setattr(heardread.EarlyRead, "close", noted_close)
    before = _as_is(db)
    ways_out = [
        (["--keys", str(path), "--set", "no_such_setting=1"], None),  # a bad option: said before the store is touched
        (["--keys", str(bad)], None),  # a bad key file: with one job the store untouched, as before
        (["--keys", str(path)], (scoring_module, "get_scorer")),  # Ctrl-C while the scorer is made
        (["--keys", str(path)], (keyfile_module, "stream_keys")),  # Ctrl-C while the file is read
    ]
    for args, stopped_at in ways_out:
        reading.clear()
        closed.clear()
        with monkeypatch.context() as patched:
            if stopped_at is not None:
                patched.setattr(*stopped_at, interrupted)
            code, said = _check(db, *args, "--jobs", jobs)
        assert code != 0 and "Traceback" not in said, said
        assert not _early_threads() and not open_on(db), args
        if stopped_at is None and (jobs == "1" or "--set" in args):
            assert code == 2 and _as_is(db) == before, said

    code, said = _check(tmp_path / "none" / "missing.db", "--keys", str(path), "--jobs", jobs)  # no store: as before
    assert code != 0 and "no sighting database at" in said and not (tmp_path / "none").exists()
    assert not _early_threads()


STARTED_BEFORE_NUMPY = """
import sys
import bluezone.proximity.store.heardread as heardread
plain = heardread.EarlyRead.__init__
def noted(self, *args, **kwargs):
    print("numpy imported when the early reader started:", "numpy" in sys.modules, file=sys.stderr, flush=True)
    plain(self, *args, **kwargs)
heardread.EarlyRead.__init__ = noted
from bluezone.cli import main
sys.argv = ["bluezone", *sys.argv[1:]]
main()
"""


def test_the_check_command_starts_its_early_reader_before_numpy_is_imported(tmp_path: Path) -> None:
    """Its point: SQLite reads on the core the imports (numpy ~75 ms) leave idle."""
    path, db, _, _ = day_file(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", STARTED_BEFORE_NUMPY, "check", "--keys", str(path), "--db", str(db), "--json", "--jobs", "1"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert "numpy imported when the early reader started: False" in out.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_store_of_an_older_schema_is_migrated_and_checked_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    """The early reader leaves a store made before schema 6 (no index by RPI) alone; the check opens it as
    before (migrating it), reads it itself, and reports what a check of a current store reports."""
    path, current, _, _ = day_file(tmp_path)
    older = tmp_path / "older.db"
    with SightingStore.open(current, create=False, purge_now=NOTHING_PURGED) as source:
        rows = source.sightings()
    with monkeypatch.context() as patched:  # the scene's rows in a store made by a bluezone of schema 5
        patched.setattr(schema_module, "MIGRATIONS", schema_module.MIGRATIONS[:5])
        patched.setattr(schema_module, "SCHEMA_VERSION", 5)
        with SightingStore.open(older, purge_now=NOTHING_PURGED) as store:
            store.add_sightings(rows)
            assert store.schema_version == 5
    code, said = _check(current, "--keys", str(path), "--jobs", jobs)
    code_older, said_older = _check(older, "--keys", str(path), "--jobs", jobs)
    assert code == code_older == 0 and said_older == said and '"exposures": []' not in said
    assert not _early_threads() and not open_on(older)
    with SightingStore.open(older, create=False) as store:
        assert store.schema_version == SCHEMA_VERSION
