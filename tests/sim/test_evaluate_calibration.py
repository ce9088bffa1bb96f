"""`bluezone evaluate` reads each named phone with Google's calibration table, and reports nDCF at TC4TL's distances."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sim_helpers import DATASETS

from bluezone.calibration.table import default_table
from bluezone.cli import cli
from bluezone.sim.datasets import load_dataset
from bluezone.matching.matcher import ExposureWindow
from bluezone.sim.evaluate import (
    BEACON_TX_POWER,
    distance_decisions,
    distance_shift_db,
    calibrations,
    minutes_of,
    ndcf_at_distance,
    verdict_minutes,
)


def run(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["evaluate", *args, "--json", "--bootstrap", "3", "--chains", "40"], obj={})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_ng_phones_are_named_and_the_htc_is_read_with_its_calibration() -> None:
    recordings = load_dataset(DATASETS / "ng_small").recordings
    assert {(r.receiver, r.transmitter) for r in recordings} == {("HTC One M9", "gryphonelab"), ("gryphonelab", "HTC One M9")}
    links, summary = calibrations(recordings, default_table(), -24)
    assert summary["phones"]["HTC One M9"] == {
        "manufacturer": "HTC", "model": "HTC One M9", "rssi_correction_db": 4, "tx_power_dbm": -30, "source": "measured"
    }
    assert summary["nominal"] == ["gryphonelab RSSI correction", "gryphonelab TX power"]
    plain = minutes_of(recordings, -24)
    calibrated = minutes_of(recordings, -24, links)
    assert len(plain) == len(calibrated)
    for p, c in zip(plain, calibrated):  # the same minutes, only the attenuation moves
        assert p.rid == c.rid and np.array_equal(p.times, c.times)
    shift = {(p.setup, round(float(np.mean(c.attenuation - p.attenuation)), 6)) for p, c in zip(plain, calibrated)}
    # heard the HTC (TX -30 instead of -24): 6 dB less; the HTC heard gryphonelab (+4 dB correction): 4 dB less
    assert shift == {("HandHand/HTC One M9", -6.0), ("HandHand/gryphonelab", -4.0)}


def test_pact_phones_are_iphones_the_tables_reference() -> None:
    recordings = load_dataset(DATASETS / "mitll_small").recordings
    assert {(r.receiver, r.transmitter) for r in recordings} == {("iPhone 11 Pro Max", "iPhone 11")}
    links, summary = calibrations(recordings, default_table(), -24)
    assert summary["phones"]["iPhone 11 Pro Max"]["source"] == "reference"
    assert summary["nominal"] == ["iPhone 11 TX power"]  # Apple's TX power is not in Google's table
    assert {(link.tx_power_dbm, link.rssi_correction_db) for link in links.values()} == {(-24.0, 0.0)}


@pytest.mark.parametrize("name", ["mitll_small", "ng_small"])
def test_evaluate_reports_calibration_and_ndcf(name: str) -> None:
    report = run(str(DATASETS / name))
    assert report["calibration"]["table"] == "en-calibration-2020-06-13.csv"
    for s in report["scorers"].values():
        assert set(s["ndcf"]) == {"1.2", "1.8", "3.0"}
        for d, v in s["ndcf"].items():
            if v["ndcf"] is not None:
                assert v["ndcf"] == pytest.approx(v["p_miss"] + v["p_fa"], abs=1e-3) and 0 <= v["ndcf"] <= 2
        assert any(k.startswith("ndcf_") for k in s["ci95"])


def test_no_calibration_reads_every_phone_at_the_nominal_values() -> None:
    on, off = run(str(DATASETS / "ng_small")), run(str(DATASETS / "ng_small"), "--no-calibration")
    assert off["calibration"]["table"] is None and off["calibration"]["nominal"]
    assert on["scorers"]["gaen"]["detection_by_distance"] != off["scorers"]["gaen"]["detection_by_distance"] or (
        on["scorers"]["gaen"]["roc_auc"] == off["scorers"]["gaen"]["roc_auc"]
    )


def test_plain_output_shows_calibration_and_ndcf() -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), "--bootstrap", "0", "--chains", "20"], obj={})
    assert result.exit_code == 0, result.output
    assert "calibration: en-calibration-2020-06-13.csv: HTC One M9 (measured: +4 dB, TX -30)" in result.output
    assert "nDCF = P_miss + P_fa at TC4TL distances: 1.2 m:" in result.output
    assert "nan" not in result.output and "[n/a, n/a]" in result.output  # no interval without a bootstrap


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calibration-table", "/nonexistent.csv"], "cannot read calibration table"),
        (["--tx-power", "99"], "tx-power"),
        (["--no-calibration", "--calibration-table", "x.csv"], "contradict"),
    ],
)
def test_bad_calibration_arguments_exit_2_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), *args], obj={})
    assert result.exit_code == 2 and message in result.output


def test_a_malformed_calibration_table_exits_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "t.csv"
    bad.write_text("oem,model,rssi correction,tx,has direct measurement\nHTC,HTC One M9,four,-30,yes\n")
    result = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), "--calibration-table", str(bad)], obj={})
    assert result.exit_code == 2 and "line 2" in result.output and result.output.count("\n") <= 2


def test_ndcf_of_fixed_decisions() -> None:
    within = np.array([True, True, False, False])
    rank = np.array([4.0, 3.0, 2.0, 1.0])
    everyone = ndcf_at_distance(within, np.ones(4, bool), rank)
    assert (everyone["ndcf"], everyone["p_miss"], everyone["p_fa"], everyone["roc_auc"]) == (1.0, 0.0, 1.0, 1.0)
    assert ndcf_at_distance(within, within, rank)["ndcf"] == 0.0
    assert ndcf_at_distance(within, ~within, rank)["ndcf"] == 2.0
    assert ndcf_at_distance(np.ones(3, bool), np.ones(3, bool), rank[:3])["ndcf"] is None  # one class only


def test_an_rssi_shift_is_a_calibration_error_of_every_phone() -> None:
    from bluezone.sim.evaluate import evaluate

    # PACT phones are iPhones read at a given TX power: +6 dB on every RSSI is the same as 6 dB less TX power
    shifted = evaluate(DATASETS / "mitll_small", bootstrap=0, chains=40, tx_power=-24, rssi_shift_db=6.0)
    lowered = evaluate(DATASETS / "mitll_small", bootstrap=0, chains=40, tx_power=-30)
    assert shifted["rssi_shift_db"] == 6.0 and shifted["scorers"] == lowered["scorers"]
    result = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), "--rssi-shift", "40"], obj={})
    assert result.exit_code == 2 and "--rssi-shift" in result.output


def test_the_distance_shift_is_the_path_loss_models() -> None:
    # n = 2 (docs/radio-model.md): 20 * log10(D / 2 m) dB more attenuation than at 2 m
    assert distance_shift_db(2.0) == 0.0
    assert distance_shift_db(1.2) == pytest.approx(-4.437, abs=1e-3)
    assert distance_shift_db(1.8) == pytest.approx(-0.915, abs=1e-3)
    assert distance_shift_db(3.0) == pytest.approx(3.522, abs=1e-3)
    assert distance_shift_db(4.0, exponent=3.0) == pytest.approx(9.031, abs=1e-3)


def test_a_decision_per_distance_moves_every_threshold_of_both_scorers() -> None:
    bz, gaen = distance_decisions("bluezone"), distance_decisions("gaen")
    assert bz is not None and gaen is not None and set(bz) == set(gaen) == {"1.2", "1.8", "3.0"}
    assert bz["1.2"].config.threshold_db == pytest.approx(59.0 - 4.437, abs=1e-3)  # type: ignore[attr-defined]
    assert bz["3.0"].config.threshold_db == pytest.approx(59.0 + 3.522, abs=1e-3)  # type: ignore[attr-defined]
    # GAEN's thresholds are whole dB in the API: moved by the rounded shift, all three together
    assert [(g.config.immediate_db, g.config.near_db, g.config.medium_db) for g in gaen.values()] == [  # type: ignore[attr-defined]
        (51, 59, 69), (54, 62, 72), (59, 67, 77)
    ]
    assert distance_decisions("no-such-scorer") is None


def _minute(attenuation: float) -> ExposureWindow:
    times = np.linspace(0.0, 59.0, 60)
    att = np.full(60, int(attenuation), np.int32)
    return ExposureWindow(key_index=0, day=0, times=times, rssi=-24 - att, attenuation=att, tx_power_estimated=False)


@pytest.mark.parametrize(("name", "attenuation"), [("bluezone", 57), ("gaen", 61)])
def test_a_minute_between_the_1_2_m_and_the_2_m_thresholds_is_within_2_m_but_not_within_1_2_m(name: str, attenuation: int) -> None:
    from bluezone.matching.scoring import get_scorer

    deciders = distance_decisions(name)
    assert deciders is not None
    assert verdict_minutes(get_scorer(name).score(_minute(attenuation))) >= 0.5
    assert verdict_minutes(deciders["1.2"].score(_minute(attenuation))) < 0.5
    assert verdict_minutes(deciders["3.0"].score(_minute(attenuation))) >= 0.5


def test_evaluate_reports_ndcf_of_a_decision_per_distance() -> None:
    report = run(str(DATASETS / "ng_small"))
    for s in report["scorers"].values():
        per = s["ndcf_per_distance"]
        assert set(per) == {"1.2", "1.8", "3.0"}
        assert [per[d]["threshold_shift_db"] for d in ("1.2", "1.8", "3.0")] == [-4.44, -0.92, 3.52]
        for v in per.values():
            if v["ndcf"] is not None:
                assert v["ndcf"] == pytest.approx(v["p_miss"] + v["p_fa"], abs=1e-3)
        assert any(k.startswith("ndcf_per_distance_") for k in s["ci95"])
    result = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), "--bootstrap", "0", "--chains", "20"], obj={})
    assert "nDCF, a decision for each distance (thresholds moved by the path-loss model): 1.2 m:" in result.output
    assert "(-4.4 dB)" in result.output and "(+3.5 dB)" in result.output


def test_pact_beacons_are_read_at_their_measured_power_unless_told_otherwise() -> None:
    beacon = BEACON_TX_POWER["mitll_pact"]
    recordings = load_dataset(DATASETS / "mitll_small").recordings
    links, summary = calibrations(recordings, default_table(), -24, beacon)
    assert {(link.tx_power_dbm, link.rssi_correction_db) for link in links.values()} == {(-3.0, 0.0)}
    assert summary["nominal"] == [] and summary["beacon_tx_power"]["dbm"] == -3.0
    measured = run(str(DATASETS / "mitll_small"))
    assert measured["calibration"]["beacon_tx_power"] == {"dbm": -3.0, "source": beacon.source}
    told = run(str(DATASETS / "mitll_small"), "--tx-power", "-24")  # the user's value wins
    assert told["calibration"]["beacon_tx_power"] is None and told["calibration"]["nominal"] == ["iPhone 11 TX power"]
    plain = run(str(DATASETS / "mitll_small"), "--no-calibration")  # a measured power is a calibration too
    assert plain["calibration"]["table"] is None and plain["nominal_tx_power_dbm"] == -24
    assert run(str(DATASETS / "ng_small"))["calibration"]["beacon_tx_power"] is None
    # 21 dB more TX power than the nominal: every attenuation 21 dB higher
    nominal = minutes_of(recordings, -24)
    for n, m in zip(nominal, minutes_of(recordings, -24, links)):
        assert np.allclose(m.attenuation - n.attenuation, 21.0)
    text = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "mitll_small"), "--bootstrap", "0", "--chains", "20"], obj={})
    assert "transmitters without a TX power in it at -3 dBm (BlueProx app on iPhones" in text.output


def test_ndcf_close_judges_the_default_decision_against_closer_than_2_m() -> None:
    """A window at 1.9 m is close for the 2 m question but not within 1.8 m: the two differ."""
    from bluezone.sim.evaluate import _window_metrics

    distances = np.array([0.5, 1.0, 1.9, 1.9, 3.0, 4.0])
    score = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # the decision flags everything under 2 m
    rank = -np.array([50.0, 52.0, 56.0, 57.0, 63.0, 66.0])
    out = _window_metrics(distances < 2.0, score, rank, distances)
    assert out["ndcf_close"] == {"ndcf": 0.0, "p_miss": 0.0, "p_fa": 0.0, "roc_auc": 1.0}
    assert out["ndcf"]["1.8"]["p_fa"] == 0.5  # the two 1.9 m windows are false alarms within 1.8 m


def test_evaluate_reports_ndcf_close_with_an_interval() -> None:
    report = run(str(DATASETS / "ng_small"))
    for s in report["scorers"].values():
        v = s["ndcf_close"]
        assert v["ndcf"] is not None and v["ndcf"] == pytest.approx(v["p_miss"] + v["p_fa"], abs=1e-3)
        assert "ndcf_close" in s["ci95"]
    text = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), "--bootstrap", "0", "--chains", "20"], obj={})
    assert "closer than 2 m (the decision's own question):" in text.output


@pytest.mark.parametrize("name", ["mitll_small", "ng_small"])
def test_one_minute_figures_do_not_depend_on_the_ranking(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-minute window is flagged by the verdict's minutes, not by weighted minutes: bluezone's
    chain only ranks (one minute's posterior of near is far below 0.5), so with it every one-minute
    figure, and the chains' verdicts, are those of the earlier ramp ranking, to the last digit."""
    from bluezone.sim import evaluate as ev

    real = ev.get_scorer

    def ramp(scorer: str = "bluezone", config_path=None, overrides=None):  # type: ignore[no-untyped-def]
        if scorer == "bluezone":
            overrides = {**(overrides or {}), "ranking": "ramp"}
        return real(scorer, config_path, overrides)

    chain = ev.evaluate(DATASETS / name, chains=40, bootstrap=3, scorers=["bluezone"])["scorers"]["bluezone"]
    monkeypatch.setattr(ev, "get_scorer", ramp)
    before = ev.evaluate(DATASETS / name, chains=40, bootstrap=3, scorers=["bluezone"])["scorers"]["bluezone"]
    assert chain.pop("minutes_mae") != before.pop("minutes_mae")  # the chains' weighted minutes did change
    assert chain == before
    assert sum(before["confusion"].values()) > 0 and any(v > 0 for v in before["detection_by_distance"].values())
