"""CLI check and keys export against a real sighting store (SQLite)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matching_helpers import advert_sightings, encounter, interval_time, make_keys, noise_sightings

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto import DailyKey
from bluezone.crypto.intervals import INTERVAL_SECONDS, interval_number, rolling_start
from bluezone.keyformat.keyfile import dump_keys_json, parse_keys_json
from bluezone.proximity.store import SightingStore

VECTORS = Path(__file__).parents[1] / "data" / "vectors"
DAY = 2_900_016


#: "Now" for the commands that ask the clock (keys export): noon of a fixed day, not the wall clock.
NOW = 1_763_640_000.0


#: "Now" for the scene's checks: the end of its day (a check purges the store at its clock's "now").
SEEN = (DAY + 144) * INTERVAL_SECONDS
#: The date the advice gives the close encounter (10:00 UTC on 2025-02-20): its first minute's date in this machine's
#: zone (e393adb), the next day east of UTC+10 (these tests said 2025-02-20 and failed under TZ=Pacific/Kiritimati).
EXPOSED_ON = dt.datetime.fromtimestamp((DAY + 60) * INTERVAL_SECONDS + 5).date().isoformat()


def run(*args: str, now: float = NOW) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj={"clock": VirtualClock(now)})
    return result.exit_code, result.stdout, result.stderr


def check(*args: str, now: float = SEEN) -> tuple[int, str, str]:
    return run("check", *args, now=now)


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """A store that met `close` for 30 min at ~52 dB and `far` for 40 min at ~75 dB."""
    close, far = b"\xd1" * 16, b"\xd2" * 16
    db = tmp_path / "node.db"
    rows = np.concatenate(
        [encounter(close, DAY + 60, 30, -72), encounter(far, DAY + 90, 40, -95), noise_sightings(500, DAY * 600, (DAY + 144) * 600)]
    )
    rows.sort(order="time")
    with SightingStore.open(db) as store:
        store.add_sightings(rows)
        store.save_daily_key(DailyKey(b"\x0e" * 16, DAY, 144))  # its own key of that day, as a daemon makes
    keys = tmp_path / "keys.json"
    keys.write_bytes(dump_keys_json(make_keys([(b"\xd0" * 16, DAY, 144), (close, DAY, 144), (far, DAY, 144)])))
    return db, keys


def test_check_text(scene: tuple[Path, Path]) -> None:
    db, keys = scene
    code, out, err = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("2025-02-20") and "30.0 min" in lines[0] and "closest 52 dB" in lines[0]
    assert lines[0].endswith("  F1") and "< 1.5 m" in lines[0]
    assert lines[1].endswith("not F1") and "40.0 min" in lines[1]
    assert lines[2] == "2 exposure(s), 1 close contact(s) (F1) from 3 keys"
    # what an F1 should do next, after the report (someone told "F1" needs more than a level)
    assert lines[3].startswith("What now: you were near someone who tested positive for 15 minutes or more")
    assert "health authority's advice for close contacts" in lines[3] and lines[3].endswith(f"--exposure-date {EXPOSED_ON}`")
    # user31's walk: "if it gives you a recursive code" named the code by a word only the health authority's tool uses
    assert "if it gives you a code to warn the people you met since (a close contact's code, \"recursive\")" in lines[3]


def _check_with(tmp_path: Path, scene: tuple[Path, Path], rows: list[tuple[bytes, int, int]], report_type: int) -> list[str]:
    db, _ = scene
    keys = make_keys(rows)
    keys["report_type"] = report_type
    path = tmp_path / "some-keys.json"
    path.write_bytes(dump_keys_json(keys))
    code, out, err = check("--scorer", "gaen", "--keys", str(path), "--db", str(db))
    assert code == 0, err
    return out.strip().splitlines()


def test_check_text_says_nothing_to_do_when_no_exposure_is_close(scene: tuple[Path, Path], tmp_path: Path) -> None:
    lines = _check_with(tmp_path, scene, [(b"\xd2" * 16, DAY, 144)], report_type=1)  # the far one alone
    assert lines[0].endswith("not F1") and lines[1].startswith("1 exposure(s), 0 close contact(s)")
    assert lines[2].startswith("No close contact: each exposure above was too brief or too far away to count")


def test_check_text_tells_an_f2_to_watch_for_symptoms(scene: tuple[Path, Path], tmp_path: Path) -> None:
    lines = _check_with(tmp_path, scene, [(b"\xd1" * 16, DAY, 144)], report_type=4)  # a recursive (F1's) key
    assert lines[0].endswith("F2  (a close contact of a close contact)")
    assert lines[2].startswith("What now: you met a close contact of a case (F2): watch for symptoms")


def test_check_says_likely_for_keys_of_a_likely_report(scene: tuple[Path, Path], tmp_path: Path) -> None:
    """Keys published under a "likely" code (report type 2: a clinical diagnosis, no test yet) warn of a likely
    case, in the line, the advice and --json's ``diagnosis``: they read as a positive test before."""
    lines = _check_with(tmp_path, scene, [(b"\xd1" * 16, DAY, 144)], report_type=2)
    assert lines[0].endswith("  F1  (a likely case: diagnosed, not tested yet)")
    assert lines[2].startswith("What now: you were near someone diagnosed as a likely case (not tested yet) for 15 minutes")
    code, out, err = check("--scorer", "gaen", "--keys", str(tmp_path / "some-keys.json"), "--db", str(scene[0]), "--json")
    assert code == 0, err
    assert [(e["report_type"], e["diagnosis"]) for e in json.loads(out)["exposures"]] == [(2, "likely")]
    confirmed = _check_with(tmp_path, scene, [(b"\xd1" * 16, DAY, 144)], report_type=1)
    assert confirmed[0].endswith("  F1") and "someone who tested positive" in confirmed[2]


