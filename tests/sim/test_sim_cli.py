"""`bluezone simulate` and `bluezone evaluate`: every scenario file runs, JSON shape, errors exit 2."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sim_helpers import DATASETS, SIMULATIONS

from bluezone.cli import cli
from bluezone.errors import ConfigError
from bluezone.sim.scenario import load_scenario

SCENARIOS = sorted(SIMULATIONS.glob("*.toml"))


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def test_the_directives_settings_exist() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"market", "wedding", "classroom", "office", "bus", "clinic", "wall"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_parses_and_runs_briefly(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.people >= 2 and scenario.duration_min >= 15
    result = invoke("simulate", str(path), "--seed", "1", "--minutes", "0.5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["scenario"] == scenario.name
    assert set(report["scorers"]) >= {"bluezone", "gaen"}
    for s in report["scorers"].values():
        assert {"precision", "recall", "f1", "confusion", "pr_curve", "minutes_mae"} <= set(s)


def test_simulate_writes_report_and_plots(tmp_path: Path) -> None:
    result = invoke("simulate", str(SIMULATIONS / "classroom.toml"), "--minutes", "2", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "bluezone" in result.output and "gaen" in result.output
    for name in ("report.json", "scene.png", "rssi_distance.png", "pr_curve.png"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("name = 'x'\n", "missing 'duration_min'"),
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'flying', people = 3}]\n", "not one of"),
        ("name = 'x'\nduration_min = 5\nspeed = 3\ngroups = [{kind = 'waypoint', people = 3}]\n", "unknown key"),
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'waypoint', people = 3}]\n[radio]\nexponent = 'two'\n", "expected a number"),
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'seated', people = 9, rows = 2, columns = 2}]\n", "seats"),
        ("name = = 'x'\n", "not valid TOML"),
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'waypoint', people = 3}]\n[devices]\nshare = 0.0\n", "fewer than two phones"),
        # a mistyped key was "every group needs kind and people" (walk14): the typo is named, with the key meant
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'waypoint', peple = 3}]\n", "unknown key(s) peple (did you mean people?)"),
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'waypoint', people = 3, arive_min = [0, 5]}]\n", "arive_min (did you mean arrive_min?)"),
        ("name = 'x'\nduration_min = 5\ngroups = [{kind = 'waypoint'}]\n", "needs kind and people (no people)"),
    ],
)
def test_bad_scenario_file_exits_2(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = CliRunner().invoke(cli, ["simulate", str(bad)], obj={})
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_scenario_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "none.toml")], obj={})
    assert result.exit_code == 2 and "no scenario file" in result.output


@pytest.mark.parametrize("name", ["mitll_small", "ng_small"])
def test_evaluate_small_datasets(name: str) -> None:
    result = invoke("evaluate", str(DATASETS / name), "--json", "--bootstrap", "5", "--chains", "40")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["recordings"] == 2 and report["minutes_under_2m"] > 0
    for s in report["scorers"].values():
        assert {"roc_auc", "pr_auc", "precision", "recall", "f1", "ci95", "detection_by_distance"} <= set(s)
        assert 0.0 <= s["f1"] <= 1.0
        lo, hi = s["ci95"]["f1"]
        assert lo <= hi


def test_evaluate_separates_near_from_far_on_hand_held_android() -> None:
    # 1.2 m against 4 m, both phones in hand: per-minute attenuation tells them apart.
    report = json.loads(invoke("evaluate", str(DATASETS / "ng_small"), "--json", "--bootstrap", "0").output)
    assert report["scorers"]["bluezone"]["roc_auc"] >= 0.9


def test_evaluate_not_a_dataset_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path)], obj={})
    assert result.exit_code == 2 and "data/" in result.output


@pytest.mark.parametrize("out", ["/proc/bluezone-nope", "a-file/report"])
def test_an_unwritable_out_is_one_line_before_the_run(tmp_path: Path, monkeypatch, out: str) -> None:
    """`simulate market --out /proc/nope` ran the whole market, then ended in 'FileNotFoundError: ...',
    exit 1, the run lost."""
    from bluezone.sim import engine

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(engine, "run", never)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(cli, ["simulate", "classroom", "--minutes", "1", "--out", out])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: cannot make the report directory") and "(check --out)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_crowd_that_cannot_fit_in_memory_is_refused_as_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3,000 people all uploading peaked at 4.8 GiB; 10,000 (MAX_PEOPLE) would need ~55 GiB and ran into the
    machine's memory after minutes. Refused before the first step when this machine has less."""
    from bluezone.sim import engine

    monkeypatch.setattr(engine, "available_memory", lambda: 2 * 2**30)
    path = tmp_path / "crowd.toml"
    path.write_text('name = "crowd"\nduration_min = 1\n[[groups]]\nkind = "waypoint"\npeople = 3000\n')
    result = CliRunner().invoke(cli, ["simulate", str(path)], obj={})
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "3,000 uploaders need about 5.0 GiB" in result.output, result.output
    assert "positives a count" in result.output
    # the same crowd with a few uploaders fits: links are uploaders x phones
    scenario = load_scenario(path)
    engine.check_memory(scenario, 3000, 100, 2 * 2**30)
    engine.check_memory(scenario, 3000, 3000, None)  # memory unknown: run
    # keeping people apart is pairwise over everyone present, uploader or not: 3,000 people ~1.1 GiB more
    apart = dataclasses.replace(scenario, space=dataclasses.replace(scenario.space, min_spacing_m=0.5))
    with pytest.raises(ConfigError, match="keeping 3,000 people apart"):
        engine.check_memory(apart, 3000, 100, 1 * 2**30)


