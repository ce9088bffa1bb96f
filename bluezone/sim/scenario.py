"""Scenario files: TOML in, frozen dataclasses out.

A scenario says where (a rectangle with walls), who (groups of people, how they move,
what phone they carry and how), for how long, and which radio.  Everything has a default
so a file only states what makes its setting particular; unknown keys are errors, so a
typo never silently falls back to a default.  See docs/simulation.md for the format.
"""

from __future__ import annotations

import bisect
import datetime as dt
import difflib
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bluezone.config import MAX_SCENARIO_BYTES, read_toml_file
from bluezone.errors import ConfigError
from bluezone.printable import printable_line

GROUP_KINDS = ("waypoint", "seated", "queue", "bus", "passing")
LAYOUTS = ("grid", "tables", "line")
# the group keys only some kinds read (the others, kind, people, name and the phone and height keys, every kind does)
KEY_KINDS: dict[str, tuple[str, ...]] = {
    "arrive_min": ("waypoint", "seated", "queue", "passing"),
    "stay_min": ("waypoint", "seated"),
    "region": ("waypoint",),
    "speed_mps": ("waypoint", "passing"),
    "pause_s": ("waypoint",),
    "group_size": ("waypoint",),
    "layout": ("seated",),
    "origin": ("seated", "queue", "bus"),
    "rows": ("seated", "bus"),
    "columns": ("seated", "bus"),
    "spacing_m": ("seated", "queue", "bus"),
    "seats_per_table": ("seated",),
    "table_radius_m": ("seated",),
    "facing_deg": ("seated",),
    "sway_m": ("seated", "queue", "bus"),
    "direction_deg": ("queue", "seated"),
    "service_s": ("queue",),
    "desks": ("queue",),
    "desk_spacing_m": ("queue",),
    "stop_interval_s": ("bus",),
    "ride_stops": ("bus",),
    "standing_areas": ("bus",),
    "standing_spacing_m": ("bus",),
    "path": ("passing",),
    "lane_m": ("passing",),
    "both_ways": ("passing",),
}
#: Where a phone is: in the hand, a trouser pocket, a bag, or lying on a table beside its owner.
CARRIAGES = ("hand", "pocket", "bag", "table")
#: How a person is placed in height; "auto" takes the kind's own (standing, seated, or a bus
#: passenger's seat or standing spot).  A scenario where no group states a posture or a storey
#: is flat (every phone and head at z = 0), as every scenario before heights existed.
POSTURES = ("standing", "seated", "low")
#: Phone height above the person's floor (m) by posture and carriage: a hand holding a phone, a
#: trouser pocket, a bag (shoulder bag standing, on the lap or floor sitting), a table top
#: (a low table beside low stools).  Body proportions, not radio fits: see docs/simulation.md.
PHONE_HEIGHT_M = {
    "standing": {"hand": 1.2, "pocket": 0.9, "bag": 1.0, "table": 0.75},
    "seated": {"hand": 0.9, "pocket": 0.55, "bag": 0.4, "table": 0.75},
    "low": {"hand": 0.7, "pocket": 0.35, "bag": 0.2, "table": 0.45},
}
#: Height of the mouth and nose above the floor (m): the truth measures contact between these.
HEAD_HEIGHT_M = {"standing": 1.55, "seated": 1.2, "low": 0.95}
#: Every step holds arrays of (uploaders x phones) links and every seat's position: ten times the
#: largest shipped scenario (the market, 1,000 people), refused up front rather than found out
#: as a MemoryError (or the OOM killer) minutes into a run.  Below it, a run that would not fit
#: in this machine's memory is refused as it starts (``bluezone.sim.engine.check_memory``).
MAX_PEOPLE = 10_000
MAX_SEATS = 100_000
#: Phone models a scenario may list: every one of Google's calibration table (9,895), no more than it has people (a
#: model beyond them is never carried).  150,000 in a 5 MB file took some 16 minutes to load, each compared by name
#: with every other.
MAX_MODELS = MAX_PEOPLE
#: Walls and radio zones a space may have: each is a loop over every link at every step (1,000 walls made a minute of
#: 4 people take 26 s, 10,000 walls, a 0.5 MB file, 213 s: days for a scenario's 24 hours).  A floor plan has dozens.
MAX_WALLS = 1_000
MAX_ZONES = 1_000
#: Shares are relative weights: any size is fine, but a sum overflowing to inf made them NaN.
MAX_SHARE = 1e9
#: A day of stops at the shortest stop_interval_s (10 s) is 8,640.
MAX_RIDE_STOPS = 10_000
#: A space is at most this many metres a side, and every coordinate (regions, walls, paths, seats)
#: lies within it of the origin: a region of +-1.7e308 m overflowed its size to inf and put its
#: whole group on one corner, strangers meeting there.
MAX_METRES = 10_000.0