def test_check_text_gives_no_advice_without_exposures(scene: tuple[Path, Path], tmp_path: Path) -> None:
    lines = _check_with(tmp_path, scene, [(b"\xd0" * 16, DAY, 144)], report_type=1)
    assert lines == ["0 exposure(s), 0 close contact(s) (F1) from 1 key"]


def test_check_does_not_tell_a_device_without_keys_to_send_them(scene: tuple[Path, Path], tmp_path: Path) -> None:
    """A store with no daily keys of its own (a visitor who only checked in, a daemon that never ran) was
    told to "send your keys with `bluezone upload ... --exposure-date`", which then refused: "no daily keys
    since ...: nothing to upload".  Now it is told there is nothing of it to send."""
    db, keys = scene
    with SightingStore.open(db) as store:
        store._conn.execute("DELETE FROM daily_keys")  # (no method deletes one's own keys: only the purge)
        store._conn.commit()
    code, out, err = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db))
    assert code == 0, err
    advice = out.strip().splitlines()[-1]
    assert advice.startswith("What now: you were near someone who tested positive") and "bluezone upload" not in advice
    assert advice.endswith(f"(this device has no daily keys of its own from {EXPOSED_ON} on (`bluezone run` makes them), so a"
                           " close contact's code to warn the people you met would have nothing of it to send)")


def test_check_of_an_empty_store_says_there_was_nothing_to_match(tmp_path: Path) -> None:
    """`bluezone run` without Bluetooth leaves an empty store, `run --backend emulated` fills emulated.db
    beside it, and `check --keys FILE` without --db said "0 exposure(s) ... from 1 diagnosis keys": an
    all-clear from a store that never heard anyone."""
    db = tmp_path / "bluezone.db"
    SightingStore.open(db).close()
    keys = tmp_path / "keys.json"
    keys.write_bytes(dump_keys_json(make_keys([(b"\xd1" * 16, DAY, 144)])))
    code, out, err = check("--keys", str(keys), "--db", str(db))
    assert code == 0, err
    assert out.strip().splitlines() == [
        "0 exposure(s), 0 close contact(s) (F1) from 1 key",
        f"none of them could match: {db} holds no sightings of the days they cover"
        f" (`bluezone status --db {db}` says what it holds)",
    ]


def test_check_json(scene: tuple[Path, Path]) -> None:
    db, keys = scene
    code, out, _ = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["close_contact"] is True and data["scorer"] == "gaen" and data["keys"] == 3
    exposures = data["exposures"]
    assert [e["close_contact"] for e in exposures] == [True, False]
    assert exposures[0]["minutes_by_bucket"]["immediate"] == 30 and exposures[0]["key_index"] == 1
    assert exposures[1]["minutes_by_bucket"]["other"] == 40 and exposures[1]["typical_attenuation_db"] == 75


def test_check_threshold_from_toml(scene: tuple[Path, Path], tmp_path: Path) -> None:
    db, keys = scene
    config = tmp_path / "scoring.toml"
    config.write_text("[scoring.gaen]\nclose_contact_minutes = 31\n")
    code, out, _ = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--scorer-config", str(config), "--json")
    assert code == 0 and json.loads(out)["close_contact"] is False