def test_a_run_with_few_true_contacts_says_so_in_text_and_json(tmp_path: Path) -> None:
    """One pair 1.2 m apart for 16 minutes (2 true contacts, one per direction) beside people 4.5 m
    apart: the report says the verdict figures rest on 2 contacts, in both forms (generated carriage
    seed 3 printed a bare "F1 0.000" for both scorers over 6 contacts, a trio with their phones in bags)."""
    import tomlkit
    from sim_helpers import pairs_scenario

    scene = pairs_scenario(minutes=16.0)
    scene["groups"][0] = {**scene["groups"][0], "people": 2, "columns": 2}
    path = tmp_path / "one_pair.toml"
    path.write_text(tomlkit.dumps(scene))
    text = invoke("simulate", str(path), "--seed", "1", "--store", "memory")
    assert text.exit_code == 0, text.output
    assert "true close contacts 2" in text.output
    assert text.output.rstrip().splitlines()[-1].startswith("note: only 2 true close contacts (fewer than 10; 0 more pairs within 2 m for 10-15 minutes)")
    report = json.loads(invoke("simulate", str(path), "--seed", "1", "--store", "memory", "--json").output)
    assert report["true_close_contacts"] == 2 and "by 0.50" in report["true_contacts_note"]
    assert all(s["ndcf"] is not None for s in report["scorers"].values())  # both classes present: defined


def test_a_report_that_cannot_be_written_after_the_run_is_one_line_and_keeps_the_figures(tmp_path: Path) -> None:
    """--out writable, but its report.json a folder (or the disk filled during the run): the run's figures
    were lost to 'Error: IsADirectoryError: ... (run with --debug for details)', exit 1 (on a full tmpfs:
    'OSError: [Errno 28] No space left on device')."""
    (tmp_path / "out" / "report.json").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["simulate", "classroom", "--minutes", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "precision" in result.stdout  # the table, printed before the error
    assert result.stderr == f"Error: cannot write the report into {tmp_path / 'out'}: Is a directory (the figures are above; check --out)\n"


def test_links_planted_in_a_shared_out_folder_are_replaced_not_written_through(tmp_path: Path) -> None:
    """--out a shared folder: whoever can write there put `report.json -> ~/.bashrc` (or any of the plots'
    names) and the report was written into the file the link named.  The files are written whole under
    names of their own and renamed over the links."""
    out, victims = tmp_path / "shared", tmp_path / "victims"
    out.mkdir()
    victims.mkdir()
    names = ("report.json", "scene.png", "rssi_distance.png", "pr_curve.png")
    for name in names:
        (victims / name).write_text("precious\n")
        (out / name).symlink_to(victims / name)
    result = CliRunner().invoke(cli, ["simulate", "classroom", "--minutes", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all((victims / name).read_text() == "precious\n" for name in names)
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert all(not (out / name).is_symlink() and (out / name).stat().st_size > 0 for name in names)
    assert json.loads((out / "report.json").read_text())["scenario"] == "classroom"


def test_the_scene_plots_legend_stands_beside_the_scene_not_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its "upper right" corner hid whoever stood there (user29's wedding: the buffet queue's head)."""
    from bluezone.sim import engine, report

    figures = []
    real_png = report._png
    monkeypatch.setattr(report, "_png", lambda fig, **kw: figures.append(fig) or real_png(fig, **kw))
    result = engine.run(dataclasses.replace(load_scenario(SIMULATIONS / "wall.toml"), duration_min=1.0), 1)
    names = list(report.plots(result, report.summarise(result)))
    scene = figures[names.index("scene.png")]
    scene.canvas.draw()
    ax = scene.axes[0]
    legend, plot = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= plot.x1 and legend.x1 <= scene.bbox.x1  # right of the scene, and on the image


@pytest.mark.parametrize("width, depth", [(12.0, 6.0), (4.0, 10.0)])
def test_the_scene_plot_has_no_blank_band_beside_or_below_it(width: float, depth: float) -> None:
    """The figure was 6 x 5 inches whatever the space's shape: a wide one (the clinic, 12 x 6 m) left a blank band
    1.5 inches high below the plot, a tall one (the bus, 4 x 10 m) a third of the image blank beside its legend.  Now
    the image is cut to what is drawn, with matplotlib's 0.1 inch pad (11 pixels at 110 dpi) round it."""
    import io

    import matplotlib.image

    from bluezone.sim import engine, report
    from bluezone.sim.scenario import scenario_from_mapping

    scenario = scenario_from_mapping({"name": "t", "duration_min": 1, "space": {"width_m": width, "depth_m": depth},
                                      "groups": [{"kind": "waypoint", "people": 6}]})
    result = engine.run(scenario, 1)
    image = matplotlib.image.imread(io.BytesIO(report.plots(result, report.summarise(result))["scene.png"][0]), "png")
    drawn = (image[..., :3] < 0.99).any(axis=2)  # not white
    rows, columns = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    margins = (rows[0], len(drawn) - 1 - rows[-1], columns[0], drawn.shape[1] - 1 - columns[-1])
    assert max(margins) <= 15, margins  # top, bottom, left, right, pixels