@dataclass(frozen=True)
class Wall:
    """A straight wall from ``start`` to ``end`` (metres); ``separates`` means air does not cross it."""

    start: tuple[float, float]
    end: tuple[float, float]
    loss_db: float = 10.0
    separates: bool = True


@dataclass(frozen=True)
class Zone:
    """A part of the space with its own radio (a metal carriage, a concrete stairwell).

    A link uses the zone's parameters when both phones are inside it (None: the scenario's
    ``[radio]`` value); a link with one end inside crosses the shell and loses ``shell_loss_db``.
    """

    region: tuple[float, float, float, float]  # x0, y0, x1, y1
    name: str = ""
    storey: int | None = None  # only on this storey; None: every storey
    shell_loss_db: float = 0.0
    attenuation_1m_db: float | None = None
    exponent: float | None = None
    fast_sd_db: float | None = None
    slow_sd_db: float | None = None
    slow_tau_s: float | None = None
    link_sd_db: float | None = None
    body_loss_db: float | None = None
    carriage_fade: float | None = None


#: The RadioModel fields a zone may override.
ZONE_RADIO = (
    "attenuation_1m_db",
    "exponent",
    "fast_sd_db",
    "slow_sd_db",
    "slow_tau_s",
    "link_sd_db",
    "body_loss_db",
    "carriage_fade",
)


@dataclass(frozen=True)
class Space:
    """The floor plan: size, walls, zones, storeys and how far people keep apart."""

    width_m: float = 20.0
    depth_m: float = 20.0
    walls: tuple[Wall, ...] = ()
    zones: tuple[Zone, ...] = ()
    storey_height_m: float = 3.0  # floor to floor
    slab_loss_db: float = 12.0  # per floor slab a link crosses (docs/radio-model.md)
    min_spacing_m: float = 0.0  # people standing or walking are pushed this far apart (0: off)


@dataclass(frozen=True)
class DeviceModel:
    """A phone model: what it advertises as TX power, and how far its radio is off calibration.

    ``tx_error_db``/``rx_error_db`` are the model's true deviation from the calibration table
    (GAEN's per-model TX power and RSSI correction remove the rest); ``unit_sd_db`` is the
    spread between units of one model.
    """

    name: str = "generic"
    share: float = 1.0
    tx_power_dbm: int = -24
    rssi_correction_db: int = 0
    tx_error_db: float = 0.0
    rx_error_db: float = 0.0
    unit_sd_db: float = 2.0


@dataclass(frozen=True)
class Devices:
    """Who carries a phone, how, which models, and who tests positive."""

    share: float = 1.0  # of people carrying a phone that runs the detector
    positives: int | str = "all"  # devices that test positive and upload: a count or "all"
    carriage: tuple[tuple[str, float], ...] = (("hand", 0.3), ("pocket", 0.5), ("bag", 0.2))
    models: tuple[DeviceModel, ...] = (DeviceModel(),)


@dataclass(frozen=True)
class Group:
    """People who move alike.  Which fields matter depends on ``kind`` (docs/simulation.md)."""

    kind: str
    people: int
    name: str = ""
    # per-group phones (None: as [devices]): share carrying one, carriage shares, model shares by name
    phone_share: float | None = None
    carriage: tuple[tuple[str, float], ...] | None = None
    models: tuple[tuple[str, float], ...] | None = None
    # height: posture ("" flat unless another group states one) and storey (0 = ground)
    posture: str = ""
    storey: int = 0
    # presence: arrival uniformly in ``arrive_min`` and stay uniformly in ``stay_min`` (minutes)
    arrive_min: tuple[float, float] = (0.0, 0.0)
    stay_min: tuple[float, float] = (1e9, 1e9)
    # waypoint
    region: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1; default the whole space
    speed_mps: tuple[float, float] = (0.5, 1.3)
    pause_s: tuple[float, float] = (0.0, 60.0)
    group_size: tuple[int, int] = (1, 1)  # walking together (families, friends)
    # seated
    layout: str = "grid"
    origin: tuple[float, float] = (1.0, 1.0)
    rows: int = 1
    columns: int = 1
    spacing_m: tuple[float, float] = (1.0, 1.0)
    seats_per_table: int = 8
    table_radius_m: float = 0.8
    facing_deg: float | str = 90.0  # a heading, or "table"
    sway_m: float = 0.1
    # queue
    direction_deg: float = 0.0
    service_s: tuple[float, float] = (30.0, 90.0)
    desks: int = 1  # served by the first free desk, desks side by side across the line's head
    desk_spacing_m: float = 1.5
    # bus
    stop_interval_s: tuple[float, float] = (180.0, 180.0)  # one number, or each gap drawn in [low, high]
    ride_stops: tuple[int, int] = (1, 8)
    standing_areas: tuple[tuple[float, float, float, float], ...] = ()  # none: a line along the aisle
    standing_spacing_m: float = 0.5  # between standing spots in the areas (hexagonal)
    # passing: straight from one end of ``path`` to the other (either way), spread over ``lane_m``
    path: tuple[tuple[float, float], tuple[float, float]] | None = None  # default: across the middle
    lane_m: float = 1.0
    both_ways: bool = True


