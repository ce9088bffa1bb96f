"""bluezone run / status / purge through click, and a real SIGTERM to a running daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import DAY_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.proximity.store import SightingStore

from .conftest import random_sightings


#: "Now" for commands that ask the clock, through the CLI's clock seam rather than the wall clock.
NOW = 1_763_640_000.0


def invoke(*args: str, now: float | None = None):
    return CliRunner().invoke(cli, list(args), obj={} if now is None else {"clock": VirtualClock(now)})


def make_db(path, now: float) -> None:
    rows = random_sightings(20, now - 20 * DAY_SECONDS, 1)
    rows["time"][:5] = now - 15 * DAY_SECONDS
    rows["time"][5:] = now - 3600
    with SightingStore.open(path, purge_now=now - 20 * DAY_SECONDS) as store:
        store.add_sightings(rows)
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(now)))
        store.save_daily_key(DailyKey(b"o" * 16, rolling_start(now - 16 * DAY_SECONDS)))


def test_status_and_purge_json(tmp_path) -> None:
    db = tmp_path / "b.db"
    make_db(db, NOW)
    # opening purges at the CLI's clock, so the 15-day-old rows are already gone by then; status
    # reports what remains
    result = invoke("status", "--db", str(db), "--json", now=NOW)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["sightings"] == 15 and info["daily_keys"] == 1 and info["db_path"] == str(db)
    text = invoke("status", "--db", str(db), now=NOW)
    assert text.exit_code == 0 and "sightings  15" in text.output
    result = invoke("purge", "--db", str(db), "--json", now=NOW)
    assert result.exit_code == 0, result.output
    purged = json.loads(result.output)
    assert purged["retention_days"] == 14 and purged["sightings_deleted"] == 0
    assert "purged 0 sightings" in invoke("purge", "--db", str(db), now=NOW).output


def test_status_shows_a_time_past_any_date_instead_of_failing(tmp_path) -> None:
    """A damaged or hand-edited time of 1e200 is a number the store keeps, but no date can show it."""
    db = tmp_path / "b.db"
    make_db(db, NOW)
    with SightingStore.open(db) as store, store.db.conn as conn:
        conn.execute("UPDATE sightings SET time = 1e200 WHERE rowid = (SELECT MAX(rowid) FROM sightings)")
    result = invoke("status", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "last       1e+200 (no date: a damaged or hand-edited row)" in result.output


@pytest.mark.wall_clock
def test_purge_by_wall_clock(tmp_path) -> None:
    db = tmp_path / "old.db"
    now = time.time()
    with SightingStore.open(db) as store:
        rows = random_sightings(4, now, 1)
        rows["time"] = [now - 15 * DAY_SECONDS, now - 15 * DAY_SECONDS, now - 13 * DAY_SECONDS, now - 13 * DAY_SECONDS]
        store.add_sightings(rows)
    result = invoke("purge", "--db", str(db), "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["sightings_deleted"] == 2
    assert json.loads(invoke("status", "--db", str(db), "--json").output)["sightings"] == 2


def test_missing_and_corrupt_databases_are_one_line_errors(tmp_path) -> None:
    missing = tmp_path / "nope.db"
    for command in ("status", "purge"):
        result = invoke(command, "--db", str(missing))
        assert result.exit_code == 2  # the path given is not a store: an input error
        assert result.output.count("\n") == 1 and "no sighting database" in result.output
        assert not missing.exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 1000)
    os.chmod(junk, 0o600)
    result = invoke("status", "--db", str(junk), "--json")
    assert result.exit_code == 2 and result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_run_bad_config_is_exit_2(tmp_path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("rotation = 5\n")
    result = invoke("run", "--db", str(tmp_path / "x.db"), "--config", str(cfg), "--duration", "1")
    assert result.exit_code == 2 and "unknown setting 'rotation'" in result.output
    result = invoke("run", "--db", str(tmp_path / "x.db"), "--backend", "telepathy", "--duration", "1")
    assert result.exit_code == 2 and "unknown radio backend" in result.output


@pytest.mark.wall_clock
def test_run_sigterm_flushes_and_exits_cleanly(tmp_path) -> None:
    db = tmp_path / "run.db"
    cfg = tmp_path / "c.toml"
    cfg.write_text("status_interval = 1.0\nflush_interval = 1000.0\n")  # only the stop flush writes
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluezone.cli", "run", "--backend", "emulated:1", "--db", str(db), "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        start = proc.stdout.readline()  # which radio and database, before anything else
        assert start.startswith("bluezone daemon: radio emulated:self") and str(db) in start, start
        first = proc.stdout.readline()  # the first status line: the daemon is up and hearing
        assert "sightings" in first, first + proc.stderr.read()
        proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped:" in out and "Traceback" not in err
    stored = int(out.split("stopped: ")[1].split()[0])
    assert stored > 0
    with SightingStore.open(db) as store:
        assert store.count_sightings() == stored
    assert os.stat(db).st_mode & 0o777 == 0o600


def test_every_proximity_command_has_help() -> None:
    for command in ("run", "status", "purge"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "--db" in result.output
        assert cli.commands[command].help


def test_status_purge_on_another_programs_database_are_one_line_errors(tmp_path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    for command in ("status", "purge"):
        result = invoke(command, "--db", str(other))
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1
        assert "not a bluezone database" in result.output and "--debug" not in result.output
    assert other.read_bytes() == before


def test_read_only_commands_do_not_turn_an_empty_file_into_a_store(tmp_path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    keys = tmp_path / "keys.json"
    keys.write_text('{"temporaryExposureKeys": [{"key": "AAAAAAAAAAAAAAAAAAAAAA==", "rollingStartNumber": 2700000, "rollingPeriod": 144}]}')
    for args in (("status",), ("purge",), ("check", "--keys", str(keys)), ("keys", "export", "--out", "-")):
        result = invoke(*args, "--db", str(empty))
        assert result.exit_code == 2, (args, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1
        assert "not a sighting database" in result.output
        assert empty.read_bytes() == b"", args
        assert not os.path.exists(f"{empty}-wal")


def test_purge_says_what_its_json_says(tmp_path) -> None:
    """The text line left out the Bluezone v3 sightings the purge deleted (its JSON has them)."""
    import numpy as np

    from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER

    db = tmp_path / "v3.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        rows = np.zeros(2, BLUEZONE3_SIGHTING_DTYPE)
        rows["time"] = [NOW - 13 * DAY_SECONDS, NOW]
        rows["bzid"] = np.frombuffer(b"x" * 24, "V12")
        rows["rssi"] = -70
        rows["tx_power"] = NO_TX_POWER
        assert store.add_bluezone3_sightings(rows) == 2
    later = NOW + 2 * DAY_SECONDS  # the first row is now 15 days old
    result = invoke("purge", "--db", str(db), now=later)
    assert result.exit_code == 0, result.output
    assert "purged 0 sightings, 1 Bluezone v3 sightings, 0 daily keys and 0 check-ins older than 14 days" in result.output
    assert json.loads(invoke("purge", "--db", str(db), "--json", now=later).output)["bluezone3_sightings_deleted"] == 0


def test_status_of_an_empty_store_points_at_the_emulated_one_beside_it(tmp_path) -> None:
    """`bluezone run` on a machine without Bluetooth makes the real store, empty, before the radio fails;
    its error suggests --backend emulated, whose sightings go to emulated.db: `bluezone status` then showed
    0 sightings and no word of where they went (the hint for a missing store never came)."""
    SightingStore.open(tmp_path / "bluezone.db").close()  # what the failed `bluezone run` left
    with SightingStore.open(tmp_path / "emulated.db") as store:
        store.add_sightings(random_sightings(5, NOW - 60, 1))
    result = invoke("status", "--db", str(tmp_path / "bluezone.db"), now=NOW)
    assert result.exit_code == 0, result.output
    assert f"`bluezone run --backend emulated` keeps its sightings in {tmp_path / 'emulated.db'}" in result.output
    assert f"give --db {tmp_path / 'emulated.db'}" in result.output
    # a store with anything in it, or the emulated store itself, says nothing of the sort
    with SightingStore.open(tmp_path / "bluezone.db") as store:
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(NOW)))
    for db in ("bluezone.db", "emulated.db"):
        result = invoke("status", "--db", str(tmp_path / db), now=NOW)
        assert result.exit_code == 0 and "keeps its sightings" not in result.output, result.output


def test_status_shows_the_v3_sightings_in_the_column_of_the_other_fields(tmp_path) -> None:
    """`Bluezone v3 sightings  N` was the one line whose value began past the others' column (labels padded to 10 + 1)."""
    import numpy as np

    from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER

    db = tmp_path / "v3.db"
    with SightingStore.open(db, purge_now=NOW) as store:
        rows = np.zeros(3, BLUEZONE3_SIGHTING_DTYPE)
        rows["time"], rows["bzid"], rows["rssi"], rows["tx_power"] = NOW - 60, np.void(b"x" * 12), -70, NO_TX_POWER
        store.add_bluezone3_sightings(rows)
    result = invoke("status", "--db", str(db), now=NOW)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "bluezone3  3 sightings of Bluezone v3 phones" in lines
    fields = [line for line in lines if line[:1].isalpha()]  # each field's first line: label, then its value
    assert {line[10] for line in fields} == {" "} and all(line[11] != " " for line in fields), fields


