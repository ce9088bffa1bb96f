"""Dataset loaders on other people's files: odd lines are skipped and counted, bad files skipped, never a crash."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import DATASETS

from bluezone.cli import cli
from bluezone.errors import DatasetError
from bluezone.sim.datasets import load_dataset

PACT_DIR = "data/HandDOWN_HandDOWN"
NG_CSV = "data/HandHand/RSS_humanHH.csv"


def copy(name: str, tmp: Path) -> Path:
    dest = tmp / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(DATASETS / name, dest)
    return dest


def same_recordings(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x.rid == y.rid and x.distance_m == y.distance_m and np.array_equal(x.rssi, y.rssi) and np.array_equal(x.times, y.times)
        for x, y in zip(a, b)
    )


junk_line = st.one_of(
    st.text(max_size=60).map(lambda s: s.replace("\n", " ").replace("\r", " ")),
    st.builds(lambda v: f"2020-05-16 10:33:00.000,Range,{v}", st.sampled_from(["x", "-3", "0", "nan", "", "1e999"])),
    st.builds(
        lambda t, r, tx, at: f"{t},Bluetooth,ID,{r},BlueProxTx,{tx},{at}",
        st.sampled_from(["2020-05-16 10:33:00.000", "yesterday", ""]),
        st.sampled_from(["-60.5", "abc", "300", "-200", ""]),
        st.sampled_from(["8.0", "x"]),
        st.sampled_from(["611332352.9", "nope"]),
    ),
)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(junk_line, min_size=1, max_size=8), where=st.floats(0.05, 0.95))
def test_junk_lines_in_a_pact_log_are_skipped_and_change_nothing_else(tmp_path: Path, junk: list[str], where: float) -> None:
    root = copy("mitll_small", tmp_path)
    clean = load_dataset(root)
    log = sorted((root / PACT_DIR).glob("*5ft*.txt.gz"))[0]
    lines = gzip.decompress(log.read_bytes()).decode().splitlines(keepends=True)
    at = max(int(len(lines) * where), 12)  # after the first Range line
    lines[at:at] = [j + "\n" for j in junk]
    log.write_bytes(gzip.compress("".join(lines).encode()))
    dirty = load_dataset(root)
    assert same_recordings(clean.recordings, dirty.recordings)


def test_malformed_pact_rows_are_counted(tmp_path: Path) -> None:
    root = copy("mitll_small", tmp_path)
    log = sorted((root / PACT_DIR).glob("*5ft*.txt.gz"))[0]
    text = gzip.decompress(log.read_bytes()).decode()
    text += "2020-05-16 10:40:00.000,Bluetooth,ID,abc,BlueProxTx,8.0,1.0\n2020-05-16 10:40:00.000,Range,x\n"
    log.write_bytes(gzip.compress(text.encode()))
    problems = load_dataset(root).problems
    assert problems == [f"{log.relative_to(root / 'data')}: 2 malformed line(s) skipped"]


def test_a_corrupt_file_is_skipped_and_reported_by_evaluate(tmp_path: Path) -> None:
    root = copy("mitll_small", tmp_path)
    bad = root / PACT_DIR / "HandDOWN_HandDOWN_8ft_log_broken.txt.gz"
    bad.write_bytes(gzip.compress(b"2020-05-16 10:32:32.810,Range,8\n")[:-12])  # truncated gzip
    data = load_dataset(root)
    assert len({r.rid for r in data.recordings}) == 2
    assert len(data.problems) == 1 and "broken" in data.problems[0] and "skipped" in data.problems[0]
    result = CliRunner().invoke(cli, ["evaluate", str(root), "--json", "--bootstrap", "0", "--chains", "20"], obj={})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == data.problems and report["recordings"] == 2


def test_a_pact_log_that_decompresses_past_the_limit_is_skipped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1.5 MB .gz of 5M repeated rows took 3.3 GB and 106 s (every row kept as Python objects); now
    a log larger than MAX_LOG_BYTES once decompressed is skipped as a corrupt one is (the limit made
    small here; the real one is 64 MiB, 32 times MIT LL's largest log)."""
    from bluezone.sim import datasets

    root = copy("mitll_small", tmp_path)
    clean = load_dataset(root)
    limit = max(len(gzip.decompress(p.read_bytes())) for p in (root / PACT_DIR).glob("*.txt.gz"))
    monkeypatch.setattr(datasets, "MAX_LOG_BYTES", limit)
    row = b"2020-05-16 10:33:00.000,Bluetooth,ID,-60,BlueProxTx,8.0,611332352.9\n"
    bomb = root / PACT_DIR / "HandDOWN_HandDOWN_8ft_log_bomb.txt.gz"
    bomb.write_bytes(gzip.compress(b"2020-05-16 10:32:32.810,Range,8\n" + row * (limit // len(row) + 1)))
    data = load_dataset(root)
    assert same_recordings(clean.recordings, data.recordings)
    assert len(data.problems) == 1 and "bomb" in data.problems[0] and "once decompressed" in data.problems[0]


def test_ng_rows_out_of_range_skipped_missing_column_skips_file(tmp_path: Path) -> None:
    root = copy("ng_small", tmp_path)
    csv_path = root / NG_CSV
    clean = load_dataset(root)
    with csv_path.open("a", newline="") as f:
        f.write("gryphonelab,1.0,-500,0,0,120,1\r\nHTC One M9,x,-70,0,0,120,1\r\ngryphonelab,2.0,-70,0,0,-5,1\r\nshort,row\r\n")
        # 1e30 cm: was read as a recording "detected at 9999999999999999583119736832.00 m"
        f.write("gryphonelab,3.0,-70,0,0,1000000000000000000000000000000,1\r\n")
        # elapsed 1e308: its recording spanned infinity, and GAEN's F1 on the dataset moved 0.76 -> 0.59
        f.write("gryphonelab,1e308,-70,0,0,120,1\r\n")
    dirty = load_dataset(root)
    assert same_recordings(clean.recordings, dirty.recordings)
    assert dirty.problems == ["HandHand/RSS_humanHH.csv: 6 malformed line(s) skipped"]
    csv_path.write_text("device,elapsed,rss\r\ngryphonelab,1.0,-70\r\n")
    with pytest.raises(DatasetError, match="no usable recordings.*without column.*dist"):
        load_dataset(root)


def test_evaluate_with_no_usable_file_exits_2_in_one_line(tmp_path: Path) -> None:
    root = copy("ng_small", tmp_path)
    (root / NG_CSV).write_bytes(b"\x00\xff garbage")
    result = CliRunner().invoke(cli, ["evaluate", str(root)], obj={})
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no usable recordings" in result.output


def test_duplicates_without_apples_clock_are_dropped_on_the_wall_clock(tmp_path: Path) -> None:
    """The iPhone 6s logs have no Apple time (-1); their duplicates sit 0-3 ms apart on the
    millisecond wall clock (1 ms caught half of them), real adverts tens of ms apart."""
    rows = [
        "2020-05-16 10:00:00.000,Range,5",
        "2020-05-16 10:00:00.100,Bluetooth,ID,-60,BlueProxTx,-999.0,-1.0",
        "2020-05-16 10:00:00.102,Bluetooth,ID,-60,BlueProxTx,-999.0,-1.0",  # the same packet again
        "2020-05-16 10:00:00.160,Bluetooth,ID,-60,BlueProxTx,-999.0,-1.0",  # the next advert
        "2020-05-16 10:00:00.161,Bluetooth,ID,-61,BlueProxTx,-999.0,-1.0",  # another RSSI: another packet
    ]
    folder = tmp_path / "d" / "data" / "HandUP_PurseDOWN"
    folder.mkdir(parents=True)
    (folder / "HandUP_PurseDOWN_5ft_log.txt.gz").write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    (recording,) = load_dataset(tmp_path / "d").recordings
    assert recording.rssi.tolist() == [-60, -60, -61]


def test_the_bootstrap_keeps_each_setups_near_and_far_recordings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resampling whole recordings across the board often lost every far recording of a setup, whose
    chains were then all close contacts: the intervals sat above the point estimates."""
    from bluezone.sim import evaluate as ev

    seen: list[dict[tuple[str, bool], int]] = []
    real = ev._chains

    def counting(minutes, count, rng):  # type: ignore[no-untyped-def]
        kinds: dict[tuple[str, bool], set[str]] = {}
        for m in minutes:
            kinds.setdefault((m.setup, m.distance_m < ev.CLOSE_M), set()).add(m.rid)
        seen.append({k: len(v) > 0 for k, v in kinds.items()})
        return real(minutes, count, rng)

    monkeypatch.setattr(ev, "_chains", counting)
    ev.evaluate(DATASETS / "ng_small", bootstrap=20, chains=40, scorers=["bluezone"])
    point, samples = seen[0], seen[1:]
    assert len(samples) == 20 and all(set(s) == set(point) for s in samples)


@pytest.mark.parametrize("layout", [("mitll_small", "HandDOWN_HandDOWN/zz.txt.gz"), ("ng_small", "HandHand/zz.csv")])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_file_that_is_no_regular_file_is_skipped_and_reported(tmp_path: Path, layout: tuple[str, str], kind: str) -> None:
    """A FIFO among the recordings hung evaluate; a link to /dev/zero ran it out of memory."""
    import os

    root = copy(layout[0], tmp_path)
    odd = root / "data" / layout[1]
    if kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.symlink_to("/dev/zero")
    dataset = load_dataset(root)
    assert dataset.recordings and any("not a regular file" in p for p in dataset.problems)


def test_the_folder_of_datasets_names_them(tmp_path: Path) -> None:
    """`bluezone evaluate tests/data/datasets/` (the folder, not one dataset) said only 'no data/
    directory'; it names the datasets inside, so the newcomer sees what to give."""
    shipped = Path(__file__).parents[1] / "data" / "datasets"
    result = CliRunner().invoke(cli, ["evaluate", str(shipped)], obj={})
    assert result.exit_code == 2, result.output
    assert "datasets in it: mitll_small, ng_small" in result.output
    empty = CliRunner().invoke(cli, ["evaluate", str(tmp_path)], obj={})
    assert empty.exit_code == 2 and "no data/ directory" in empty.output and "in it" not in empty.output


def test_a_researchers_own_csv_recordings_are_evaluated(tmp_path: Path) -> None:
    """The layout docs/simulation.md ("Your own recordings") describes: one CSV per setup, two phones
    each heard at whole-centimetre distances; read into one recording per (setup, distance, phone)."""
    rng = np.random.default_rng(3)
    lines = ["device,elapsed,rss,dist"]
    for dist in (50, 100, 300, 400):
        for device in ("Pixel 4a", "SM-G973F"):
            times = np.cumsum(rng.exponential(0.5, 2000))
            lines += [f"{device},{t:.2f},{int(-60 - 20 * np.log10(dist / 100) + rng.normal(0, 4))},{dist}" for t in times]
    (tmp_path / "mine" / "data" / "Table").mkdir(parents=True)
    (tmp_path / "mine" / "data" / "Table" / "session1.csv").write_text("\n".join(lines) + "\n")
    dataset = load_dataset(tmp_path / "mine")
    assert dataset.layout == "ng_rss_smartphone" and dataset.problems == []
    assert sorted({(r.distance_m, r.transmitter, r.receiver) for r in dataset.recordings}) == [
        (d, tx, rx) for d in (0.5, 1.0, 3.0, 4.0) for tx, rx in (("Pixel 4a", "SM-G973F"), ("SM-G973F", "Pixel 4a"))
    ]
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "mine"), "--bootstrap", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recordings"] == 4  # one per (setup, distance), both phones in it


def test_own_recordings_in_the_wrong_shape_say_what_is_expected(tmp_path: Path) -> None:
    """'no data/ directory (expected README, manifest.csv, data/)' named two files nothing reads and not
    the one that matters; distances in metres were '2 malformed line(s) skipped' with no word why."""
    (tmp_path / "m" / "data" / "X").mkdir(parents=True)
    (tmp_path / "m" / "data" / "X" / "a.csv").write_text("device,elapsed,rss,dist\nA,1.0,-60,1.5\nA,2.0,-61,1.5\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", str(tmp_path / "m"), "--bootstrap", "0"])
    assert result.exit_code == 2 and "rss (whole dBm), dist (whole cm)" in result.output, result.output
    result = runner.invoke(cli, ["evaluate", str(tmp_path / "m" / "data"), "--bootstrap", "0"])  # one level too deep
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith(f"give the directory above it ({tmp_path / 'm'})")
    result = runner.invoke(cli, ["evaluate", str(tmp_path / "nothing"), "--bootstrap", "0"])
    assert result.exit_code == 2 and "DATASET/data/<setup>/*.csv" in result.output, result.output
    assert "manifest.csv" not in result.output


def test_setup_folders_made_without_data_are_told_where_they_go(tmp_path: Path) -> None:
    """A dataset made as DATASET/<setup>/*.csv (no data/ level) was told "give the directory above it
    (.)", whose parent holds no data/ either (walk14): it is told to move the setup folders into data/."""
    (tmp_path / "mine" / "Hand").mkdir(parents=True)
    (tmp_path / "mine" / "Hand" / "a.csv").write_text("device,elapsed,rss,dist\nA,1.0,-60,150\n")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "mine"), "--bootstrap", "0"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith(f"move its setup folders into {tmp_path / 'mine' / 'data'}/")
    assert "above it" not in result.output