@pytest.mark.parametrize("content", [b"{broken", b'{"temporaryExposureKeys": [{"key": 1}]}', b"EK Export v1    \xff\xff"])
def test_check_malformed_leaves_real_db_untouched(scene: tuple[Path, Path], content: bytes) -> None:
    db, keys = scene
    keys.write_bytes(content)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    listing = sorted(p.name for p in db.parent.iterdir())
    code, _, err = check("--keys", str(keys), "--db", str(db))
    assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir()) == listing


def test_check_google_export_file_end_to_end(tmp_path: Path) -> None:
    """Google's round-trip case through the CLI: a stored sighting of 3d37caf5... and their export file."""
    tek, start = bytes.fromhex("2b714d3ec93c14e5d345003e59027aea"), 2646801
    db = tmp_path / "g.db"
    seen = advert_sightings(tek, start, [interval_time(start, s) for s in range(0, 600, 30)], rssi=-70, tx_power=-20)
    assert seen["rpi"][0].tobytes().hex() == "3d37caf51d1bf4ba54e758e0ac74c892"
    with SightingStore.open(db) as store:
        store.add_sightings(seen)
    code, out, err = check("--keys", str(VECTORS / "gaen_export_google_app.bin"), "--db", str(db), "--json", now=seen["time"][-1])
    assert code == 0, err
    data = json.loads(out)
    assert data["keys"] == 110 and len(data["exposures"]) == 1
    # 10 minute slots touched; the "span" verdict credits no more than the time present (9.583 minutes)
    assert data["exposures"][0]["sightings"] == 20 and data["exposures"][0]["duration_minutes"] == 9.583


