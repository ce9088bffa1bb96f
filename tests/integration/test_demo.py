"""``bluezone demo`` end to end: emulated daemons, embedded key server, signed export, matcher."""

from __future__ import annotations

import json
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.demo import F0, SCENE, DemoResult, run_demo

NOW = 1_795_089_600.0  # 2026-11-19 12:00 UTC: the scene stays inside one UTC day


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path]:
    """The demo at seed 1 at NOW and its --out directory, run once for the tests that only read them (a demo is ~10 s
    of CPU): what it flags, its chain, and a second run's verdicts (reproducible)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    return run_demo(out, seed=1, now=NOW), out


@pytest.mark.slow
def test_demo_flags_exactly_the_true_close_contacts(demo: tuple[DemoResult, Path]) -> None:
    result, out = demo
    by_name = {v.name: v for v in result.verdicts}
    assert set(by_name) == {p.name for p in SCENE} - {F0}
    assert by_name["Binh"].truly_close and by_name["Binh"].flagged
    assert by_name["Chi"].truly_close and by_name["Chi"].flagged
    for name in ("Dung", "Em", "Giang", "Hoa"):
        assert not by_name[name].truly_close and not by_name[name].flagged, name
    assert result.keys_uploaded == 1 and result.batches == 2  # one key batch, one venue-warning file
    # the café's check-in: Em (8 m away all hour) and Hoa (the counter) are warned through the venue
    assert result.checkins_uploaded == 1 and result.venue_url.startswith("https://e.coronawarn.app?v=1#")
    for name in ("Binh", "Chi", "Em", "Hoa"):
        assert by_name[name].venue_warned, name
    assert not by_name["Em"].flagged and not by_name["Hoa"].flagged
    assert by_name["Dung"].venue_minutes == 0 and not by_name["Giang"].venue_warned
    assert abs(by_name["Em"].venue_minutes - by_name["Em"].true_minutes_in_cafe) <= 10
    # what --out keeps: one database per device (0600), the F0's key file, the key server
    for person in SCENE:
        db = out / f"{person.name}.db"
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
    keys = json.loads((out / f"{F0}-keys.json").read_text())["temporaryExposureKeys"]
    assert len(keys) == 1 and keys[0]["rollingPeriod"] < 144  # today's key, released the same day
    # walk15: in server-exports, where `server run`/`export` look beside server.db (in exports/, a server run
    # on the demo's files started a second folder and warned of every earlier batch 'cannot read batch file')
    assert list((out / "key-server" / "server-exports").glob("*.zip"))
    assert (out / "cafe" / "poster.png").is_file() and (out / "cafe" / "venue-secret.json").is_file()


@pytest.mark.slow
def test_demo_is_reproducible_for_a_seed(demo: tuple[DemoResult, Path], tmp_path: Path) -> None:
    again = run_demo(tmp_path / "again", seed=1, now=NOW)  # (in a process that may have run other tests between)
    assert [v.as_dict() for v in again.verdicts] == [v.as_dict() for v in demo[0].verdicts]


@pytest.mark.slow
def test_demo_cli_json_and_follow_up_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "demo"
    res = runner.invoke(cli, ["demo", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["f0"] == F0 and len(report["people"]) == len(SCENE) - 1
    # the kept data works with the other commands
    res = runner.invoke(cli, ["check", "--keys", str(out / f"{F0}-keys.json"), "--db", str(out / "Binh.db"), "--json"])
    assert res.exit_code == 0, res.output
    # a second demo into the same directory is refused, not merged
    res = runner.invoke(cli, ["demo", "--out", str(out)])
    assert res.exit_code == 2 and "already holds a demo" in res.output


def test_scene_never_straddles_midnight() -> None:
    from bluezone.crypto.intervals import DAY_SECONDS
    from bluezone.demo import SCENE_END_BEFORE_NOW, SCENE_SECONDS, scene_span

    midnight = NOW // DAY_SECONDS * DAY_SECONDS + DAY_SECONDS
    for now in (NOW, midnight + 60, midnight + 1800, midnight + 3 * 3600):
        start, end = scene_span(now)
        assert end - start == SCENE_SECONDS and end <= now - SCENE_END_BEFORE_NOW
        assert start // DAY_SECONDS == (end - 1) // DAY_SECONDS


@pytest.mark.slow
def test_demo_just_after_midnight_uses_yesterdays_whole_key(tmp_path: Path) -> None:
    from bluezone.crypto.intervals import DAY_SECONDS

    after_midnight = NOW // DAY_SECONDS * DAY_SECONDS + DAY_SECONDS + 900
    result = run_demo(tmp_path / "out", seed=1, now=after_midnight)
    flagged = {v.name for v in result.verdicts if v.flagged}
    assert flagged == {"Binh", "Chi"}


@pytest.mark.slow
def test_demo_shows_one_f0_f1_f2_chain(demo: tuple[DemoResult, Path]) -> None:
    from bluezone.demo import F1_CHAIN, format_report

    result = demo[0]
    by_name = {v.name: v for v in result.verdicts}
    assert result.chain is not None and result.chain["f1"] == F1_CHAIN == "Binh"
    assert result.chain["f2"] == ["Khanh"] and result.chain["keys_uploaded"] == 1
    assert by_name["Khanh"].truly_f2 and by_name["Khanh"].level == "F2" and not by_name["Khanh"].flagged
    assert by_name["Chi"].level == "F1"  # also near Binh, but F1 wins: levels never stack
    assert all(v.correct for v in result.verdicts)
    report = format_report(result)
    assert "Chain: An (F0) -> Binh (F1" in report and "-> Khanh (F2" in report


class _PosterSaid(Exception):
    """Stops a demo at its poster line (the scene after it takes half a minute)."""


def _poster_line(out: Path | None) -> str:
    def progress(line: str) -> None:
        if "check-in poster" in line:
            raise _PosterSaid(line)

    with pytest.raises(_PosterSaid) as said:
        run_demo(out, seed=1, now=NOW, progress=progress)
    return str(said.value)


def test_the_poster_is_named_only_where_it_stays(tmp_path: Path) -> None:
    """Without --out the demo named its poster in a temporary directory deleted when it ended (walk14:
    'ls: cannot access /tmp/bluezone-demo-.../cafe/poster.png'); it says --out keeps it instead."""
    line = _poster_line(None)
    assert "--out DIR keeps it" in line and tempfile.gettempdir() not in line
    kept = _poster_line(tmp_path / "out")
    assert f"({tmp_path / 'out' / 'cafe' / 'poster.png'})" in kept and (tmp_path / "out" / "cafe" / "poster.png").is_file()


def test_a_key_file_link_planted_in_out_is_refused_and_what_it_names_is_untouched(tmp_path: Path) -> None:
    """A shared --out with a link planted as An-keys.json: the demo wrote the F0's keys through it, the file it
    named overwritten with them and made 0600 (attack14 fixed the same for the café's files, c7bc785)."""
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    out = tmp_path / "shared"
    out.mkdir()
    (out / f"{F0}-keys.json").symlink_to(victim)
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: {out} already holds a demo: give an empty or new --out directory\n"
    assert victim.read_text() == "keep me\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert sorted(p.name for p in out.iterdir()) == [f"{F0}-keys.json"]  # nothing else made there
