"""A calibration's RSSI correction is its adapter's: a check adds it to the sightings that adapter heard (and to those
stored before the adapter was recorded, as before), not to another adapter's, and says so in one line and in --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matching_helpers import encounter, make_keys

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.config import default_config_path
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.keyfile import dump_keys_json
from bluezone.matching.check import check_keys
from bluezone.matching.scoring import get_scorer
from bluezone.proximity.store import SightingStore
from bluezone.proximity.store.adapters import RssiCorrection

DAY = 2_900_016
SEEN = (DAY + 144) * INTERVAL_SECONDS
HERE, THERE = "00:1A:7D:DA:71:13", "5C:F3:70:8B:12:01"
TEK = b"\xd1" * 16


def swapped_mid_exposure(tmp_path: Path, first: str | None = HERE, then: str | None = THERE) -> tuple[Path, Path]:
    """A node near one phone for 40 minutes: the first 20 heard at -80 dBm by adapter ``first``, then (a dongle
    swapped) 20 at -70 by ``then`` (None: stored with no adapter recorded, as before schema 14).  The phone's AEM
    says TX -20 dBm."""
    rows = encounter(TEK, DAY + 60, 40, -80)
    late = rows["time"] >= (DAY + 62) * INTERVAL_SECONDS
    rows["rssi"][late] = -70
    db = tmp_path / "node.db"
    with SightingStore.open(db) as store:
        store.add_sightings(rows[~late], adapter=first)
        store.add_sightings(rows[late], adapter=then)
    keys = tmp_path / "keys.json"
    keys.write_bytes(dump_keys_json(make_keys([(TEK, DAY, 144)])))
    return db, keys


def test_only_the_calibrated_adapters_sightings_are_corrected(tmp_path: Path) -> None:
    db, keys = swapped_mid_exposure(tmp_path)
    gaen = get_scorer("gaen")
    mine = check_keys(keys, db, scorer=gaen, rssi_correction=RssiCorrection(6, HERE), now=SEEN)
    everyone = check_keys(keys, db, scorer=gaen, rssi_correction=6, now=SEEN)  # a number alone: every sighting
    (exposure,) = mine.exposures
    (before,) = everyone.exposures
    # attenuation = TX - (RSSI + correction): the other adapter's -70 read as it is (50 dB), not as -64 (44 dB)
    assert before.score.closest_attenuation == 44 and exposure.score.closest_attenuation == 50
    there = sum(1 for t in encounter(TEK, DAY + 60, 40, -80)["time"] if t >= (DAY + 62) * INTERVAL_SECONDS)
    assert exposure.uncorrected == ((THERE, there),) and exposure.unrecorded == 0
    assert before.uncorrected == () and before.unrecorded == 0


def test_the_calibrated_adapters_own_sightings_read_as_before(tmp_path: Path) -> None:
    db, keys = swapped_mid_exposure(tmp_path, HERE, HERE)
    gaen = get_scorer("gaen")
    mine = check_keys(keys, db, scorer=gaen, rssi_correction=RssiCorrection(6, HERE.lower()), now=SEEN)
    everyone = check_keys(keys, db, scorer=gaen, rssi_correction=6, now=SEEN)
    assert [e.score for e in mine.exposures] == [e.score for e in everyone.exposures]
    assert mine.exposures[0].uncorrected == ()


def check(*args: str, config: str | None = None) -> tuple[int, str]:
    path = default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if config is not None:
        path.write_text(config)
    try:
        out = CliRunner().invoke(cli, ["check", "--scorer", "gaen", *args], obj={"clock": VirtualClock(SEEN)})
    finally:
        path.unlink(missing_ok=True)
    return out.exit_code, out.stdout


CALIBRATED = f'rssi_correction = 6\ncalibration_adapter = "{HERE}"\n'


def test_check_says_in_one_line_which_sightings_another_adapter_heard(tmp_path: Path) -> None:
    db, keys = swapped_mid_exposure(tmp_path)
    code, out = check("--keys", str(keys), "--db", str(db), config=CALIBRATED)
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("RSSI correction")]
    assert line.startswith(f"RSSI correction +6 dB (calibrated on adapter {HERE}): not applied to 120 of these"
                           f" exposures' 240 sightings, heard by adapter {THERE} (run `bluezone calibrate` on it")
    code, out = check("--keys", str(keys), "--db", str(db), "--json", config=CALIBRATED)
    report = json.loads(out)
    assert report["rssi_correction"] == {"db": 6, "adapter": HERE, "uncorrected_sightings": {THERE: 120},
                                         "unrecorded_sightings": 0}
    assert report["exposures"][0]["uncorrected_sightings"] == {THERE: 120}
    assert report["exposures"][0]["closest_attenuation_db"] == 50
    # the store read in a thread and the keys in workers: the same report
    assert json.loads(check("--keys", str(keys), "--db", str(db), "--json", "--jobs", "2", config=CALIBRATED)[1]) == report


def test_sightings_stored_before_the_adapter_was_recorded_are_corrected_as_before_and_said(tmp_path: Path) -> None:
    db, keys = swapped_mid_exposure(tmp_path, None, HERE)
    code, out = check("--keys", str(keys), "--db", str(db), config=CALIBRATED)
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("RSSI correction")]
    assert line == (f"RSSI correction +6 dB (calibrated on adapter {HERE}): applied as before to 120 of these exposures' 240"
                    " sightings, stored before bluezone recorded which adapter heard them")
    report = json.loads(check("--keys", str(keys), "--db", str(db), "--json", config=CALIBRATED)[1])
    assert report["exposures"][0]["closest_attenuation_db"] == 44  # both halves corrected
    assert report["rssi_correction"]["unrecorded_sightings"] == 120


@pytest.mark.parametrize("config", [
    "rssi_correction = 6\n",  # calibrated before the adapter was recorded: every sighting, as before
    None,  # --rssi-correction typed: every sighting
])
def test_a_correction_of_no_known_adapter_is_added_to_every_sighting_and_nothing_said(
    tmp_path: Path, config: str | None
) -> None:
    db, keys = swapped_mid_exposure(tmp_path)
    typed = [] if config else ["--rssi-correction", "6"]
    code, out = check("--keys", str(keys), "--db", str(db), *typed, config=config)
    assert code == 0 and "RSSI correction" not in out
    report = json.loads(check("--keys", str(keys), "--db", str(db), "--json", *typed, config=config)[1])
    assert report["exposures"][0]["closest_attenuation_db"] == 44
    assert report["rssi_correction"] == {"db": 6, "adapter": None, "uncorrected_sightings": {}, "unrecorded_sightings": 0}


def test_no_correction_leaves_the_json_as_it_was(tmp_path: Path) -> None:
    db, keys = swapped_mid_exposure(tmp_path)
    report = json.loads(check("--keys", str(keys), "--db", str(db), "--json")[1])
    assert "rssi_correction" not in report and "uncorrected_sightings" not in report["exposures"][0]
    assert np.isclose(report["exposures"][0]["closest_attenuation_db"], 50)


@pytest.mark.parametrize("db", [30, -21])
def test_a_correction_beyond_what_bluezone_believes_is_not_applied_by_check_as_by_the_venue_rules(
    tmp_path: Path, db: int
) -> None:
    """One policy (config.TRUSTED_CORRECTION_DB): check added up to +-40 dB where the venue rules stopped at +-20."""
    db_path, keys = swapped_mid_exposure(tmp_path, HERE, HERE)
    config = f'rssi_correction = {db}\ncalibration_adapter = "{HERE}"\n'
    code, out = check("--keys", str(keys), "--db", str(db_path), config=config)
    assert code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("RSSI correction")]
    assert line == (f"RSSI correction {db:+d} dB (the daemon config's) is beyond the +-20 dB bluezone believes: not"
                    " applied, each sighting read as heard (as venue check-ins read them); calibrate again"
                    " (docs/calibration.md)")
    report = json.loads(check("--keys", str(keys), "--db", str(db_path), "--json", config=config)[1])
    assert report["exposures"][0]["closest_attenuation_db"] == 50  # -70 dBm from TX -20, as heard
    assert report["rssi_correction"] == {"db": 0, "adapter": HERE, "uncorrected_sightings": {},
                                         "unrecorded_sightings": 0, "not_believed_db": db}


def test_the_bound_itself_is_believed_and_a_typed_correction_beyond_it_refused(tmp_path: Path) -> None:
    db_path, keys = swapped_mid_exposure(tmp_path, HERE, HERE)
    report = json.loads(check("--keys", str(keys), "--db", str(db_path), "--json",
                              config=f'rssi_correction = 20\ncalibration_adapter = "{HERE}"\n')[1])
    assert report["exposures"][0]["closest_attenuation_db"] == 30 and "not_believed_db" not in report["rssi_correction"]
    result = CliRunner().invoke(cli, ["check", "--keys", str(keys), "--db", str(db_path), "--rssi-correction", "21"],
                                obj={"clock": VirtualClock(SEEN)})
    assert result.exit_code == 2 and result.stdout == "" and "--rssi-correction" in result.stderr
