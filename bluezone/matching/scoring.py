"""Risk scoring of exposure windows: a Scorer interface, a registry, and the GAEN v2 scorer.

Duration is estimated from sighting times, not packet counts: time is cut into slots of
``slot_seconds`` (60 s, about one scan cycle of a continuously scanning daemon) and each
slot holding at least one sighting counts as one slot of exposure, whatever the number of
adverts in it.  A slot's attenuation is the mean of its sightings' attenuations (GAEN's
"typical attenuation" of a scan instance), and the slot falls in that attenuation's bucket.
A backend that scans only part of the time can set ``max_gap_slots`` > 1: then an
occupied slot also stands for the empty slots before it, up to that many in all, as GAEN
credits a scan instance with the seconds since the previous scan (capped).

An occupied slot itself is credited the part of it the link was present (``present_share``):
from the first sighting of a run of consecutive slots to its last, plus one sampling interval
(``sampling_seconds``), not the whole slot.  GAEN scans a few seconds every few minutes and credits
each scan that heard the key with the seconds since the previous scan (microG's and Google's
``ScanInstance.secondsSinceLastScan``): over a random scan phase that is the time present plus one
scan of a few seconds.  A whole minute for every slot a sighting touches credited a continuous
scanner about a minute more per encounter (a ride of 13.6 minutes touches 15 slots: credited 15.0).

Defaults (``GaenConfig()``), from the German Corona-Warn-App's ENF v2 risk parameters
(cwa-documentation, "Risk calculation with ENF v2"; SwissCovid uses the same 55/63 dB
thresholds): buckets immediate <= 55 dB, near <= 63 dB, medium <= 73 dB, other above
(GAEN v2 ``DailySummariesConfig.attenuationBucketThresholdDb``); weights 100 %, 50 %, 0 %,
0 % (``attenuationBucketWeights``); close contact (F1) at >= 15 weighted minutes.  CWA
documents 55 dB as about 1.5 m and 63 dB as about 3 m, so the default means "closer than
about 1.5 m for 15 minutes, or 1.5-3 m for 30": roughly "within 2 m for 15 minutes".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bluezone.config import read_toml_table
from bluezone.errors import ConfigError
from bluezone.matching.matcher import ExposureWindow

BUCKETS = ("immediate", "near", "medium", "other")


@dataclass(frozen=True)
class Score:
    """What a scorer says about one exposure window."""

    scorer: str
    minutes_by_bucket: dict[str, float]
    weighted_minutes: float
    minutes: float  # total estimated duration
    closest_attenuation: int  # dB, the smallest seen
    typical_attenuation: float  # dB, the median over sightings
    distance_band: str  # e.g. "< 1.5 m": an estimate, attenuation is a noisy proxy
    close_contact: bool  # F1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer(Protocol):
    """Anything that turns an exposure window into a Score."""

    name: str

    def score(self, window: ExposureWindow) -> Score: ...


#: Slots and smoothing windows are minutes of one day at most: more only allocates memory.
MAX_SLOTS = 24 * 60
#: A slot is at most an hour: each slot heard counts its whole length, so slot_seconds=1e8 made a
#: 31-minute meeting 1,666,667 minutes (1e308: a number of 300 digits) on a day's window.
MAX_SLOT_SECONDS = 3600.0


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float (TOML's have no size limit here)
        return False


def check_setting_types(config: Any) -> None:
    """Check each field of a scorer config against its annotation, before any range check.

    Settings come untyped from TOML and ``--set``: a bool is not an int, a count is whole,
    and nan or inf would slip through every comparison and quietly change who is flagged.
    """
    for f in fields(config):
        value = getattr(config, f.name)
        if f.type in ("int", int):
            # within int64: counts meet numpy arrays (2**70 was 'OverflowError: Python int too large', exit 1)
            if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
                raise ConfigError(f"scorer setting {f.name} must be a whole number (|n| < 2**63), got {value!r}")
        elif f.type in ("bool", bool):
            if not isinstance(value, bool):
                raise ConfigError(f"scorer setting {f.name} must be true or false, got {value!r}")
        elif f.type in ("float", float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise ConfigError(f"scorer setting {f.name} must be a finite number, got {value!r}")
        elif str(f.type).startswith("tuple[str"):
            want = len(getattr(type(config), f.name, ())) or len(value)
            if not isinstance(value, tuple) or len(value) != want or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"scorer setting {f.name} must be a list of {want} strings, got {value!r}")


def check_ranges(config: Any, rules: Iterable[tuple[str, bool, str]]) -> None:
    """ConfigError for the first of ``rules`` (a setting, whether its value is in range, the range in words)
    that is broken, naming that setting, its range and its value: one message naming every bound of a group
    ("soft_width_db >= 0, min_sightings >= 1, ...") left the user to find which value was wrong."""
    for name, ok, bounds in rules:
        if not ok:
            raise ConfigError(f"scorer setting {name} must be {bounds}, got {getattr(config, name)!r}")


@dataclass(frozen=True)
class GaenConfig:
    """Thresholds and weights of the GAEN v2-style scorer (see the module docstring)."""

    immediate_db: int = 55
    near_db: int = 63
    medium_db: int = 73
    immediate_weight: float = 1.0
    near_weight: float = 0.5
    medium_weight: float = 0.0
    other_weight: float = 0.0
    close_contact_minutes: float = 15.0
    slot_seconds: float = 60.0
    max_gap_slots: int = 1
    #: "present": an occupied slot counts the part of it the link was present (``present_share``), as
    #: GAEN's seconds since the last scan do on average; "slots": every occupied slot whole (before 2026-12).
    credit: str = "present"
    #: Seconds between two chances to hear a neighbour, added once to each run's first-to-last span
    #: (``present_share``): the simulator scans 2 s every 10 s; a continuous scan hears a GAEN phone
    #: every 0.2-0.3 s, the shared recordings every 0.1-2 s (an upper bound for those).
    sampling_seconds: float = 10.0
    #: Rough distance for each bucket, shown to users (CWA: 55 dB ~ 1.5 m, 63 dB ~ 3 m;
    #: 73 dB extrapolated with a path-loss exponent of 2).
    distance_bands: tuple[str, str, str, str] = ("< 1.5 m", "1.5-3 m", "3-10 m", "> 10 m")

    def __post_init__(self) -> None:
        check_setting_types(self)
        if not 0 <= self.immediate_db <= self.near_db <= self.medium_db <= 255:
            raise ConfigError(
                "attenuation thresholds must satisfy 0 <= immediate <= near <= medium <= 255 dB, got"
                f" {self.immediate_db}, {self.near_db}, {self.medium_db}"
            )
        check_ranges(self, [(f, 0.0 <= getattr(self, f) <= 2.5, "0-2.5")  # GAEN allows 0-250 %
                            for f in ("immediate_weight", "near_weight", "medium_weight", "other_weight")])
        check_ranges(self, (
            ("close_contact_minutes", self.close_contact_minutes > 0, "> 0"),
            ("slot_seconds", 1 <= self.slot_seconds <= MAX_SLOT_SECONDS, f"1-{MAX_SLOT_SECONDS:g}"),
            ("max_gap_slots", 1 <= self.max_gap_slots <= MAX_SLOTS, f"1-{MAX_SLOTS}"),
        ))
        check_credit(self.credit, self.sampling_seconds, self.slot_seconds)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> GaenConfig:
        refuse_unknown_settings(cls, data, "gaen")
        values = dict(data)
        if isinstance(values.get("distance_bands"), list):
            values["distance_bands"] = tuple(values["distance_bands"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad scorer settings: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "scoring.gaen") -> GaenConfig:
        """Read ``[scoring.gaen]`` (or another dotted table) from a TOML file."""
        return cls.from_mapping(read_toml_table(path, table, "scorer config"))


def refuse_unknown_settings(config: Any, data: Mapping[str, Any], scorer: str) -> None:
    """ConfigError naming every key of ``data`` that is no field of the dataclass ``config``: a
    misspelt setting would otherwise stay at its default unnoticed."""
    known = {f.name for f in fields(config)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"unknown {scorer} scorer setting(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
        )


def median(values: np.ndarray, axis: int | None = None) -> Any:
    """``np.median(values, axis)``, the same numbers and types, without numpy 2's check for a masked
    array, which imports ``numpy.ma`` on first use (0.01-0.03 s of a check's last, serial step):
    numpy's own partition and mean of the middle one or two values, NaN wherever one is NaN."""
    a = np.asarray(values)
    if axis is None:
        a, axis = a.ravel(), 0
    n = a.shape[axis]
    if n == 0 or a.dtype.kind not in "fiu":  # numpy's warning and NaN, or a type median rarely sees
        return np.median(a, axis=axis)
    k = n // 2
    part = np.partition(a, [k - 1, k] if n % 2 == 0 else k, axis=axis)
    # np.mean of the middle one or two, as it computes it (a sum from 0.0 in float64 for integers,
    # then divided), without its Python layers: called for every window's every rolling median
    mid = np.take(part, k, axis=axis)
    if a.dtype.kind != "f":
        mid = mid.astype(np.float64)
    if a.dtype == np.float16:  # summed in float32 by np.mean: not worth a path of its own
        out = np.mean(np.take(part, [k - 1, k] if n % 2 == 0 else [k], axis=axis), axis=axis)
    elif n % 2:
        out = (0.0 + mid) / 1
    else:
        low = np.take(part, k - 1, axis=axis)
        out = (0.0 + (low if a.dtype.kind == "f" else low.astype(np.float64)) + mid) / 2
    if a.dtype.kind == "f":
        nan = np.isnan(a).any(axis=axis)
        if np.ndim(out) == 0:
            return a.dtype.type(np.nan) if nan else out
        out[nan] = np.nan
    return out


def check_credit(credit: str, sampling_seconds: float, slot_seconds: float) -> None:
    """ConfigError unless ``credit`` is "present" or "slots" and ``sampling_seconds`` 0 to one slot
    (a longer one would credit more than a slot)."""
    if credit not in ("present", "slots"):
        raise ConfigError(f"credit must be 'present' or 'slots', got {credit!r}")
    if not 0 <= sampling_seconds <= slot_seconds:
        raise ConfigError(f"sampling_seconds must be 0 to slot_seconds ({slot_seconds:g}), got {sampling_seconds:g}")


def present_share(
    times: np.ndarray, slot_seconds: float, bridge_slots: int, sampling_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """(occupied slots in order, the share 0-1 of each that the link was present).

    Occupied slots at most ``bridge_slots`` empty slots apart form one run; a run is present from its
    first sighting less half a sampling interval to its last plus half, so each run is credited its
    first-to-last span plus one interval at most, whatever the slots it touches.  Inner slots of a run
    are whole; the ends get the part of the slot inside the run.

    Called for every window by every scorer that credits time present: a window's times come in
    order (the matcher sorts them), so they are sorted only when they are not, and slots and runs
    are cut where they change, without ``np.unique``'s sort or ``np.r_``'s Python layers.
    """
    t = np.asarray(times, np.float64)
    n = len(t)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0)
    if n > 1 and not (t[1:] >= t[:-1]).all():  # NaN compares False: sorted, as before
        t = np.sort(t)
    slots = np.floor(t / slot_seconds).astype(np.int64)
    if in_slot_order(t, slot_seconds, checked=True):
        first = change_points(slots)  # each occupied slot's first sighting
        occupied = slots[first]
    else:  # NaN, or slots beyond int64 (no real time): as it always was
        occupied, first = np.unique(slots, return_index=True)
    starts = change_points(occupied, bridge_slots + 1)  # each run's first occupied slot
    run = np.cumsum(_flags(len(occupied), starts)) - 1
    last = _ends(first, n)[_ends(starts, len(occupied))]  # each run's last sighting
    return occupied, share_between(occupied, t[first[starts]][run], t[last][run], slot_seconds, sampling_seconds)


def in_slot_order(times: np.ndarray, slot_seconds: float, checked: bool = False) -> bool:
    """Whether ``times`` (non-empty; ``checked``: known to be sorted) are in order and their slot numbers
    too: no NaN, and none beyond int64 (``_SLOT_LIMIT``), where the cast would wrap."""
    if not checked and len(times) > 1 and not bool((times[1:] >= times[:-1]).all()):
        return False
    return bool(slot_seconds > 0 and -_SLOT_LIMIT < times[0] / slot_seconds and times[-1] / slot_seconds < _SLOT_LIMIT)


def share_between(
    slots: np.ndarray, first: np.ndarray | float, last: np.ndarray | float, slot_seconds: float, sampling_seconds: float
) -> np.ndarray:
    """The share 0-1 of each of ``slots`` between ``first`` (a time, or one per slot) less half a
    sampling interval and ``last`` plus half: ``present_share``'s last step, which a caller that knows
    its one run's first and last sighting takes alone."""
    lo = np.maximum(slots * slot_seconds, first - sampling_seconds / 2)
    hi = np.minimum((slots + 1) * slot_seconds, last + sampling_seconds / 2)
    return np.clip((hi - lo) / slot_seconds, 0.0, 1.0)


#: Slot numbers of times in order are in order up to here (beyond 2**63 the cast to int64 wraps).
_SLOT_LIMIT = 2.0**62


def change_points(values: np.ndarray, step: int = 0) -> np.ndarray:
    """Positions in sorted ``values`` (int, non-empty) that start a group: the first, and each one
    more than ``step`` above the one before it (0: each new value)."""
    new = np.empty(len(values), bool)
    new[0] = True
    np.greater(values[1:] - values[:-1], step, out=new[1:])
    return np.flatnonzero(new)


def _flags(n: int, positions: np.ndarray) -> np.ndarray:
    """n booleans, True at ``positions``."""
    out = np.zeros(n, bool)
    out[positions] = True
    return out


def _ends(starts: np.ndarray, n: int) -> np.ndarray:
    """The last position of each group of n positions that begin at ``starts`` (sorted, from 0)."""
    out = np.empty(len(starts), np.intp)
    out[:-1] = starts[1:] - 1
    out[-1] = n - 1
    return out


def slot_durations(
    times: np.ndarray, slot_seconds: float, max_gap_slots: int, sampling_seconds: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(slot of each sighting's group, minutes credited to each occupied slot).

    Returns ``inverse`` (occupied-slot number of every sighting) and ``minutes`` per occupied slot,
    in time order: the empty slots before it that it stands for (``max_gap_slots``, GAEN's seconds
    since the last scan) whole, itself by the share of it the link was present (``present_share``;
    whole with ``sampling_seconds`` None).
    """
    slots = np.floor(np.asarray(times, np.float64) / slot_seconds).astype(np.int64)
    occupied, inverse = occupied_slots(slots)
    gaps = np.diff(occupied, prepend=occupied[:1] - 1) if len(occupied) else occupied
    share = 1.0 if sampling_seconds is None else present_share(times, slot_seconds, max_gap_slots - 1, sampling_seconds)[1]
    credit = (np.minimum(gaps, max_gap_slots) - 1 + share) * (slot_seconds / 60.0)
    return inverse, credit.astype(np.float64)


def occupied_slots(slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(slots, return_inverse=True)``: a window's times come in order, so its slots are cut
    where they change (compared, not subtracted: slots 2**63 apart cannot overflow) without the sort."""
    n = len(slots)
    if n < 2 or not bool((slots[1:] >= slots[:-1]).all()):
        occupied, inverse = np.unique(slots, return_inverse=True)
        return occupied, inverse
    new = np.empty(n, bool)
    new[0] = True
    np.not_equal(slots[1:], slots[:-1], out=new[1:])
    return slots[new], np.cumsum(new, dtype=np.intp) - 1


@dataclass
class GaenScorer:
    """Weighted minutes by attenuation bucket, as GAEN v2 daily summaries compute them."""

    config: GaenConfig = field(default_factory=GaenConfig)
    name: str = "gaen"

    def bucket_of(self, attenuation: np.ndarray) -> np.ndarray:
        """Bucket number (0 immediate ... 3 other) of each attenuation."""
        c = self.config
        return np.searchsorted(np.array([c.immediate_db, c.near_db, c.medium_db]), attenuation, "left")

    def score(self, window: ExposureWindow) -> Score:
        c = self.config
        att = np.asarray(window.attenuation, np.float64)
        sampling = c.sampling_seconds if c.credit == "present" else None
        inverse, credit = slot_durations(window.times, c.slot_seconds, c.max_gap_slots, sampling)
        typical_per_slot = np.bincount(inverse, weights=att) / np.bincount(inverse)
        buckets = self.bucket_of(typical_per_slot)
        minutes = np.bincount(buckets, weights=credit, minlength=4)
        weights = np.array([c.immediate_weight, c.near_weight, c.medium_weight, c.other_weight])
        weighted = float(minutes @ weights)
        typical = float(median(att))
        return Score(
            scorer=self.name,
            minutes_by_bucket={b: round(float(m), 3) for b, m in zip(BUCKETS, minutes)},
            weighted_minutes=round(weighted, 3),
            minutes=round(float(minutes.sum()), 3),
            closest_attenuation=int(att.min()),
            typical_attenuation=typical,
            distance_band=c.distance_bands[int(self.bucket_of(np.array([typical]))[0])],
            close_contact=weighted >= c.close_contact_minutes - 1e-9,
        )


# --- registry -----------------------------------------------------------------------------

ScorerFactory = Callable[..., Scorer]
_SCORERS: dict[str, ScorerFactory] = {}
#: ``bluezone check``'s scorer: 15+ minutes within about 2 m, judged from robust per-minute
#: attenuation (bluezone_scorer.py); ``gaen`` is the GAEN v2 / Corona-Warn-App baseline.
DEFAULT_SCORER = "bluezone"


def register_scorer(name: str, factory: ScorerFactory) -> None:
    """Make a scorer available by name (``bluezone check --scorer NAME``)."""
    _SCORERS[name] = factory


def scorer_names() -> list[str]:
    """The names ``get_scorer`` knows, plugins included."""
    _load_plugins()
    return sorted(_SCORERS)


def get_scorer(
    name: str = DEFAULT_SCORER,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Scorer:
    """A scorer by name; settings from a TOML file (``config_path``), then ``overrides`` on top."""
    _load_plugins()
    try:
        factory = _SCORERS[name]
    except KeyError:
        raise ConfigError(f"unknown scorer {name!r}; known: {', '.join(sorted(_SCORERS))}") from None
    return factory(config_path=config_path, **dict(overrides or {}))


def parse_setting(text: str) -> tuple[str, Any]:
    """``"near_weight=0.5"`` -> ("near_weight", 0.5): the value is read as TOML, else kept as text."""
    import tomllib  # here: only --set reads TOML, every check would pay its import before its store is read

    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ConfigError(f"scorer setting must look like NAME=VALUE, got {text!r}")
    try:
        return name, tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return name, value.strip()
    except RecursionError:  # tomllib reads nested arrays by recursion
        raise ConfigError(f"scorer setting {name}: the value is nested too deeply") from None


def configured(config_cls: Any, scorer_cls: Callable[[Any], Scorer]) -> ScorerFactory:
    """A registry factory: defaults, then a TOML file's table, then single overrides on top.

    ``config_cls`` needs ``from_toml(path)`` and ``from_mapping(dict)``; ``scorer_cls(config)``.
    """

    def factory(config_path: str | Path | None = None, **overrides: Any) -> Scorer:
        config = config_cls.from_toml(config_path) if config_path else config_cls()
        if overrides:
            config = config_cls.from_mapping({**asdict(config), **overrides})
        return scorer_cls(config)

    return factory


register_scorer("gaen", configured(GaenConfig, GaenScorer))

#: Modules that register further scorers when imported (each owns its own file).
_PLUGIN_MODULES = ("bluezone.matching.bluezone_scorer",)


def _load_plugins() -> None:
    import importlib

    for module in _PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
