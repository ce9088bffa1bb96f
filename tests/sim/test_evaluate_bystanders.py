"""`bluezone evaluate` reads the other devices a PACT receiver heard as its other links: the
context bluezone's same-minute reference judges each minute against (never scored themselves)."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from click.testing import CliRunner
from sim_helpers import DATASETS

from bluezone.cli import cli
from bluezone.matching.scoring import get_scorer
from bluezone.sim.datasets import load_dataset
from bluezone.sim.evaluate import minutes_window, bystander_context, evaluate, judged, judged_attenuation, minutes_of


def write_log(tmp_path: Path, rows: list[str]) -> Path:
    folder = tmp_path / "d" / "data" / "HandUP_HandUP"
    folder.mkdir(parents=True)
    (folder / "HandUP_HandUP_5ft_log.txt.gz").write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    return tmp_path / "d"


def test_bystanders_are_other_devices_per_id_without_127_duplicates_or_the_beacon(tmp_path: Path) -> None:
    root = write_log(tmp_path, [
        "2020-05-16 10:00:00.000,Range,5",
        "2020-05-16 10:00:00.100,Bluetooth,B,-60,BlueProxTx,8.0,611316000.100",
        "2020-05-16 10:00:00.110,Bluetooth,X,-80,None,24.0,611316000.110",
        "2020-05-16 10:00:00.111,Bluetooth,Y,-70,LE-Watch,8.0,611316000.1105",
        "2020-05-16 10:00:00.111,Bluetooth,X,-80,None,24.0,611316000.1103",  # X's packet again (0.3 ms)
        "2020-05-16 10:00:00.200,Bluetooth,X,127,None,24.0,611316000.200",  # not available
        "2020-05-16 10:00:00.300,Bluetooth,B,-75,None,-999.0,611316000.300",  # the beacon's id, unnamed
        "2020-05-16 10:00:00.400,Bluetooth,X,-81,None,24.0,611316000.400",
        "2020-05-16 10:00:00.500,Bluetooth,B,-61,BlueProxTx,8.0,611316000.500",
    ])
    plain, = load_dataset(root).recordings
    with_others, = load_dataset(root, bystanders=True).recordings
    assert len(plain.bystanders) == 0
    assert np.array_equal(plain.rssi, with_others.rssi) and plain.rssi.tolist() == [-60, -61]
    b = with_others.bystanders
    assert b["rssi"].tolist() == [-80, -70, -81]
    assert b["link"].tolist()[0] == b["link"].tolist()[2] != b["link"].tolist()[1]


bystander_junk = st.builds(
    lambda t, r, at: f"{t},Bluetooth,OTHER,{r},None,24.0,{at}",
    st.sampled_from(["2020-05-16 10:33:00.000", "yesterday", ""]),
    st.sampled_from(["-60.5", "abc", "300", "-200", "", "127"]),
    st.sampled_from(["611332352.9", "nope", ""]),
)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(bystander_junk, min_size=1, max_size=6), where=st.floats(0.05, 0.95))
def test_junk_bystander_lines_are_skipped_and_change_nothing_else(tmp_path_factory: pytest.TempPathFactory, junk: list[str], where: float) -> None:
    root = tmp_path_factory.mktemp("junk") / "mitll_small"
    shutil.copytree(DATASETS / "mitll_small", root)
    clean = load_dataset(root, bystanders=True).recordings
    log = sorted((root / "data" / "HandDOWN_HandDOWN").glob("*5ft*.txt.gz"))[0]
    lines = gzip.decompress(log.read_bytes()).decode().splitlines(keepends=True)
    at = max(int(len(lines) * where), 12)  # after the first Range line
    lines[at:at] = [j + "\n" for j in junk]
    log.write_bytes(gzip.compress("".join(lines).encode()))
    dirty = load_dataset(root, bystanders=True).recordings
    assert len(clean) == len(dirty)
    for a, b in zip(clean, dirty):
        assert np.array_equal(a.rssi, b.rssi) and np.array_equal(a.times, b.times)
        assert np.array_equal(a.bystanders, b.bystanders)


def test_ng_recordings_have_no_bystanders() -> None:
    assert all(len(r.bystanders) == 0 for r in load_dataset(DATASETS / "ng_small", bystanders=True).recordings)


def test_a_minute_is_judged_against_the_bystanders_heard_in_it() -> None:
    """HandDOWN_HandDOWN's receiver hears dozens of devices at 46-52 dB (their 25th percentile, at
    -24 dBm), far under the 65 dB the same-minute reference centres on: each minute is judged
    0.7 x 8 dB (the clip) farther than alone, and only the minute's own bystanders count."""
    recordings = load_dataset(DATASETS / "mitll_small", bystanders=True).recordings
    minutes = minutes_of(recordings, -24)
    scorer = get_scorer("bluezone")
    assert all(len(m.others) >= 30 for m in minutes)
    context = bystander_context(minutes[:2])
    assert context is not None and context.value_slot is not None and set(context.value_slot.tolist()) == {0, 1}
    for m in minutes:
        window = minutes_window(m.times, m.attenuation)
        bound = judged(scorer, [m])
        typical = bound.score(window).typical_attenuation  # shown as measured, before the correction
        assert judged_attenuation(bound, window, typical) - typical == pytest.approx(0.7 * 8.0)
        assert judged_attenuation(scorer, window, typical) == typical
    alone = replace(minutes[0], others=np.empty(0))
    assert judged(scorer, [alone]) is scorer


def test_evaluate_reads_bystanders_by_default_and_not_with_the_option_off() -> None:
    on = evaluate(DATASETS / "mitll_small", bootstrap=0, chains=20)
    off = evaluate(DATASETS / "mitll_small", bootstrap=0, chains=20, bystanders=False)
    assert on["bystanders"]["read"] and on["bystanders"]["minutes_with_2_or_more"] == on["minutes"]
    assert not off["bystanders"]["read"]
    assert on["scorers"]["gaen"] == off["scorers"]["gaen"]  # GAEN takes no receiver context
    b_on, b_off = on["scorers"]["bluezone"], off["scorers"]["bluezone"]
    assert b_on["detection_by_distance"] != b_off["detection_by_distance"]


def test_cli_option_and_text_line() -> None:
    runner = CliRunner()
    text = runner.invoke(cli, ["evaluate", str(DATASETS / "mitll_small"), "--bootstrap", "0", "--chains", "20"], obj={})
    assert text.exit_code == 0, text.output
    assert "receiver context: other devices heard, at -24 dBm" in text.output
    off = runner.invoke(
        cli, ["evaluate", str(DATASETS / "mitll_small"), "--bootstrap", "0", "--chains", "20", "--no-bystanders", "--json"], obj={}
    )
    assert off.exit_code == 0, off.output
    assert json.loads(off.output)["bystanders"]["read"] is False