def test_status_of_a_store_holding_only_check_ins_is_not_called_empty(tmp_path) -> None:
    """Walk15: a visitor who only scanned posters (no daemon yet) was told their store was empty and
    their sightings went to emulated.db, beside the check-ins it holds."""
    with SightingStore.open(tmp_path / "bluezone.db") as store:
        store.add_checkin(b"v" * 16, b"p", "Cafe", "", NOW - 3600, NOW - 600, True, "url", NOW - 3600)
    with SightingStore.open(tmp_path / "emulated.db") as store:
        store.add_sightings(random_sightings(5, NOW - 60, 1))
    result = invoke("status", "--db", str(tmp_path / "bluezone.db"), now=NOW)
    assert result.exit_code == 0, result.output
    assert "check-ins  1" in result.output and "keeps its sightings" not in result.output


def test_status_says_whether_a_daemon_records_into_the_store(tmp_path) -> None:
    """user30's walk: a daemon stopped days ago (a crash, a reboot without the service enabled) left its last report,
    and `status` read the same as beside a running one; someone running it for weeks asks exactly that."""
    from bluezone.proximity.store.daemonlock import one_daemon_per_store

    db = tmp_path / "b.db"
    make_db(db, NOW)
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daemon_state({"backend": "emulated:self", "rotates_address": True}, NOW - 3 * DAY_SECONDS)
    stopped = invoke("status", "--db", str(db), now=NOW)
    assert stopped.exit_code == 0, stopped.output
    assert "daemon     NOT RUNNING: nothing is recorded into this store until `bluezone run`" in stopped.output
    assert "radio      emulated:self (daemon report of" in stopped.output
    assert json.loads(invoke("status", "--db", str(db), "--json", now=NOW).output)["daemon_running"] is False
    with one_daemon_per_store(db):  # the lock `bluezone run` holds while it runs
        running = invoke("status", "--db", str(db), now=NOW)
        assert running.exit_code == 0, running.output
        assert "daemon     running: recording into this store" in running.output and "NOT RUNNING" not in running.output
        assert json.loads(invoke("status", "--db", str(db), "--json", now=NOW).output)["daemon_running"] is True