@dataclass(frozen=True)
class RadioModel:
    """Channel parameters; defaults and their sources are in docs/radio-model.md."""

    attenuation_1m_db: float = 50.0  # calibrated attenuation at 1 m, both phones in hand
    exponent: float = 2.0
    fast_sd_db: float = 4.0  # per packet
    slow_sd_db: float = 3.0  # per link, AR(1)
    slow_tau_s: float = 30.0
    link_sd_db: float = 2.0  # static per link (antenna pattern, multipath of that geometry)
    carriage_loss_db: tuple[tuple[str, float], ...] = (("hand", 0.0), ("pocket", 9.0), ("bag", 9.0))
    carriage_fade: float = 0.85  # carriage loss shrinks by this share per decade of distance beyond 1 m
    body_loss_db: float = 8.0  # the carrier's own body fully between the phones
    advert_rate_hz: float = 4.5
    packet_loss: float = 0.1
    sensitivity_dbm: float = -105.0
    breakpoint_m: float = 0.0  # beyond it the exponent becomes ``far_exponent`` (0: none)
    far_exponent: float = 2.0


@dataclass(frozen=True)
class Scanning:
    """Each receiver scans ``window_s`` every ``interval_s`` at a random phase."""

    window_s: float = 2.0
    interval_s: float = 10.0


@dataclass(frozen=True)
class Scenario:
    """A whole scene as loaded from its TOML file."""

    name: str
    duration_min: float
    space: Space
    devices: Devices
    groups: tuple[Group, ...]
    radio: RadioModel = field(default_factory=RadioModel)
    scanning: Scanning = field(default_factory=Scanning)
    description: str = ""
    step_s: float = 1.0
    start: float = 1_780_473_600.0 + 9 * 3600  # 2026-06-03 09:00 UTC: a fixed weekday morning
    close_contact_min: float = 15.0
    close_distance_m: float = 2.0

    @property
    def people(self) -> int:
        return sum(g.people for g in self.groups)

    @property
    def heights(self) -> bool:
        """Whether people have heights and storeys (else the flat model: every z is 0)."""
        return any(g.posture or g.storey for g in self.groups) or any(z.storey for z in self.space.zones)

    @property
    def steps(self) -> int:
        return int(round(self.duration_min * 60.0 / self.step_s))

    def with_overrides(self, **changes: Any) -> Scenario:
        return replace(self, **changes)


# --- loading --------------------------------------------------------------------------------


#: Unknown keys an error names (each with the key meant): a file of 100,000 took a minute to say so, in a 1.2 MB line.
NAMED_UNKNOWN = 5


