"""``bluezone server export`` (cron, by hand) and a clock that jumped ahead: the same rule as the scheduled
export of ``server run``, on SQLite and PostgreSQL.  It was not held at all (one cron export at a clock a
month ahead deleted every key and file), and a held scheduled export named its new files at the jumped clock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from server_helpers import NOW

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import empty_keys
from bluezone.server.exportclock import HELD_EXIT
from bluezone.server.exports import INDEX_FILE
from bluezone.server.signing import keygen
from bluezone.server.storage import open_storage

HOUR = 3600.0
MONTH = 30 * DAY_SECONDS


@pytest.fixture(params=["sqlite", "postgres"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A key server database (a SQLite path or a PostgreSQL DSN) holding one key of each of the five days before NOW."""
    db = str(tmp_path / "server.db") if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    storage = open_storage(db)
    try:
        _insert(storage, rolling_start(NOW) - ROLLING_PERIOD * np.arange(1, 6), seed=3)
    finally:
        storage.close()
    return db


def _insert(storage: object, starts: np.ndarray, seed: int) -> None:
    keys = empty_keys(len(starts))
    keys["key"] = np.frombuffer(np.random.default_rng(seed).bytes(16 * len(starts)), "V16")
    keys["rolling_start"] = starts
    keys["rolling_period"] = ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)  # type: ignore[attr-defined]


def export_at(db: str, tmp_path: Path, now: float, *args: str) -> Result:
    """``bluezone server export`` with its clock at ``now``."""
    keys = tmp_path / "k"
    if not keys.exists():
        keygen(keys)
    return CliRunner().invoke(
        cli,
        ["server", "export", "--server-db", db, "--signing-key-dir", str(keys), "--export-dir", str(tmp_path / "out"), *args],
        obj={"clock": VirtualClock(now)},
    )


def state(db: str, tmp_path: Path) -> tuple[int, list[str], int]:
    """Keys left in the database, index.txt's names, files in the export folder."""
    storage = open_storage(db)
    try:
        out = tmp_path / "out"
        return storage.count_keys(), (out / INDEX_FILE).read_text().split(), len(list(out.glob("*.zip")))
    finally:
        storage.close()


def test_a_cron_export_at_a_clock_a_month_ahead_deletes_nothing_until_the_next(server_db: str, tmp_path: Path) -> None:
    for now in (NOW + HOUR, NOW + 2 * HOUR):  # an hourly cron job
        assert export_at(server_db, tmp_path, now).exit_code == 0
    held = export_at(server_db, tmp_path, NOW + MONTH)
    assert held.exit_code == HELD_EXIT and "nothing exported or deleted" in held.stderr, held.output
    left, index, files = state(server_db, tmp_path)
    assert (left, len(index), files) == (5, 5, 5)  # was (0, 0, 0)
    # the clock is still a month ahead an hour later: the retention holds, one export late
    assert export_at(server_db, tmp_path, NOW + MONTH + HOUR).exit_code == 0
    assert state(server_db, tmp_path) == (0, [], 0)


def test_a_held_export_writes_no_file_named_at_the_jumped_clock(server_db: str, tmp_path: Path) -> None:
    for now in (NOW + HOUR, NOW + 2 * HOUR):
        assert export_at(server_db, tmp_path, now).exit_code == 0
    storage = open_storage(server_db)
    try:
        _insert(storage, np.array([rolling_start(NOW) - ROLLING_PERIOD]), seed=4)  # uploaded after the last export
    finally:
        storage.close()
    jumped = NOW + MONTH
    assert export_at(server_db, tmp_path, jumped).exit_code == HELD_EXIT
    assert not list((tmp_path / "out").glob(f"{int(jumped)}-*"))  # a file named (and kept) a month ahead
    corrected = NOW + 3 * HOUR  # the clock put right: this export writes the key's file at the right time
    assert export_at(server_db, tmp_path, corrected).exit_code == 0
    assert len(list((tmp_path / "out").glob(f"{int(corrected)}-*"))) == 1
    assert state(server_db, tmp_path)[0] == 6


def _held(db: str, tmp_path: Path, times: list[float]) -> list[bool]:
    results = [export_at(db, tmp_path, now) for now in times]
    assert all(r.exit_code == (HELD_EXIT if "nothing exported" in r.stderr else 0) for r in results), [r.output for r in results]
    return [r.exit_code == HELD_EXIT for r in results]


def test_exports_by_hand_at_odd_hours_are_not_held(server_db: str, tmp_path: Path) -> None:
    """The period read from the runs is at least a day: the last jump under two days is never held."""
    assert _held(server_db, tmp_path, [NOW + HOUR, NOW + 2 * HOUR, NOW + 11 * HOUR, NOW + 40 * HOUR]) == [False] * 4


def test_a_weekly_cron_job_is_held_once_then_read_as_weekly(server_db: str, tmp_path: Path) -> None:
    """The period is the longest gap between the last runs: only the first week past the day's floor is held."""
    weeks = [NOW + HOUR + w * 7 * DAY_SECONDS for w in range(5)]
    assert _held(server_db, tmp_path, weeks) == [False, True, False, False, False]


def test_a_clock_that_jumped_once_still_holds_the_next_jump(server_db: str, tmp_path: Path) -> None:
    """A cron job's clock a month ahead for one run (held), then put right: the month-ahead run stayed among
    the runs the period is read from (a gap of a month), so the next jump of a month passed as "on time" and
    deleted every key and file (was (0, 0, 0)).  A run later than the clock now read is dropped when it is put
    right: that clock (or this one) was wrong, and the period is read from the runs that follow each other."""
    assert _held(server_db, tmp_path, [NOW + HOUR, NOW + 2 * HOUR, NOW + MONTH, NOW + 3 * HOUR]) == [
        False, False, True, False,
    ]
    assert _held(server_db, tmp_path, [NOW + MONTH + 4 * HOUR]) == [True]
    left, index, files = state(server_db, tmp_path)
    assert (left, len(index), files) == (5, 5, 5)


def test_a_held_export_exits_3_with_one_line_on_stderr_for_cron_to_mail(server_db: str, tmp_path: Path) -> None:
    """The docs' cron line sends stdout to a log and cron mails the rest: a held export (exit 0, its line on
    stdout) reached nobody.  Now its line is the only one on stderr and it exits 3 (not 1 or 2: nothing
    failed), with --json too (whose document still goes to stdout)."""
    for now in (NOW + HOUR, NOW + 2 * HOUR):
        assert export_at(server_db, tmp_path, now).exit_code == 0
    held = export_at(server_db, tmp_path, NOW + MONTH)
    assert (held.exit_code, held.stdout) == (HELD_EXIT, "")  # was 0, the line on stdout
    assert held.stderr.count("\n") == 1 and held.stderr.startswith("clock 2584800 s past the last export's")
    assert export_at(server_db, tmp_path, NOW + 3 * HOUR).exit_code == 0  # the clock put right
    as_json = export_at(server_db, tmp_path, NOW + MONTH + 4 * HOUR, "--json")
    assert as_json.exit_code == HELD_EXIT and as_json.stderr.startswith("clock 2595600 s past")
    assert json.loads(as_json.stdout)["held_clock_jump_seconds"] == MONTH + HOUR