@pytest.mark.parametrize(("option", "value", "top"), [("--chains", "100001", "100000"), ("--bootstrap", "10001", "10000")])
def test_evaluate_refuses_work_that_would_run_for_days(option: str, value: str, top: str, tmp_path: Path) -> None:
    """--chains 1e9 ran for days and held ~830 MB within its first minute: a usage error up front now."""
    result = CliRunner().invoke(cli, ["evaluate", option, value, str(tmp_path / "none")], obj={})
    assert result.exit_code == 2
    assert f"{value} is not in the range" in result.output and top in result.output


def test_the_text_report_says_which_figures_are_per_minute_and_which_chained() -> None:
    """ROC-AUC and PR-AUC judge one-minute windows, precision / recall / F1 the chained exposures, the
    detection rates windows again: one header row over all of them did not say so (walk12, reading
    `evaluate` on the shared datasets), and "detected per distance" read as detected contacts."""
    result = CliRunner().invoke(cli, ["evaluate", str(DATASETS / "ng_small"), "--bootstrap", "0", "--chains", "20"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("scorer"))
    over = lines[header - 1]
    assert over.strip() == "1-minute windows | chained 20-minute exposures"
    assert over.index("1-minute windows") < lines[header].index("ROC-AUC")  # over the window figures
    assert lines[header].index("PR-AUC") < over.index("chained") <= lines[header].index("precision")
    assert sum("one-minute windows flagged, per distance: 1.20 m: " in line for line in lines) == 2  # both scorers


def test_skipped_lines_are_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With nothing usable the error names what was skipped, and a WARNING line with a timestamp said the
    same first: two lines on stderr for one bad input (walk14). Beside usable recordings it is still a warning."""
    setup = tmp_path / "m" / "data" / "X"
    setup.mkdir(parents=True)
    (setup / "a.csv").write_text("device,elapsed,rss,dist\nA,1.0,-60,1.5\nA,2.0,-61,1.5\n")
    with caplog.at_level("WARNING", logger="bluezone.sim.datasets"), pytest.raises(DatasetError, match="2 malformed"):
        load_dataset(tmp_path / "m")
    assert caplog.records == []
    rows = [f"{d},{t / 4:.2f},{-60 - (t % 7)},{cm}" for cm in (50, 300) for d in ("A", "B") for t in range(2400)]
    (setup / "b.csv").write_text("device,elapsed,rss,dist\n" + "\n".join(rows) + "\n")
    with caplog.at_level("WARNING", logger="bluezone.sim.datasets"):
        assert load_dataset(tmp_path / "m").recordings
    assert [r.getMessage() for r in caplog.records] == ["X/a.csv: 2 malformed line(s) skipped"]


def test_names_from_a_dataset_reach_the_terminal_as_printable_text(tmp_path: Path) -> None:
    """A phone's name in an RSS CSV (and a file's, a folder's) went to the terminal as it was: an escape sequence
    there set the terminal's title (OSC 0) or colours, a bell rang.  The text report shows them escaped (\\x1b);
    --json keeps them as they are, JSON-escaped."""
    root = copy("ng_small", tmp_path)
    csv = root / NG_CSV
    csv.write_text(csv.read_text().replace("gryphonelab", "gry\x1b]0;pwned\x07lab"))
    (root / NG_CSV).rename(root / "data" / "HandHand" / "RSS\x1b[2J.csv")  # a file name too: said as read
    (root / "data" / "HandHand" / "junk\x1b[31m.csv").write_text("not,the,columns\n")
    result = CliRunner().invoke(cli, ["evaluate", str(root), "--bootstrap", "0", "--chains", "20"], obj={})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "gry\\x1b]0;pwned\\x07lab" in result.output and "junk\\x1b[31m.csv" in result.output
    as_json = CliRunner().invoke(cli, ["evaluate", str(root), "--json", "--bootstrap", "0", "--chains", "20"], obj={})
    assert "gry\x1b]0;pwned\x07lab" in json.loads(as_json.stdout)["calibration"]["phones"]


def test_an_rss_csv_saved_with_a_byte_order_mark_reads_as_before(tmp_path: Path) -> None:
    """A recording's CSV saved again in a spreadsheet ('CSV UTF-8') starts with a byte order mark: its first column
    read as '\\ufeffdevice' and the file was skipped ('RSS CSV without column(s) device')."""
    before = load_dataset(DATASETS / "ng_small")
    root = copy("ng_small", tmp_path)
    csv = root / NG_CSV
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    after = load_dataset(root)
    assert after.problems == [] and same_recordings(after.recordings, before.recordings)
