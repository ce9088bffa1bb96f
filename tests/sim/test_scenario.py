"""Scenario files: every bad value is a ConfigError (exit code 2), never a crash or an empty run."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import pairs_scenario

from bluezone.cli import cli
from bluezone.errors import ConfigError
from bluezone.sim.scenario import (
    GROUP_KINDS, KEY_KINDS, MAX_PEOPLE, Group, Scenario, load_scenario, scenario_from_mapping,
)

BASE = """name = "t"
duration_min = 1
[[groups]]
kind = "waypoint"
people = 3
"""


def simulate(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return CliRunner().invoke(cli, ["simulate", str(path), "--store", "memory"], obj={})


def numbers(value: Any) -> list[float]:
    """Every number in a parsed scenario (dataclasses, tuples, scalars)."""
    if dataclasses.is_dataclass(value):
        return [n for f in dataclasses.fields(value) for n in numbers(getattr(value, f.name))]
    if isinstance(value, tuple):
        return [n for v in value for n in numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


@pytest.mark.parametrize(
    "extra",
    [
        "[radio]\nfast_sd_db = nan\n",
        "[radio]\nexponent = nan\n",
        "[[devices.models]]\ntx_power_dbm = nan\n",
        "[[devices.models]]\nshare = inf\n",
        f"[[devices.models]]\nshare = {10**400}\n",
        "[devices]\ncarriage = {hand = inf}\n",
        "duration_min = nan\n",
    ],
)
def test_nan_and_inf_are_refused(tmp_path: Path, extra: str) -> None:
    text = BASE.replace("duration_min = 1\n", "") if extra.startswith("duration_min") else BASE
    text = extra + text if extra.startswith("duration_min") else text + extra
    result = simulate(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "finite" in result.output


@pytest.mark.parametrize(
    "field, value",
    [
        ("arrive_min", "[nan, nan]"),
        ("speed_mps", "[1, inf]"),
        ("group_size", "[1, inf]"),
        ("group_size", "[1.5, 2.5]"),
        ("region", "[0, 0, nan, 5]"),
        ("origin", "[nan, 1e308]"),
    ],
)
def test_ranges_and_points_need_finite_numbers(tmp_path: Path, field: str, value: str) -> None:
    result = simulate(tmp_path, BASE + f"{field} = {value}\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert field in result.output


_PATHS = [
    ("duration_min",),
    ("step_s",),
    ("close_contact_min",),
    ("close_distance_m",),
    ("space", "width_m"),
    ("radio", "exponent"),
    ("radio", "fast_sd_db"),
    ("radio", "slow_tau_s"),
    ("radio", "breakpoint_m"),
    ("scanning", "window_s"),
    ("devices", "share"),
    ("devices", "positives"),
    ("devices", "carriage", "hand"),
    ("groups", 0, "people"),
    ("groups", 0, "rows"),
    ("groups", 0, "origin"),
    ("groups", 0, "spacing_m"),
    ("groups", 0, "arrive_min"),
    ("groups", 0, "stay_min"),
    ("groups", 0, "sway_m"),
    ("groups", 0, "facing_deg"),
]
_scalars = (
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**400)])  # what TOML allows and ranges miss
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.booleans()
    | st.text(max_size=5)
)
_values = _scalars | st.lists(_scalars, max_size=5)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(_PATHS), value=_values)
def test_any_value_loads_finite_or_is_a_config_error(path: tuple[Any, ...], value: Any) -> None:
    """The property the simulator relies on: a loaded scenario holds only finite numbers."""
    data = copy.deepcopy(pairs_scenario(5.0))
    target: Any = data
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value
    try:
        scenario = scenario_from_mapping(data)
    except ConfigError:
        return
    assert isinstance(scenario, Scenario)
    assert all(isinstance(n, int) or math.isfinite(n) for n in numbers(scenario)), scenario


@pytest.mark.parametrize("field", ["fast_sd_db", "slow_sd_db", "link_sd_db"])
def test_negative_spreads_are_config_errors(tmp_path: Path, field: str) -> None:
    result = simulate(tmp_path, BASE + f"[radio]\n{field} = -3\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert field in result.output and "outside" in result.output


def test_carriage_shares_of_zero_are_config_errors(tmp_path: Path) -> None:
    result = simulate(tmp_path, BASE + "[devices]\ncarriage = {hand = 0.0, pocket = 0}\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "carriage" in result.output and "more than 0" in result.output


@pytest.mark.parametrize("tables", ["", "rows = 2\ncolumns = 1\n"])
def test_too_few_seats_at_tables_is_a_config_error(tmp_path: Path, tables: str) -> None:
    group = f'[[groups]]\nkind = "seated"\nlayout = "tables"\npeople = 9\nseats_per_table = 4\n{tables}'
    result = simulate(tmp_path, BASE + group)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "seats" in result.output and "#2" in result.output


@pytest.mark.parametrize(
    "field, value",
    [
        ("arrive_min", "[-5, -1]"),
        ("stay_min", "[-5, -1]"),
        ("speed_mps", "[-1, -1]"),
        ("pause_s", "[-5, -1]"),
        ("service_s", "[-10, -5]"),
        ("ride_stops", "[0, 0]"),
        ("ride_stops", "[-3, -1]"),
    ],
)
def test_negative_times_speeds_and_stops_are_config_errors(tmp_path: Path, field: str, value: str) -> None:
    """Each of these used to run and report a simulation in which nobody was ever present."""
    result = simulate(tmp_path, BASE + f"{field} = {value}\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert field in result.output


@pytest.mark.parametrize(
    "group, key",
    [
        ('kind = "queue"\npeople = 3\nrows = 2\n', "rows"),
        ('kind = "waypoint"\npeople = 3\nfacing_deg = 180\n', "facing_deg"),
        ('kind = "seated"\npeople = 3\ncolumns = 3\nservice_s = [10, 20]\n', "service_s"),
        ('kind = "bus"\npeople = 3\nrows = 2\ncolumns = 2\nregion = [0, 0, 2, 2]\n', "region"),
        ('kind = "passing"\npeople = 3\norigin = [2, 2]\n', "origin"),
        ('kind = "queue"\npeople = 3\ngroup_size = [1, 2]\n', "group_size"),
        ('kind = "queue"\npeople = 3\nstay_min = [2, 2]\n', "stay_min"),
        ('kind = "bus"\npeople = 3\nrows = 2\ncolumns = 2\narrive_min = [0, 1]\n', "arrive_min"),
        ('kind = "bus"\npeople = 3\nrows = 2\ncolumns = 2\nstay_min = [2, 2]\n', "stay_min"),
    ],
)
def test_a_key_the_kind_does_not_read_is_a_config_error(tmp_path: Path, group: str, key: str) -> None:
    """docs/simulation.md's table says which kinds read each key; a queue's `rows` ran as if absent (user29), and a
    queue's people leave when served and a bus's ride their stops: presence keys did nothing there either."""
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\nduration_min = 1\n[[groups]]\n' + group)
    with pytest.raises(ConfigError, match=f"#1.{key}: a [a-z]+ group does not use it \\(it is for "):
        load_scenario(path)


@pytest.mark.parametrize(
    "layout, key",
    [("grid", "seats_per_table = 4"), ("line", "table_radius_m = 1.0"), ("grid", "direction_deg = 90"),
     ("tables", "direction_deg = 90")],
)
def test_a_key_of_another_seated_layout_is_a_config_error(tmp_path: Path, layout: str, key: str) -> None:
    """Chairs round a table are a `tables` layout's, a direction a `line`'s: elsewhere they did nothing."""
    path = tmp_path / "s.toml"
    group = f'kind = "seated"\npeople = 3\nlayout = "{layout}"\ncolumns = 3\n{key}\n'
    path.write_text('name = "t"\nduration_min = 1\n[[groups]]\n' + group)
    with pytest.raises(ConfigError, match=f"{key.split()[0]}: a seated group laid out as {layout} does not use it"):
        load_scenario(path)


def test_every_group_key_is_given_its_kinds() -> None:
    """A new key of Group is either read by every kind or listed in KEY_KINDS, so the check above covers it."""
    every_kind = {"kind", "people", "name", "phone_share", "carriage", "models", "posture", "storey"}
    assert {f.name for f in dataclasses.fields(Group)} == every_kind | set(KEY_KINDS)
    assert all(set(kinds) <= set(GROUP_KINDS) for kinds in KEY_KINDS.values())


def test_a_region_given_high_corner_first_is_a_config_error(tmp_path: Path) -> None:
    """np.clip with low > high put every walker on one point, and the truth had them all in contact."""
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\nduration_min = 1\n[[groups]]\nkind = "waypoint"\npeople = 3\nregion = [10, 10, 0, 0]\n')
    with pytest.raises(ConfigError, match="x0 < x1 and y0 < y1"):
        load_scenario(path)


@pytest.mark.parametrize(
    "groups, message",
    [
        ('[[groups]]\nkind = "waypoint"\npeople = 100000\n' * 3, "300,000 people"),
        ('[[groups]]\nkind = "seated"\npeople = 3\nrows = 100000\ncolumns = 100000\n', "seats"),
        ('[[groups]]\nkind = "seated"\nlayout = "tables"\npeople = 3\nrows = 1000\ncolumns = 1000\n', "seats"),
        ('[[groups]]\nkind = "bus"\npeople = 3\nrows = 100000\ncolumns = 100000\n', "seats"),
        # hex_spots laid ~2.9e13 spots one Python tuple at a time: hung, then took all memory
        ('[[groups]]\nkind = "bus"\npeople = 3\nrows = 2\ncolumns = 2\nstanding_areas = [[0, 0, 1e4, 1e4]]\n', "standing spots"),
        ('[[groups]]\nkind = "bus"\npeople = 3\nrows = 2\ncolumns = 2\nstanding_spacing_m = 0.2\n'
         'standing_areas = [[0, 0, 100, 100], [0, 0, 100, 100], [0, 0, 100, 100]]\n', "standing spots"),
        # each wall and zone is a loop over every link at every step: 10,000 walls made a minute of 4 people 213 s
        ('[[groups]]\nkind = "waypoint"\npeople = 3\n' + '[[space.walls]]\nstart = [1, 0]\nend = [1, 1]\n' * 1001,
         r"\[space\].walls: 1,001 walls, more than the 1,000"),
        ('[[groups]]\nkind = "waypoint"\npeople = 3\n' + '[[space.zones]]\nregion = [0, 0, 1, 1]\n' * 1001,
         r"\[space\].zones: 1,001 zones, more than the 1,000"),
    ],
)
def test_huge_crowds_and_seat_plans_are_refused_up_front(tmp_path: Path, groups: str, message: str) -> None:
    """These ran for up to a minute and then died of a MemoryError (or took the machine's memory)."""
    text = 'name = "t"\nduration_min = 1\n' + groups
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_scenario(path)


def test_more_phone_models_than_a_scenario_has_people_are_refused_up_front(tmp_path: Path) -> None:
    """Each [[devices.models]] was compared by name with every other: 20,000 models (a 0.9 MB file) took 17 s to load,
    150,000 (5 MB, within the 16 MiB a TOML file may have) some 16 minutes, before a run of 4 people.  Every model of
    Google's calibration table (9,895) still loads."""
    path = tmp_path / "s.toml"
    path.write_text(BASE + "".join(f'[[devices.models]]\nname = "m{i}"\n' for i in range(MAX_PEOPLE + 1)))
    result = CliRunner().invoke(cli, ["simulate", str(path), "--store", "memory"], obj={})
    assert result.exit_code == 2, result.output
    assert result.output == "Error: s.toml: [devices].models: 10,001 phone models, more than the 10,000 a scenario may have\n"


def test_a_file_of_unknown_keys_names_a_few(tmp_path: Path) -> None:
    """Every unknown key was named, each matched against the allowed ones: 100,000 of them (a 1.4 MB file) took a
    minute to say so in a 1.2 MB line."""
    path = tmp_path / "s.toml"
    path.write_text(BASE + "".join(f"peopl{i} = 1\n" for i in range(20_000)))
    result = CliRunner().invoke(cli, ["simulate", str(path), "--store", "memory"], obj={})
    assert result.exit_code == 2 and result.output.count("\n") == 1 and len(result.output) < 800, len(result.output)
    assert "unknown key(s) peopl0 (did you mean people?), peopl1 (did you mean people?), " in result.output
    assert "and 19,995 more; allowed: " in result.output


class _Counted(str):
    """A model name that counts how often it is compared with another."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _Counted.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_groups_phone_models_are_each_found_by_name_once() -> None:
    """A group's models were looked up with list.index, each compared with every model listed before it: 60 groups
    choosing among 10,000 models (a 6.9 MB file) spent 238 s giving out phones, before the first step."""
    from bluezone.sim.channel import make_devices
    from bluezone.sim.scenario import DeviceModel

    base = scenario_from_mapping({"name": "t", "duration_min": 1, "groups": [{"kind": "waypoint", "people": 40}]})
    names = [f"m{i}" for i in range(1000)]
    scenario = dataclasses.replace(
        base,
        devices=dataclasses.replace(base.devices, models=tuple(DeviceModel(name=_Counted(n)) for n in names)),
        groups=(dataclasses.replace(base.groups[0], models=tuple((_Counted(n), 1.0) for n in names)),),
    )
    _Counted.compared = 0
    devices = make_devices(scenario, np.random.default_rng(1))
    assert _Counted.compared <= 2 * len(names), _Counted.compared  # 500,500 before
    assert len(set(devices.model.tolist())) > 30  # drawn among all of them


@pytest.mark.parametrize("minutes", ["inf", "1e300", "2000"])
def test_minutes_override_has_the_files_bounds(tmp_path: Path, minutes: str) -> None:
    """inf and 1e300 crashed with an OverflowError; 2000 bypassed the file's 24-hour limit."""
    path = tmp_path / "s.toml"
    path.write_text(BASE)
    result = CliRunner().invoke(cli, ["simulate", str(path), "--store", "memory", "--minutes", minutes], obj={})
    assert result.exit_code == 2, result.output
    assert "--minutes" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "extra",
    ["people = 2.7\n", "rows = 2.5\n", "[[devices.models]]\ntx_power_dbm = -23.5\n", "[[devices.models]]\nrssi_correction_db = 0.5\n"],
)
def test_counts_and_dbm_must_be_whole_numbers(tmp_path: Path, extra: str) -> None:
    """These were cut down to whole numbers without a word (2.7 people ran as 2)."""
    text = BASE.replace("people = 3\n", "") + ("people = 3\n" if not extra.startswith("people") else "") + extra
    result = simulate(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "whole number" in result.output


def test_whole_numbers_written_as_floats_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(BASE.replace("people = 3", "people = 3.0") + "[[devices.models]]\ntx_power_dbm = -24.0\n")
    scenario = load_scenario(path)
    assert scenario.groups[0].people == 3 and scenario.devices.models[0].tx_power_dbm == -24


@pytest.mark.parametrize("name", ["[1, 2]", "{a = 1}", "3", "\"\""])
def test_a_device_model_named_by_anything_but_text_is_refused(tmp_path: Path, name: str) -> None:
    """A model's name that is a list or table crashed with 'unhashable type' (a number beside named
    models: ''<' not supported'), a traceback, when the names were compared."""
    text = BASE + f'[[devices.models]]\nname = "a"\n[[devices.models]]\nname = {name}\n'
    result = simulate(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "name" in result.output


@pytest.mark.parametrize(
    "extra, message",
    [
        # numpy's integers() refused a high bound past int64: "ValueError: high is out of bounds", exit 1
        ("group_size = [1, 1e300]\n", "group_size"),
        ('kind = "bus"\nrows = 2\ncolumns = 2\nride_stops = [1, 1e300]\n', "ride_stops"),
        # shares that each pass but add up to inf: "Probabilities do not sum to 1", exit 1
        ("[devices]\ncarriage = {hand = 1e308, pocket = 1e308}\n", "carriage.hand"),
        ("[[devices.models]]\nname = 'a'\nshare = 1e308\n[[devices.models]]\nname = 'b'\nshare = 1e308\n", "share"),
        # before 1970 GAEN's interval numbers are negative: "rolling start must be >= 0", naming nothing in the file
        ("start = 0001-01-01T00:00:00Z\n", "start: .*before 1970"),
        ('start = "1969-12-31T23:00:00Z"\n', "start: .*before 1970"),
    ],
)
def test_values_that_crashed_the_run_are_config_errors(tmp_path: Path, extra: str, message: str) -> None:
    if extra.startswith("kind"):
        text = BASE.replace('kind = "waypoint"\n', "") + extra
    elif extra.startswith("start"):
        text = extra + BASE
    else:
        text = BASE + extra
    result = simulate(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert re.search(message, result.output), result.output


@pytest.mark.parametrize(
    "extra, message",
    [
        ("region = [-1.7e308, -1.7e308, 1.7e308, 1.7e308]\n", "region"),
        ("region = [0, 0, 20000, 5]\n", "region"),
        ('[space]\nwalls = [{start = [0, -1e300], end = [0, 1e300]}]\n', "start"),
        ('[[space.zones]]\nregion = [0, 0, 1e12, 1]\n', "region"),
        ('[[groups]]\nkind = "seated"\npeople = 2\ncolumns = 2\norigin = [1e308, 0]\n', "origin"),
        ('[[groups]]\nkind = "seated"\npeople = 2\ncolumns = 2\nspacing_m = [1e308, 1]\n', "spacing_m"),
        ('[[groups]]\nkind = "passing"\npeople = 2\npath = [[0, 0], [-1e20, 0]]\n', "path"),
    ],
)
def test_coordinates_beyond_the_largest_space_are_config_errors(tmp_path: Path, extra: str, message: str) -> None:
    """A region of +-1.7e308 m overflowed its size to inf: the whole group stood on one corner and
    strangers met there (sightings, contacts), with no word of the file's mistake."""
    result = simulate(tmp_path, BASE + extra)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output and "10000" in result.output, result.output


GROUPS = '[[groups]]\nkind = "waypoint"\npeople = 3\n'


@pytest.mark.parametrize(
    "text",
    [
        'name = "caf\\u001b[2J\\u001b[31mOK"\nduration_min = 1\n' + GROUPS,  # ESC sequences: clear the screen, red
        'name = "t"\ndescription = "a\\rb"\nduration_min = 1\n' + GROUPS,
        'name = "t"\nduration_min = 1\n' + GROUPS + '[[devices.models]]\nname = "pixel\\u202e"\n',  # right-to-left override
    ],
)
def test_names_with_control_characters_are_config_errors(tmp_path: Path, text: str) -> None:
    """A shared scenario file's name was printed raw: its escape sequences rewrote the researcher's terminal."""
    result = simulate(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert "printable text" in result.output and "\x1b" not in result.output, result.output


def test_group_and_zone_names_must_be_printable_text(tmp_path: Path) -> None:
    result = simulate(tmp_path, BASE + 'name = ["a list"]\n')
    assert result.exit_code == 2 and "expected text" in result.output, result.output
    result = simulate(tmp_path, BASE + 'name = "door\\u0007"\n')
    assert result.exit_code == 2 and "printable text" in result.output, result.output


def test_every_key_a_scenario_file_can_hold_is_documented() -> None:
    """A researcher writes a scene from docs/simulation.md: six group keys the shipped scenes use
    (`service_s`, `direction_deg`, `pause_s`, `sway_m`, `seats_per_table`, `table_radius_m`) were named
    nowhere in the docs, only in the code (walk12). Each field of the scenario's tables must appear
    as a key in docs/simulation.md, the [radio] ones in docs/radio-model.md."""
    import bluezone.sim.scenario as sc

    docs = Path(__file__).parents[2] / "docs"
    sim, radio = (docs / "simulation.md").read_text(), (docs / "radio-model.md").read_text()
    tables = [sc.Scenario, sc.Space, sc.Wall, sc.Zone, sc.Devices, sc.DeviceModel, sc.Group, sc.Scanning]
    undocumented = [
        f"{table.__name__}.{f.name}" for table in tables for f in dataclasses.fields(table)
        if f.name not in ("space", "devices", "groups", "radio", "scanning", "walls", "zones", "models")  # the tables
        and not re.search(rf"(?<![\w.]){f.name}(?!\w)", sim)
    ]
    undocumented += [
        f"RadioModel.{f.name}" for f in dataclasses.fields(sc.RadioModel) if not re.search(rf"(?<![\w.]){f.name}(?!\w)", radio)
    ]
    assert not undocumented, f"scenario keys named nowhere in the docs: {undocumented}"


def test_errors_call_a_group_by_its_name_too(tmp_path: Path) -> None:
    """docs: `name` is "what errors call the group"; the file's errors said only "#2"."""
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\nduration_min = 1\n[[groups]]\nkind = "waypoint"\npeople = 2\n'
                    '[[groups]]\nname = "buffet"\nkind = "queue"\npeople = 3\nrows = 2\n')
    with pytest.raises(ConfigError, match=re.escape("[[groups]] #2 (buffet).rows: a queue group does not use it")):
        load_scenario(path)


def test_more_uploaders_than_phones_can_be_is_a_config_error(tmp_path: Path) -> None:
    """``positives`` above the people who can carry a phone was cut to the phones drawn without a word (the
    report's header showed the real count); a file that asks for it is now refused, as out-of-range values are."""
    result = simulate(tmp_path, BASE + "[devices]\npositives = 5\n")
    assert result.exit_code == 2 and result.output == (
        "Error: s.toml: [devices].positives: 5 uploaders, but the scenario's people carry at most 3 phones"
        " (a count up to that, or \"all\")\n"
    )
    no_phones = BASE + "[[groups]]\nkind = \"waypoint\"\npeople = 4\nphone_share = 0.0\n[devices]\npositives = 4\n"
    with pytest.raises(ConfigError, match="carry at most 3 phones"):  # people with no phone upload nothing
        load_scenario(_written(tmp_path, no_phones))
    assert load_scenario(_written(tmp_path, no_phones.replace("positives = 4", "positives = 3"))).devices.positives == 3


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


BUS = """name = "t"
duration_min = 5
[[groups]]
name = "passengers"
kind = "bus"
people = 30
origin = [0.35, 2.8]
rows = 4
columns = 4
spacing_m = [0.5, 0.8]
stop_interval_s = 60
ride_stops = [1, 3]
sway_m = 0.0
"""


def test_a_bus_standing_area_over_its_seats_is_refused_naming_both(tmp_path: Path) -> None:
    """Nothing checked a bus's standing areas against its seats: one over them put standing passengers on seated ones
    (as close as two people cannot be) and the scenario ran.  Now: one line naming the area and a seat it covers, and
    where the seats are, exit 2.  An area in the aisle, or clear of the seats, still loads."""
    result = simulate(tmp_path, BUS + "standing_areas = [[0.1, 0.1, 2.3, 0.5], [0.1, 4.0, 2.3, 5.0]]\n")
    assert result.exit_code == 2, result.output
    assert result.output == (
        "Error: s.toml: [[groups]] #1 (passengers).standing_areas[1]: [0.1, 4, 2.3, 5] covers seats (row 3, seat 1 at"
        " (0.35, 4.4) m): standing passengers would stand on seated ones; keep the area off the seats, which lie within"
        " [0.35, 2.8, 2.1, 5.2] (an area in the aisle between the halves covers none)\n"
    )
    (tmp_path / "s.toml").write_text(BUS + "standing_areas = [[0.1, 0.1, 2.3, 2.6], [0.9, 2.8, 1.55, 5.2]]\n")
    load_scenario(tmp_path / "s.toml")  # before the seats, and the aisle (its seats at 0.85 and 1.6 m)


def test_the_bus_seats_the_check_keeps_areas_off_are_where_passengers_sit() -> None:
    """One layout for both (``bus_seat_columns``): a check against seats of its own would pass areas over the real ones."""
    from bluezone.sim.mobility import Crowd
    from bluezone.sim.scenario import bus_seat_columns

    sc = scenario_from_mapping({
        "name": "t", "duration_min": 5, "groups": [{
            "kind": "bus", "people": 30, "origin": [0.35, 2.8], "rows": 4, "columns": 5, "spacing_m": [0.5, 0.8],
            "standing_areas": [[0.1, 0.1, 2.8, 2.6]], "stop_interval_s": 60, "ride_stops": [1, 3], "sway_m": 0.0}]})
    bus = Crowd(sc, np.random.default_rng(1)).groups[0]
    seated = bus.pos[bus.seated & (bus.spot >= 0)]
    assert len(seated) > 10
    assert set(seated[:, 0].tolist()) <= set(bus_seat_columns(sc.groups[0]))
    assert set(np.round(seated[:, 1], 9).tolist()) <= {round(2.8 + r * 0.8, 9) for r in range(4)}


def test_a_scenario_file_has_its_own_larger_limit(tmp_path: Path) -> None:
    """Any TOML file up to 16 MiB was parsed (2.4 s a MiB at worst here).  A scenario may be large: every limit of
    docs/simulation.md written one by one (10,000 people each a group of one, every model of Google's table, 1,000
    walls and zones) is 4.1 MB, so it is read up to 8 MiB, past the 1 MiB of a settings file; more is refused at once."""
    from bluezone.config import MAX_SCENARIO_BYTES, MAX_SETTINGS_BYTES

    path = tmp_path / "s.toml"
    line = "#" + "x" * 1023 + "\n"  # comments: valid TOML, and quick to parse
    path.write_text(BASE + line * (MAX_SETTINGS_BYTES // 1024 + 1))
    assert load_scenario(path).name == "t"
    path.write_text(BASE + line * (MAX_SCENARIO_BYTES // 1024))
    result = CliRunner().invoke(cli, ["simulate", str(path), "--store", "memory"], obj={})
    assert result.exit_code == 2 and result.output == f"Error: {path}: scenario file too large (over 8,388,608 bytes)\n"