def test_keys_export(tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    today = rolling_start(NOW)
    recent = [DailyKey(bytes([d]) * 16, today - 144 * d, 144 if d else 60) for d in range(13)]
    old = DailyKey(b"\xee" * 16, today - 144 * 20)
    with SightingStore.open(db) as store:
        for key in [old, *recent]:
            store.save_daily_key(key)
    out = tmp_path / "keys.json"
    code, _, err = run("keys", "export", "--days", "14", "--out", str(out), "--db", str(db))
    assert code == 0, err
    keys = parse_keys_json(out.read_bytes())
    assert [k.tobytes() for k in keys["key"]] == [k.key for k in reversed(recent)]
    assert keys["rolling_period"][-1] == 60
    code, stdout, _ = run("keys", "export", "--days", "2", "--out", "-", "--db", str(db))
    assert code == 0 and len(parse_keys_json(stdout)) == 2


def test_keys_export_takes_todays_key_off_air_with_the_current_interval(tmp_path: Path) -> None:
    """The file held today's full key while the daemon kept sending it: whoever had the file could
    follow the device until midnight.  Now the file's key and the stored one end with this interval."""
    db = tmp_path / "own.db"
    today = rolling_start(NOW)
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x07" * 16, today))
    code, _, err = run("keys", "export", "--out", str(tmp_path / "k.json"), "--db", str(db))
    assert code == 0 and "today's key is cut" in err, err
    ends = interval_number(NOW) + 1
    assert [int(k["rolling_start"] + k["rolling_period"]) for k in parse_keys_json((tmp_path / "k.json").read_bytes())] == [ends]
    with SightingStore.open(db, create=False) as store:
        assert [k.end for k in store.daily_keys()] == [ends]


def test_keys_export_whose_cut_the_store_refuses_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file was written first and today's key cut after, in another open: with the store's lock held elsewhere past
    its busy timeout (or a full disk), the file with today's key was written, the cut refused, and the daemon sent that
    key until midnight: whoever had the file could follow the device.  Now the cut is stored first: refused, no file."""
    import sqlite3

    from bluezone.proximity.store import interface

    monkeypatch.setattr(interface, "BUSY_SECONDS", 0.2)
    db = tmp_path / "own.db"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x07" * 16, rolling_start(NOW)))
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writes (the daemon's rewrite, a `checkin`)
    try:
        code, _, err = run("keys", "export", "--out", str(tmp_path / "k.json"), "--db", str(db))
    finally:
        other.rollback()
        other.close()
    assert code != 0 and "locked" in err, err
    assert not (tmp_path / "k.json").exists()
    with SightingStore.open(db, create=False) as store:
        assert [k.rolling_period for k in store.daily_keys()] == [144]


@pytest.mark.parametrize("protocol", ["gaen", "bluezone3"])
def test_keys_export_onto_the_store_is_refused_even_with_force(tmp_path: Path, protocol: str) -> None:
    """--out naming the store (a link to it too) with --force replaced the sighting database with the keys it
    was exporting (exit 0): its sightings and every daily key gone with it."""
    db = tmp_path / "s.db"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x07" * 16, rolling_start(NOW) - 144))
    (tmp_path / "link.db").symlink_to(db)
    before = db.read_bytes()
    for out in (db, tmp_path / "link.db", Path(f"{db}.lock")):
        out.touch()
        code, stdout, err = run("keys", "export", "--protocol", protocol, "--out", str(out), "--db", str(db), "--force")
        assert code == 2 and stdout == "" and err.startswith(f"Error: --out {out} is the sighting database"), err
    assert db.read_bytes() == before


def test_keys_export_missing_db(tmp_path: Path) -> None:
    code, _, err = run("keys", "export", "--out", str(tmp_path / "k.json"), "--db", str(tmp_path / "none.db"))
    assert code == 2 and "no sighting database" in err and not (tmp_path / "none.db").exists()


def test_check_settings_on_the_command_line(scene: tuple[Path, Path]) -> None:
    db, keys = scene
    code, out, _ = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--set", "close_contact_minutes=31", "--json")
    assert code == 0 and json.loads(out)["close_contact"] is False
    code, out, _ = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--set", "other_weight=0.5", "--json")
    assert code == 0 and [e["close_contact"] for e in json.loads(out)["exposures"]] == [True, True]
    for bad in ("bogus=1", "nonsense", "near_weight=lots"):
        code, _, err = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--set", bad)
        assert code == 2 and err.startswith("Error: "), bad


def test_check_default_scorer_is_bluezone(scene: tuple[Path, Path]) -> None:
    db, keys = scene
    code, out, err = check("--keys", str(keys), "--db", str(db), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["scorer"] == "bluezone"
    assert [e["close_contact"] for e in data["exposures"]] == [True, False]  # 30 min at 52 dB; 40 min at 75 dB


@pytest.mark.parametrize("correction", ["100000000000000000000000", "40000", "-200"])
def test_check_rssi_correction_out_of_range_is_a_usage_error(scene: tuple[Path, Path], correction: str) -> None:
    """A huge correction crashed the matcher (OverflowError); 40000 printed attenuations of -39972 dB."""
    db, keys = scene
    code, out, err = check("--keys", str(keys), "--db", str(db), "--rssi-correction", correction)
    assert code == 2 and out == ""
    assert "--rssi-correction" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "scorer, setting",
    [
        ("gaen", "distance_bands=5"),  # TypeError: 'int' object is not iterable
        ("gaen", 'distance_bands=["a"]'),  # one band for four buckets
        ("gaen", "close_contact_minutes=nan"),  # nobody is ever F1
        ("gaen", "slot_seconds=inf"),  # 'inf min'
        ("gaen", "max_gap_slots=1.5"),
        ("gaen", "immediate_db=true"),
        ("bluezone", "soft_width_db=nan"),
        ("bluezone", "threshold_db=inf"),
        ("bluezone", "smooth_slots=1000000000000"),  # MemoryError: 7.28 TiB
        ("bluezone", "min_sightings=1.5"),
        ("bluezone", "slot_seconds=1e-300"),  # overflow in divide, 0 minutes
        ("bluezone", "slot_seconds=100000000"),  # a 31-minute meeting printed as 1666666.7 min
        ("gaen", "slot_seconds=1e308"),  # minutes of 300 digits
        ("bluezone", "calibration_min_link_minutes=inf"),
        ("bluezone", "verdict_credit=touched"),
        ("bluezone", "verdict_credit=1"),
        ("bluezone", "minute_reference_strongest=1180591620717411303424"),  # OverflowError: too large for C long
    ],
)
def test_check_bad_scorer_setting_types_are_input_errors(scene: tuple[Path, Path], scorer: str, setting: str) -> None:
    db, keys = scene
    code, out, err = check("--keys", str(keys), "--db", str(db), "--scorer", scorer, "--set", setting)
    assert code == 2, (out, err)
    assert out == "" and err.startswith("Error: ") and err.count("\n") == 1
    assert setting.split("=")[0] in err


def test_scorer_config_file_types_are_checked_too(scene: tuple[Path, Path], tmp_path: Path) -> None:
    db, keys = scene
    cfg = tmp_path / "scoring.toml"
    cfg.write_text("[scoring.gaen]\nclose_contact_minutes = nan\n")
    code, _, err = check("--keys", str(keys), "--db", str(db), "--scorer", "gaen", "--scorer-config", str(cfg))
    assert code == 2 and "close_contact_minutes" in err


def test_keys_export_to_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x01" * 16, rolling_start(NOW)))
    out = tmp_path / "no" / "such" / "keys.json"
    code, stdout, err = run("keys", "export", "--out", str(out), "--db", str(db))
    assert code == 2 and stdout == ""
    assert err.startswith("Error: cannot write the keys to") and err.count("\n") == 1
    assert "--debug" not in err and not out.parent.exists()


def test_keys_export_refuses_a_file_already_there_unless_forced(tmp_path: Path) -> None:
    """`keys export --out existing.json` replaced the file without a word (other writers refuse unless --force):
    now one line, exit 2, the file as it was and today's key not cut short; --force replaces it."""
    db = tmp_path / "own.db"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x01" * 16, rolling_start(NOW) - 144))
        store.save_daily_key(DailyKey(b"\x02" * 16, rolling_start(NOW)))  # today's, on air
    out = tmp_path / "keys.json"
    out.write_text("the keys handed over yesterday")
    code, stdout, err = run("keys", "export", "--out", str(out), "--db", str(db))
    assert (code, stdout) == (2, "") and err == f"Error: {out} already exists: give --force to replace it, or another --out\n"
    assert out.read_text() == "the keys handed over yesterday"
    with SightingStore.open(db, create=False) as store:
        assert sorted(k.rolling_period for k in store.daily_keys()) == [144, 144]  # today's key not cut
    code, _, err = run("keys", "export", "--out", str(out), "--db", str(db), "--force")
    assert code == 0 and len(parse_keys_json(out.read_bytes())) == 2, err


def test_keys_export_file_is_private_under_any_umask(tmp_path: Path) -> None:
    """Daily keys reveal every RPI the device sent: nobody else on the machine may read them."""
    import os
    import stat

    db = tmp_path / "own.db"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x01" * 16, rolling_start(NOW)))
    fresh, old = tmp_path / "keys.json", tmp_path / "old.json"
    old.write_text("{}")
    os.chmod(old, 0o644)
    previous = os.umask(0)
    try:
        for out, force in ((fresh, ()), (old, ("--force",))):
            code, _, err = run("keys", "export", "--out", str(out), "--db", str(db), *force)
            assert code == 0, err
            assert stat.S_IMODE(out.stat().st_mode) == 0o600, out
            assert len(parse_keys_json(out.read_bytes())) == 1
    finally:
        os.umask(previous)


def test_check_reads_the_calibrated_rssi_correction_from_the_daemon_config(scene: tuple[Path, Path]) -> None:
    """`bluezone calibrate` writes rssi_correction into the daemon config; check uses it unless told otherwise."""
    from bluezone.config import default_config_path

    db, keys = scene
    path = default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text("rssi_correction = 6\n")
        calibrated = json.loads(check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--json")[1])
        told = json.loads(
            check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--json", "--rssi-correction", "0")[1]
        )
    finally:
        path.unlink()
    closest = [e["closest_attenuation_db"] for e in calibrated["exposures"]]
    assert closest == [a - 6 for a in (e["closest_attenuation_db"] for e in told["exposures"])]


def test_an_rssi_correction_beyond_what_calibrate_measures_is_refused_not_matched_with(scene: tuple[Path, Path]) -> None:
    """Every check shifts each attenuation by the correction: one set by hand in the daemon config (127, a typo)
    made a phone 25 m away a close contact without a word.  Beyond calibrate's +-40 dB: one line, exit 2."""
    from bluezone.config import default_config_path

    db, keys = scene
    path = default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text("rssi_correction = 127\n")
        code, out, err = check("--keys", str(keys), "--db", str(db), "--json")
    finally:
        path.unlink()
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"Error: config file {path}: rssi_correction must be -40..40 dB (what bluezone calibrate measures; every check"
        " shifts each attenuation by it), got 127"
    ]
    code, out, err = check("--keys", str(keys), "--db", str(db), "--rssi-correction", "41")
    # (typed, it is refused beyond what bluezone believes: tests/matching/test_check_adapters.py)
    assert code == 2 and out == "" and "--rssi-correction" in err and "-20<=x<=20" in err


def test_check_jobs_give_the_same_report(scene: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--jobs` splits matching between processes (issue 17); what is reported does not change."""
    import bluezone.matching.matcher as matcher_module

    monkeypatch.setattr(matcher_module, "MIN_KEYS_PER_JOB", 1)  # three keys, still split
    db, keys = scene
    reports = []
    for jobs in ("1", "2", "3"):
        code, out, err = check("--scorer", "gaen", "--keys", str(keys), "--db", str(db), "--json", "--jobs", jobs)
        assert code == 0, err
        reports.append(json.loads(out))
    assert reports[0] == reports[1] == reports[2] and len(reports[0]["exposures"]) == 2
    code, _, err = check("--keys", str(keys), "--db", str(db), "--jobs", "0")
    assert code == 2 and "--jobs" in err


def test_the_set_examples_in_check_help_work_and_a_wrong_setting_lists_the_known(scene: tuple[Path, Path]) -> None:
    # --help gave `--set near_weight=1.0`, a gaen setting the default (bluezone) scorer refuses
    db, keys = scene
    code, help_text, _ = check("--help")
    assert code == 0 and "--set threshold_db=57 (bluezone)" in " ".join(help_text.split())
    assert "near_weight=1.0 with --scorer gaen" in " ".join(help_text.split())
    for args in (["--set", "threshold_db=57"], ["--scorer", "gaen", "--set", "near_weight=1.0"]):
        code, _, err = check("--keys", str(keys), "--db", str(db), *args)
        assert code == 0, (args, err)
    code, _, err = check("--keys", str(keys), "--db", str(db), "--set", "near_weight=1.0")
    assert code == 2 and err.count("\n") == 1
    assert "unknown bluezone scorer setting(s): near_weight (known: " in err and "threshold_db" in err
    code, _, err = check("--keys", str(keys), "--db", str(db), "--scorer", "gaen", "--set", "threshold_db=57")
    assert code == 2 and "unknown gaen scorer setting(s): threshold_db (known: " in err and "near_weight" in err


def test_check_runs_no_more_processes_than_cores(scene: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs 300 forked 299 workers for a key file past a million keys (~900 MB, 6.5 s where two
    jobs took 1.4 s on two cores): more processes than cores match no faster, and results do not
    depend on jobs."""
    import bluezone.matching.check as check_module
    import bluezone.matching.matcher as matcher

    db, keys = scene
    monkeypatch.setattr(matcher, "available_cores", lambda: 2)
    seen: list[int] = []
    original = check_module.check_keys

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(int(kwargs["jobs"]))  # type: ignore[call-overload]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(check_module, "check_keys", spy)
    for given, used in ((["--jobs", "300"], 2), (["--jobs", "1"], 1), ([], 2)):
        seen.clear()
        code, _, err = check("--keys", str(keys), "--db", str(db), *given)
        assert code == 0
        assert seen[0] == used, (given, seen)  # the command's call (check_keys calls itself for a file's keys)
        notice = "bluezone check: --jobs 300 is more than the 2 core(s) this process may use; using 2\n"
        assert err.startswith(notice) == (given == ["--jobs", "300"]), err


@pytest.mark.parametrize(
    "text, scorer, named",
    [
        ("[scoring.gaen]\nnear_weight = 1.0\n", "bluezone", "it has [scoring.gaen]"),  # --scorer gaen forgotten
        ('name = "shop"\nduration_min = 30\n[space]\nwidth_m = 8.0\n', "gaen", "it has [space]"),  # a scene file
        ("", "bluezone", "nor any other"),
    ],
)
def test_a_scorer_config_without_the_scorers_table_is_refused(
    scene: tuple[Path, Path], tmp_path: Path, text: str, scorer: str, named: str
) -> None:
    """docs/matching.md's own example file ([scoring.gaen]) given without --scorer gaen, or a scenario file
    given by mistake, ran the check on the default settings without a word (walk17)."""
    db, keys = scene
    cfg = tmp_path / "scoring.toml"
    cfg.write_text(text)
    code, out, err = check("--keys", str(keys), "--db", str(db), "--scorer", scorer, "--scorer-config", str(cfg))
    assert code == 2 and out == "" and err.count("\n") == 1, (out, err)
    assert f"has no [scoring.{scorer}] table" in err and named in err, err


def _durability_recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements a command's store runs and the files it syncs (``fsync <path>``), in order.  A power cut cannot
    be made in a test: what it would undo is told by which commits SQLite synced (``synchronous=FULL`` in force at
    them: under the store's ``NORMAL`` a WAL commit waits for a checkpoint) and which files reached the disk."""
    import os

    events: list[str] = []
    opened = SightingStore.open.__func__  # type: ignore[attr-defined]

    def traced(cls: type[SightingStore], *args: object, **kwargs: object) -> SightingStore:
        store = opened(cls, *args, **kwargs)
        store._conn.set_trace_callback(lambda sql: events.append(" ".join(sql.split())))
        return store

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    monkeypatch.setattr(SightingStore, "open", classmethod(traced))
    monkeypatch.setattr(os, "fsync", fsync)
    return events


def _synced_commits(events: list[str]) -> list[tuple[int, bool]]:
    """Each COMMIT's place in ``events`` and whether ``synchronous=FULL`` was in force at it."""
    full, commits = False, []
    for at, event in enumerate(events):
        if event.upper().startswith("PRAGMA SYNCHRONOUS="):
            full = event.upper().endswith("=FULL")
        elif event.upper() == "COMMIT":
            commits.append((at, full))
    return commits


def test_keys_export_cut_reaches_the_disk_before_the_file_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store runs ``synchronous=NORMAL`` (WAL): today's key cut was committed but not synced, and a power cut after
    the file was written could undo the cut while the file, synced, survived: the daemon would send until midnight a key
    handed over.  Now the cut's commit is synced (``FULL``) before the file is written, and the file and its folder are
    synced before "wrote" is said."""
    events = _durability_recorded(monkeypatch)
    db, out = tmp_path / "own.db", tmp_path / "k.json"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey(b"\x07" * 16, rolling_start(NOW)))
    events.clear()
    code, _, err = run("keys", "export", "--out", str(out), "--db", str(db))
    assert code == 0 and "today's key is cut" in err, err
    cut = next(at for at, event in enumerate(events) if event.startswith("INSERT INTO daily_keys"))
    commit, synced = next((at, full) for at, full in _synced_commits(events) if at > cut)
    file_synced = next(at for at, event in enumerate(events) if event.startswith(f"fsync {tmp_path}/.k.json."))
    assert synced and commit < file_synced < events.index(f"fsync {tmp_path}"), events
    assert "PRAGMA synchronous=NORMAL" in events[commit:]  # the store's own again: the connection may write on


def test_f0_list_and_its_new_chain_reach_the_disk_before_wrote_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list's new file was written unsynced and the new chain committed under ``synchronous=NORMAL``: after a power
    cut the list could be gone while "wrote" had been said, or survive while the new chain was undone, the device on
    the chain the list names.  Now the list and its folder are synced inside the chain's transaction and the commit is
    synced (``FULL``).  What stays: a power cut in the milliseconds between the list's sync and the commit's leaves
    the list and the old chain, with no "wrote" said (the list is written first so that a list not written leaves the
    old chain: 582fa20)."""
    events = _durability_recorded(monkeypatch)
    now = 1_795_694_400.0  # 2026-11-26 12:00 UTC
    db, listing = tmp_path / "a.db", tmp_path / "f0.json"
    with SightingStore.open(db) as store:
        store.save_bluezone3_key(int(now // 86400) - 2, bytes(range(32)), now - 2 * 86400)
    events.clear()
    code, _, err = run("keys", "export", "--protocol", "bluezone3", "--out", str(listing), "--db", str(db), now=now)
    assert code == 0 and "wrote 1 F0 list entry" in err, err
    # user31's walk: "wrote 1 F0 list entry to f0.json" and nothing more left the F0 with a file and no next step
    assert "hand it to whoever collects Bluezone v3 F0 lists" in err and "--bluezone3-list" in err
    chain = next(at for at, event in enumerate(events) if event.startswith("INSERT INTO bluezone3_key"))
    commit, synced = next((at, full) for at, full in _synced_commits(events) if at > chain)
    assert synced and chain < events.index(f"fsync {listing}") < events.index(f"fsync {tmp_path}") < commit, events
    assert "PRAGMA synchronous=NORMAL" in events[commit:]


@pytest.mark.parametrize(("jobs", "streamed"), [("1", False), ("2", False), ("1", True), ("2", True)])
def test_check_without_an_f0_list_says_how_many_v3_sightings_it_left_unchecked(
    scene: tuple[Path, Path], jobs: str, streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check of GAEN keys reads no Bluezone v3 sighting: its "0 exposure(s)" said nothing of the v3 phones met,
    and did not say so (user31's walk: 7,658 of them, silently left); one older than the 14 days is not counted.
    Each way the store is read (a file that fits or one streamed, one job or more) counts them in its own open."""
    import bluezone.matching.keystream as keystream
    from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE

    if streamed:
        monkeypatch.setattr(keystream, "BUFFER_KEYS", 1)

    db, keys = scene
    v3 = np.zeros(1_235, BLUEZONE3_SIGHTING_DTYPE)
    v3["time"] = np.linspace(DAY * INTERVAL_SECONDS, SEEN - 1, len(v3))
    v3["time"][0] = SEEN - 15 * 86_400 * 1.0  # past the retention: purged, never counted
    v3["bzid"], v3["rssi"] = b"\x03" * 12, -70
    with SightingStore.open(db, purge_now=SEEN - 16 * 86_400) as store:
        store.add_bluezone3_sightings(v3)
    code, out, err = check("--keys", str(keys), "--db", str(db), "--jobs", jobs)
    assert code == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("2 exposure(s)"))
    assert lines[at + 1] == (
        "1,234 Bluezone v3 sightings of the last 14 days not checked: v3 phones publish no GAEN keys; check them"
        " against a v3 F0 list with `bluezone check --bluezone3-list FILE` (docs/bluezone3.md)"
    )
    code, out, err = check("--keys", str(keys), "--db", str(db), "--jobs", jobs, "--json")
    assert code == 0, err
    assert json.loads(out)["bluezone3_sightings_not_checked"] == 1_234


def test_check_of_a_store_without_v3_sightings_says_nothing_of_them(scene: tuple[Path, Path]) -> None:
    db, keys = scene
    code, out, _ = check("--keys", str(keys), "--db", str(db))
    assert code == 0 and "Bluezone v3" not in out
    code, out, _ = check("--keys", str(keys), "--db", str(db), "--json")
    assert json.loads(out)["bluezone3_sightings_not_checked"] == 0


def test_an_f2_in_the_same_minutes_as_an_f1_is_said_to_be_that_meeting_not_another_contact(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    """Sitting with a case (F1) and with the case's close contact, who uploaded with a recursive code (F2), over
    the same minutes is one meeting: "2 close contact(s) (F1 1, F2 1)" read as two risks (user31's walk of the demo:
    Chi at the café with An and Binh).  Both stay listed; an F2 at other minutes still counts as a contact of its own."""
    db, _ = scene
    beside, later = b"\xd3" * 16, b"\xd4" * 16  # the case's close contact at the same table; an F1 met later on
    with SightingStore.open(db, create=False, purge_now=SEEN) as store:
        store.add_sightings(np.sort(np.concatenate([encounter(beside, DAY + 62, 25, -72), encounter(later, DAY + 100, 25, -72)]), order="time"))
    keys = make_keys([(b"\xd1" * 16, DAY, 144), (beside, DAY, 144), (later, DAY, 144)])
    keys["report_type"] = [1, 4, 4]
    path = tmp_path / "chain.json"
    path.write_bytes(dump_keys_json(keys))
    code, out, err = check("--scorer", "gaen", "--keys", str(path), "--db", str(db))
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split("  F", 1)[1][:1] for line in lines[:3]] == ["1", "2", "2"]
    assert lines[1].endswith(
        "F2  (a close contact of a close contact)  (the same meeting as the F1 in this list: the case's close contact"
        " was there too; not another contact)"
    )
    assert lines[2].endswith("F2  (a close contact of a close contact)")  # the later one: a contact of its own
    assert lines[3] == "3 exposure(s), 2 close contact(s) (F1 1, F2 1, and an F2 of the same meeting) from 3 keys"
    assert lines[4].startswith("What now: you were near someone who tested positive")  # the meeting's level: F1
    code, out, err = check("--scorer", "gaen", "--keys", str(path), "--db", str(db), "--json")
    data = json.loads(out)
    assert [e["level"] for e in data["exposures"]] == ["F1", "F2", "F2"]  # every exposure still listed, as matched
    assert [e.get("same_meeting_as") for e in data["exposures"]] == [None, 0, None] and data["close_contacts"] == 2
