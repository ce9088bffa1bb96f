"""``check --json-to FILE``: the --json report written to a file while the text is printed, so one check gives a
script its fields and a person its text (README's cron recipe); a key file's check has no ``new_to_act_on``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from matching_helpers import DAY, day_file

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import INTERVAL_SECONDS

#: the day file's days within the 14 days (its scene is on DAY)
NOW = {"clock": VirtualClock((DAY + 5 * 144) * INTERVAL_SECONDS)}


def test_the_file_holds_what_json_prints_and_the_text_is_printed(tmp_path: Path) -> None:
    path, db, _, _ = day_file(tmp_path)
    runner = CliRunner()
    printed = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json"], obj=NOW)
    text = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db)], obj=NOW)
    report = tmp_path / "report.json"
    both = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json-to", str(report)], obj=NOW)
    assert printed.exit_code == text.exit_code == both.exit_code == 0, both.output
    assert both.stdout == text.stdout and "exposure(s)" in both.stdout
    assert report.read_text() == printed.stdout and (report.stat().st_mode & 0o777) == 0o600
    assert json.loads(report.read_text())["exposures"] and "new_to_act_on" not in json.loads(report.read_text())


def test_a_folder_it_cannot_write_is_said_before_the_check(tmp_path: Path) -> None:
    path, db, _, _ = day_file(tmp_path)
    missing = tmp_path / "no-such-folder" / "report.json"
    done = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json-to", str(missing)], obj=NOW)
    assert done.exit_code == 2 and done.stdout == ""
    assert done.stderr == f"Error: --json-to {missing}: {missing.parent} is no such folder\n"


def test_a_report_onto_the_store_or_an_input_is_refused_before_the_check(tmp_path: Path) -> None:
    """The report replaced whatever file --json-to named: given the sighting store (a tab completion, the
    database's own path pasted), the 14 days of sightings and the daily keys an upload needs became the JSON
    report (exit 0; the next command: 'file is not a database').  The store, its SQLite companions, a link to it
    and the check's own inputs are refused before anything is read, each left as it was."""
    path, db, _, _ = day_file(tmp_path)
    before = db.read_bytes()
    (tmp_path / "link.db").symlink_to(db)
    for target in (db, tmp_path / "link.db", path):
        done = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json-to", str(target)], obj=NOW)
        assert done.exit_code == 2 and done.stdout == "", (target, done.output)
        assert done.stderr.startswith(f"Error: --json-to {target} is ") and done.stderr.count("\n") == 1, done.stderr
    assert db.read_bytes() == before
    wal = Path(f"{db}-wal")
    wal.write_bytes(b"")
    done = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json-to", str(wal)], obj=NOW)
    assert done.exit_code == 2 and "the sighting database's" in done.stderr, done.output


def test_a_report_onto_a_companion_sqlite_has_not_made_yet_is_refused(tmp_path: Path) -> None:
    """``--json-to s.db-wal`` with no WAL there yet wrote the report where SQLite's next open of the store looks for
    its write-ahead log (and then deletes it, report and all); through a link to the store as well."""
    path, db, _, _ = day_file(tmp_path)
    (tmp_path / "link.db").symlink_to(db)
    for store, target in ((db, Path(f"{db}-wal")), (db, Path(f"{db}-journal")), (tmp_path / "link.db", Path(f"{db}-shm"))):
        assert not target.exists()
        done = CliRunner().invoke(cli, ["check", "--keys", str(path), "--db", str(store), "--json-to", str(target)], obj=NOW)
        assert done.exit_code == 2 and "the sighting database's" in done.stderr, (target, done.output)
        assert not target.exists()