def _check_keys(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        # a typo is found in the long list of what is allowed only by its writer: name the key meant
        shown = [printable_line(k)[:40] for k in unknown[:NAMED_UNKNOWN]]
        meant = [difflib.get_close_matches(k, sorted(allowed), n=1, cutoff=0.75) for k in shown]
        named = ", ".join(f"{k} (did you mean {m[0]}?)" if m else k for k, m in zip(shown, meant))
        if len(unknown) > NAMED_UNKNOWN:
            named += f" and {len(unknown) - NAMED_UNKNOWN:,} more"
        raise ConfigError(f"{where}: unknown key(s) {named}; allowed: {', '.join(sorted(allowed))}")


def _pair(
    where: str, value: Any, kind: type = float, length: int = 2, low: float | None = None, high: float | None = None
) -> tuple[Any, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and length == 2:
        value = [value, value]
    if not isinstance(value, list) or len(value) != length:
        raise ConfigError(f"{where}: expected a list of {length} numbers, got {value!r}")
    numbers = [_number(where, v, low, high) for v in value]
    if kind is int and not all(v.is_integer() for v in numbers):
        raise ConfigError(f"{where}: expected whole numbers, got {value!r}")
    out = tuple(kind(v) for v in numbers)
    if length == 2 and out[0] > out[1] and where.split(".")[-1].split("[")[0] not in ("origin", "start", "end", "spacing_m", "path"):
        raise ConfigError(f"{where}: a range must be [low, high], got {value!r}")
    return out


def _number(where: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    """A finite number within [low, high]: TOML's nan and inf would pass every comparison (or
    crash an int() later) and silently empty the simulation."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(f"{where}: {value} is outside [{low}, {high}]")
    return number


def _text(where: str, value: Any) -> str:
    """A name or description, printed on the terminal and in the plots' titles: one line of text, no
    control characters (a shared scenario file's ESC sequences rewrote the terminal it was run in)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    text = str(value)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        raise ConfigError(f"{where}: must be one line of printable text, got {text[:40]!r}")
    return text


def _whole(where: str, value: Any, low: float | None = None, high: float | None = None) -> int:
    """A whole number within [low, high]: 2.7 people or 1.5 dBm would be cut down silently."""
    number = _number(where, value, low, high)
    if number != int(number):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    return int(number)


def _build(cls: type, where: str, data: Any, converters: dict[str, Any]) -> Any:
    """A dataclass from a TOML table: unknown keys rejected, values converted and checked."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    names = {f.name for f in fields(cls)}
    _check_keys(where, data, names)
    kwargs = {}
    for key, value in data.items():
        convert = converters.get(key)
        kwargs[key] = convert(f"{where}.{key}", value) if convert else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _wall(where: str, data: Any) -> Wall:
    return _build(
        Wall,
        where,
        data,
        {
            "start": _xy,
            "end": _xy,
            "loss_db": lambda w, v: _number(w, v, 0, 100),
            "separates": _bool,
        },
    )


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _shares(where: str, value: Any, allowed: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: expected a table like {{hand = 0.3, pocket = 0.7}}")
    _check_keys(where, value, set(allowed))
    out = tuple((k, _number(f"{where}.{k}", v, 0.0, MAX_SHARE)) for k, v in value.items())
    return out


def _carriage(where: str, value: Any) -> tuple[tuple[str, float], ...]:
    """How phones are carried: shares that are drawn from, so they must not all be 0."""
    shares = _shares(where, value, CARRIAGES)
    if sum(share for _, share in shares) <= 0:
        raise ConfigError(f"{where}: shares must add up to more than 0")
    return shares


def _space(data: Any) -> Space:
    return _build(
        Space,
        "[space]",
        data,
        {
            "width_m": lambda w, v: _number(w, v, 0.5, MAX_METRES),
            "depth_m": lambda w, v: _number(w, v, 0.5, MAX_METRES),
            "walls": lambda w, v: tuple(_wall(f"{w}[{i}]", x) for i, x in enumerate(_at_most(w, v, MAX_WALLS, "walls"))),
            "zones": lambda w, v: tuple(_zone(f"{w}[{i}]", x) for i, x in enumerate(_at_most(w, v, MAX_ZONES, "zones"))),
            "storey_height_m": lambda w, v: _number(w, v, 1.5, 20),
            "slab_loss_db": lambda w, v: _number(w, v, 0, 100),
            "min_spacing_m": lambda w, v: _number(w, v, 0, 3),
        },
    )


def _xy(where: str, value: Any) -> tuple[float, float]:
    """An (x, y) pair in metres: a point, or a spacing along both axes."""
    return _pair(where, value, low=-MAX_METRES, high=MAX_METRES)  # type: ignore[return-value]


def _region(where: str, value: Any) -> tuple[float, float, float, float]:
    region = _pair(where, value, float, 4, low=-MAX_METRES, high=MAX_METRES)
    if not (region[0] < region[2] and region[1] < region[3]):
        raise ConfigError(f"{where}: give [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {list(region)}")
    return region  # type: ignore[return-value]


def _zone(where: str, data: Any) -> Zone:
    if not isinstance(data, dict) or "region" not in data:
        raise ConfigError(f"{where}: a zone needs a region [x0, y0, x1, y1]")
    radio = _radio_converters()
    conv: dict[str, Any] = {key: radio[key] for key in ZONE_RADIO}
    conv.update(
        region=_region,
        name=_text,
        storey=lambda w, v: _whole(w, v, 0, 200),
        shell_loss_db=lambda w, v: _number(w, v, 0, 100),
    )
    return _build(Zone, where, data, conv)


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    return value


def _model(where: str, data: Any) -> DeviceModel:
    data = _from_table(where, data)
    model = _build(
        DeviceModel,
        where,
        data,
        {
            "name": _model_name,
            "share": lambda w, v: _number(w, v, 0.0, MAX_SHARE),
            "tx_power_dbm": lambda w, v: _whole(w, v, -50, 20),
            "rssi_correction_db": lambda w, v: _whole(w, v, -60, 60),
            "tx_error_db": lambda w, v: _number(w, v, -40, 40),
            "rx_error_db": lambda w, v: _number(w, v, -40, 40),
            "unit_sd_db": lambda w, v: _number(w, v, 0, 20),
        },
    )
    return model


def _model_name(where: str, value: Any) -> str:
    """A model's name is text: groups choose models by it (a list or a number crashed comparing names)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a model name (text), got {value!r}")
    return _text(where, value)


def _from_table(where: str, data: Any) -> Any:
    """``table = "MODEL"`` (and ``table_manufacturer``): TX power and RSSI correction from Google's
    calibration table (``bluezone.calibration``), unless the file gives them; the name defaults to the model."""
    if not isinstance(data, dict) or "table" not in data:
        return data
    from bluezone.calibration.table import default_table

    data = dict(data)
    model, maker = data.pop("table"), data.pop("table_manufacturer", None)
    if not isinstance(model, str) or not (maker is None or isinstance(maker, str)):
        raise ConfigError(f"{where}.table: a model name as Google's calibration table spells it, got {model!r}")
    found = default_table().lookup(model, maker)
    if found is None:
        raise ConfigError(f"{where}.table: {model!r} is not in Google's calibration table (bluezone calibrate --find lists it)")
    if found.tx_power_dbm is None and "tx_power_dbm" not in data:
        raise ConfigError(f"{where}.table: Google's table has no TX power for {found.model}; give tx_power_dbm")
    data.setdefault("name", found.model)
    data.setdefault("rssi_correction_db", found.rssi_correction_db)
    if found.tx_power_dbm is not None:
        data.setdefault("tx_power_dbm", found.tx_power_dbm)
    return data


def _positives(where: str, value: Any) -> int | str:
    if value == "all":
        return "all"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive count or \"all\", got {value!r}")
    return value


def _devices(data: Any) -> Devices:
    return _build(
        Devices,
        "[devices]",
        data,
        {
            "share": lambda w, v: _number(w, v, 0.0, 1.0),
            "positives": _positives,
            "carriage": _carriage,
            "models": lambda w, v: tuple(
                _model(f"{w}[{i}]", x) for i, x in enumerate(_at_most(w, v, MAX_MODELS, "phone models"))
            ) or (DeviceModel(),),
        },
    )


def _at_most(where: str, value: Any, most: int, what: str) -> list[Any]:
    """A list of at most ``most`` tables, refused before any is read."""
    items = _list(where, value)
    if len(items) > most:
        raise ConfigError(f"{where}: {len(items):,} {what}, more than the {most:,} a scenario may have")
    return items


def _group(where: str, data: Any) -> Group:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    if data.get("name"):  # errors call the group by its name too: "#4 (buffet)" is found in the file at once
        where = f"{where} ({_text(f'{where}.name', data['name'])[:40]})"
    missing = [k for k in ("kind", "people") if k not in data]
    if missing:
        _check_keys(where, data, {f.name for f in fields(Group)})  # `peple = 10` is a typo, not a missing key
        raise ConfigError(f"{where}: every group needs kind and people (no {' or '.join(missing)})")
    if data["kind"] not in GROUP_KINDS:
        raise ConfigError(f"{where}.kind: {data['kind']!r} is not one of {', '.join(GROUP_KINDS)}")
    count = lambda w, v: _whole(w, v, 0, 100_000)  # noqa: E731
    # times, speeds and stops below 0 make no sense and quietly empty the simulation
    span = lambda w, v: _pair(w, v, low=0.0)  # noqa: E731
    group = _build(
        Group,
        where,
        data,
        {
            "people": count,
            "name": _text,
            "arrive_min": span,
            "stay_min": span,
            "region": _region,
            "speed_mps": span,
            "pause_s": span,
            "group_size": lambda w, v: _pair(w, v, int, low=1, high=MAX_PEOPLE),
            "layout": lambda w, v: _choice(w, v, LAYOUTS),
            "origin": _xy,
            "rows": count,
            "columns": count,
            "spacing_m": _xy,
            "seats_per_table": count,
            "table_radius_m": lambda w, v: _number(w, v, 0.1, 10),
            "facing_deg": lambda w, v: v if v == "table" else _number(w, v, -360, 360),
            "sway_m": lambda w, v: _number(w, v, 0, 5),
            "direction_deg": lambda w, v: _number(w, v, -360, 360),
            "service_s": span,
            "stop_interval_s": lambda w, v: _pair(w, v, low=10, high=10_000),
            "ride_stops": lambda w, v: _pair(w, v, int, low=1, high=MAX_RIDE_STOPS),
            "phone_share": lambda w, v: _number(w, v, 0.0, 1.0),
            "carriage": _carriage,
            "models": _model_shares,
            "posture": lambda w, v: _choice(w, v, (*POSTURES, "auto")),
            "storey": lambda w, v: _whole(w, v, 0, 200),
            "desks": lambda w, v: _whole(w, v, 1, 1000),
            "desk_spacing_m": lambda w, v: _number(w, v, 0.1, 100),
            "standing_areas": lambda w, v: tuple(_region(f"{w}[{i}]", x) for i, x in enumerate(_list(w, v))),
            "standing_spacing_m": lambda w, v: _number(w, v, 0.2, 10),
            "path": _path,
            "lane_m": lambda w, v: _number(w, v, 0, 100),
            "both_ways": _bool,
        },
    )
    if group.kind == "passing" and group.speed_mps[0] <= 0:
        raise ConfigError(f"{where}.speed_mps: passers-by walk through, so the lowest speed must be above 0, got {list(group.speed_mps)}")
    if group.kind == "seated" and group.layout != "tables" and group.rows * group.columns < group.people:
        raise ConfigError(f"{where}: {group.people} people but only {group.rows * group.columns} seats (rows x columns)")
    if group.kind == "seated" and group.layout == "tables":
        seats = max(group.rows * group.columns, 1) * group.seats_per_table  # as bluezone.sim.mobility lays them out
        if seats < group.people:
            raise ConfigError(
                f"{where}: {group.people} people but only {seats} seats (rows x columns tables x seats_per_table)"
            )
    if group.kind != "seated" and dict(group.carriage or ()).get("table", 0.0) > 0:
        raise ConfigError(
            f"{where}.carriage: a {group.kind} group moves and a phone on a table stays put: give \"table\" to seated groups only"
        )
    if group.kind == "bus" and group.rows * group.columns == 0:
        raise ConfigError(f"{where}: a bus needs rows and columns of seats")
    if group.kind in ("seated", "bus"):
        per_table = group.seats_per_table if group.kind == "seated" and group.layout == "tables" else 1
        places = max(group.rows * group.columns, 1) * per_table
        if places > MAX_SEATS:
            raise ConfigError(f"{where}: {places} seats laid out, more than the {MAX_SEATS:,} a group may have")
    spots = sum(_standing_spots(area, group.standing_spacing_m) for area in group.standing_areas)
    if spots > MAX_SEATS:
        raise ConfigError(
            f"{where}.standing_areas: about {spots:,.0f} standing spots {group.standing_spacing_m:g} m apart, more than"
            f" the {MAX_SEATS:,} a group may have (smaller areas or a wider standing_spacing_m)"
        )
    if group.kind == "bus":
        _standing_off_the_seats(where, group)
    if group.group_size[0] < 1:
        raise ConfigError(f"{where}.group_size: must be >= 1")
    # a key the kind does not read did nothing, silently (a queue's `rows`, a bus's `stay_min`): docs/simulation.md's
    # table of group keys says which kinds read each, and so does this one
    for key in data:
        kinds = KEY_KINDS.get(key)
        if kinds is not None and group.kind not in kinds:
            raise ConfigError(
                f"{where}.{key}: a {group.kind} group does not use it (it is for {_and(kinds)} groups;"
                " docs/simulation.md, \"Writing a scenario\")"
            )
    layout_keys = {"seats_per_table": ("tables",), "table_radius_m": ("tables",), "direction_deg": ("line",)}
    for key, layouts in layout_keys.items():
        if key in data and group.kind == "seated" and group.layout not in layouts:
            raise ConfigError(
                f"{where}.{key}: a seated group laid out as {group.layout} does not use it"
                f" (it is for layout = \"{layouts[0]}\"; docs/simulation.md, \"Writing a scenario\")"
            )
    return group


def _and(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def bus_seat_columns(group: Group) -> list[float]:
    """The x of each column of a bus's seats: ``spacing_m[0]`` apart from ``origin``, those past the middle half a
    spacing further on (the aisle between the halves).  Rows are ``spacing_m[1]`` apart.  ``mobility.Bus`` seats its
    passengers there, and the scenario's check keeps standing areas off them: one layout for both."""
    ox, sx = group.origin[0], group.spacing_m[0]
    aisle_x = ox + (group.columns / 2 - 0.5) * sx
    return [x + 0.5 * sx if x > aisle_x else x for x in (ox + c * sx for c in range(group.columns))]


def _standing_off_the_seats(where: str, group: Group) -> None:
    """Refuse a bus's standing area that covers one of its seats (a seat's point inside it, edges included): standing
    passengers were placed on seated ones, as close as two people cannot be, and nothing said so.  An area in the
    aisle, between the halves, covers none."""
    columns = sorted((x, c) for c, x in enumerate(bus_seat_columns(group)))
    oy, sy = group.origin[1], group.spacing_m[1]
    rows = sorted((oy + r * sy, r) for r in range(group.rows))
    for i, area in enumerate(group.standing_areas):
        column, row = _first_within(columns, area[0], area[2]), _first_within(rows, area[1], area[3])
        if column is not None and row is not None:
            seats = [columns[0][0], rows[0][0], columns[-1][0], rows[-1][0]]
            raise ConfigError(
                f"{where}.standing_areas[{i}]: {_metres(area)} covers seats (row {row[1] + 1}, seat {column[1] + 1} at"
                f" ({column[0]:g}, {row[0]:g}) m): standing passengers would stand on seated ones; keep the area off"
                f" the seats, which lie within {_metres(seats)} (an area in the aisle between the halves covers none)"
            )


def _first_within(points: list[tuple[float, int]], low: float, high: float) -> tuple[float, int] | None:
    """The first of ``points`` (sorted (coordinate, index) pairs) with ``low <= coordinate <= high``, if any."""
    at = bisect.bisect_left(points, (low, -1))
    return points[at] if at < len(points) and points[at][0] <= high else None


def _metres(values: Any) -> str:
    return f"[{', '.join(f'{v:g}' for v in values)}]"


def _standing_spots(area: tuple[float, float, float, float], spacing: float) -> float:
    """At least as many spots as ``mobility.hex_spots`` lays in ``area``, counted without laying them."""
    row_gap = spacing * math.sqrt(3) / 2
    return ((area[3] - area[1]) / row_gap + 1) * ((area[2] - area[0]) / spacing + 1)


def _path(where: str, value: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    points = _list(where, value)
    if len(points) != 2:
        raise ConfigError(f"{where}: expected two points [[x0, y0], [x1, y1]], got {value!r}")
    a, b = (_xy(f"{where}[{i}]", p) for i, p in enumerate(points))
    if a == b:
        raise ConfigError(f"{where}: the two ends must differ")
    return (a, b)  # type: ignore[return-value]


def _model_shares(where: str, value: Any) -> tuple[tuple[str, float], ...]:
    """Model shares by name, e.g. {iphone = 1.0}; names are checked against [[devices.models]] later."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: expected a table of model names and shares, like {{iphone = 1.0}}")
    shares = tuple((str(k), _number(f"{where}.{k}", v, 0.0, MAX_SHARE)) for k, v in value.items())
    if sum(share for _, share in shares) <= 0:
        raise ConfigError(f"{where}: shares must add up to more than 0")
    return shares


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _radio(data: Any) -> RadioModel:
    return _build(RadioModel, "[radio]", data, _radio_converters())


def _radio_converters() -> dict[str, Any]:
    num = lambda w, v: _number(w, v, -200, 200)  # noqa: E731
    conv: dict[str, Any] = {f.name: num for f in fields(RadioModel)}
    conv["carriage_loss_db"] = lambda w, v: _shares(w, v, CARRIAGES)
    conv["packet_loss"] = lambda w, v: _number(w, v, 0.0, 1.0)
    conv["exponent"] = lambda w, v: _number(w, v, 0.1, 6.0)
    conv["advert_rate_hz"] = lambda w, v: _number(w, v, 0.1, 50.0)
    conv["slow_tau_s"] = lambda w, v: _number(w, v, 0.1, 1e6)
    for spread in ("fast_sd_db", "slow_sd_db", "link_sd_db"):  # numpy's normal() refuses a negative scale
        conv[spread] = lambda w, v: _number(w, v, 0.0, 200)
    return conv


def _scanning(data: Any) -> Scanning:
    scanning = _build(
        Scanning,
        "[scanning]",
        data,
        {"window_s": lambda w, v: _number(w, v, 0.01, 3600), "interval_s": lambda w, v: _number(w, v, 0.01, 3600)},
    )
    if scanning.window_s > scanning.interval_s:
        raise ConfigError("[scanning]: window_s must not exceed interval_s")
    return scanning


def _start(where: str, value: Any) -> float:
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if stamp.timestamp() < 0:  # GAEN numbers its 10-minute intervals from 1970
            raise ConfigError(f"{where}: {value} is before 1970-01-01, where GAEN's key schedule begins")
        return stamp.timestamp()
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return _start(where, parsed)
    raise ConfigError(f"{where}: expected a date-time like 2026-06-03T09:00:00Z, got {value!r}")


def scenario_from_mapping(data: dict[str, Any], where: str = "scenario") -> Scenario:
    """Check and convert a parsed TOML document."""
    top = {f.name for f in fields(Scenario)}
    _check_keys(where, data, top)
    for required in ("name", "duration_min", "groups"):
        if required not in data:
            raise ConfigError(f"{where}: missing {required!r}")
    groups = tuple(_group(f"{where}: [[groups]] #{i + 1}", g) for i, g in enumerate(_list("groups", data["groups"])))
    if not groups or sum(g.people for g in groups) < 2:
        raise ConfigError(f"{where}: a scenario needs at least two people")
    people = sum(g.people for g in groups)
    if people > MAX_PEOPLE:
        raise ConfigError(f"{where}: {people:,} people, more than the {MAX_PEOPLE:,} a scenario may have")
    try:
        return _scenario(data, groups)
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def _scenario(data: dict[str, Any], groups: tuple[Group, ...]) -> Scenario:
    devices = _devices(data.get("devices", {}))
    if sum(m.share for m in devices.models) <= 0:
        raise ConfigError("[devices].models: shares must add up to more than 0")
    scenario = Scenario(
        name=_text("name", data["name"]),
        description=_text("description", data.get("description", "")),
        duration_min=_number("duration_min", data["duration_min"], 0.1, 24 * 60),
        step_s=_number("step_s", data.get("step_s", 1.0), 0.1, 60),
        start=_start("start", data["start"]) if "start" in data else Scenario.start,
        close_contact_min=_number("close_contact_min", data.get("close_contact_min", 15.0), 0.1, 1440),
        close_distance_m=_number("close_distance_m", data.get("close_distance_m", 2.0), 0.1, 100),
        space=_space(data.get("space", {})),
        devices=devices,
        groups=groups,
        radio=_radio(data.get("radio", {})),
        scanning=_scanning(data.get("scanning", {})),
    )
    if scenario.step_s > scenario.scanning.interval_s:
        raise ConfigError("step_s must not exceed [scanning].interval_s")
    # people whose share of phones is above 0: a count of uploaders above it was cut to the phones drawn, unsaid
    carriers = sum(g.people for g in groups if (devices.share if g.phone_share is None else g.phone_share) > 0)
    if devices.positives != "all" and int(devices.positives) > carriers:
        raise ConfigError(
            f"[devices].positives: {devices.positives} uploaders, but the scenario's people carry at most {carriers}"
            " phones (a count up to that, or \"all\")"
        )
    names = {m.name for m in devices.models}
    twice = sorted(name for name, n in Counter(m.name for m in devices.models).items() if n > 1)
    if twice and any(g.models for g in groups):
        raise ConfigError(f"[devices].models: groups choose models by name, but {', '.join(twice)} is named twice")
    for i, group in enumerate(groups):
        unknown = sorted({name for name, _ in group.models or ()} - names)
        if unknown:
            raise ConfigError(
                f"[[groups]] #{i + 1}.models: no [[devices.models]] named {', '.join(unknown)}"
                f" (have: {', '.join(sorted(names))})"
            )
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; ConfigError (exit code 2) says what is wrong."""
    path = Path(path)
    return scenario_from_mapping(read_toml_file(path, "scenario file", MAX_SCENARIO_BYTES), where=path.name)