def test_a_user_without_a_store_of_their_own_is_pointed_at_the_services(tmp_path, monkeypatch) -> None:
    """user30's walk: with the daemon run as packaging/bluezone.service, its store is /var/lib/bluezone/bluezone.db,
    the service user's; `bluezone check` (status, upload) run as oneself read ~/.local/share/... and said only
    "give --db PATH, or run `bluezone run` first", which would start a second daemon beside the service."""
    from bluezone.proximity.store import files

    service = tmp_path / "var/lib/bluezone/bluezone.db"
    monkeypatch.setattr(files, "SERVICE_DB", service)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    no_service = invoke("status", now=NOW)
    assert no_service.exit_code == 2 and "(give --db PATH, or run `bluezone run` first)" in no_service.output
    service.parent.mkdir(parents=True)  # the service's StateDirectory: made by systemd at its first start
    result = invoke("status", now=NOW)
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"Error: no sighting database at {tmp_path / 'home/bluezone/bluezone.db'} (the daemon's service keeps its store"
        f" in {service}: run the command as the service's user with that --db, `sudo -u bluezone bluezone ... --db"
        f" {service}`; or give --db PATH)\n"
    )
    elsewhere = invoke("status", "--db", str(tmp_path / "mine.db"), now=NOW)  # a --db typed: that file was meant
    assert elsewhere.exit_code == 2 and "service" not in elsewhere.output


@pytest.mark.parametrize(
    ("health", "said"),
    [({"scan_mode": "active"}, "radio      bluez, scanning actively (daemon report of"),
     ({"scan_mode": "passive"}, "radio      bluez, scanning passively (too few sightings through BlueZ"),
     ({}, "radio      bluez (daemon report of")],
)
def test_status_says_which_scan_the_radio_runs_and_that_bluez_picks_the_address(tmp_path, health, said) -> None:
    """user31's walk: a Pi owner could not tell from status which scan `auto` had picked, and `address FIXED: ...
    anyone listening can link your rotating IDs` said as fact what docs/bluetooth.md says is unchecked."""
    db = tmp_path / "b.db"
    make_db(db, NOW)
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daemon_state({"backend": "bluez", "rotates_address": False, "radio": health}, NOW - 60)
    result = invoke("status", "--db", str(db), now=NOW)
    assert result.exit_code == 0, result.output
    assert said in " ".join(result.output.split("\n           "))  # a field wrapped to 80 columns (status_field)
    assert all(len(line) <= 80 for line in result.output.splitlines() if line.startswith("radio"))
    assert "address    NOT CHECKED: this radio, not bluezone, picks" in result.output and "FIXED" not in result.output
    assert " ".join(result.output.split()).count("if it stayed fixed, anyone listening could link your rotating IDs")


def test_status_gives_the_bluez_scan_advice_only_for_bluez(tmp_path) -> None:
    """The bumble backend's scan is passive too, on its own controller, and hears every advert: the BlueZ advice
    ("too few sightings") was said of it as well."""
    db = tmp_path / "b.db"
    make_db(db, NOW)
    with SightingStore.open(db, purge_now=NOW) as store:
        store.save_daemon_state({"backend": "bumble", "radio": {"scan_mode": "passive"}}, NOW - 60)
    result = invoke("status", "--db", str(db), now=NOW)
    assert result.exit_code == 0, result.output
    assert "radio      bumble, scanning passively (daemon report of" in result.output
    assert "BlueZ" not in result.output
