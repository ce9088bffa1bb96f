"""The daemon's settings: one frozen dataclass, loadable from a TOML file.

A TOML file holds the same names as the fields, at the top level or under ``[daemon]``::

    tx_power = -24
    rpi_rotation_min = 600
    rpi_rotation_max = 1200

Unknown keys and wrong types are refused with a one-line ConfigError: a typo in a
privacy-relevant setting (rotation, retention) must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import ConfigError

RETENTION_DAYS = 14  # sightings and daily keys older than this are deleted: a promise, not a default
MAX_RPI_LIFETIME = 1200.0  # seconds: GAEN changes the RPI every 10-20 minutes


def read_toml_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A whole TOML file; every settings file bluezone reads comes through here, so all fail
    the same way: one ConfigError line naming the file and what was wrong."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no {what} at {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {p} is not valid TOML: {exc}") from None


def read_toml_table(path: str | Path, table: str, what: str = "config file") -> dict[str, Any]:
    """The dotted ``table`` (e.g. ``scoring.gaen``) of a TOML file; absent means empty."""
    doc: Any = read_toml_file(path, what)
    for part in table.split("."):
        doc = doc.get(part, {}) if isinstance(doc, dict) else {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: [{table}] must be a table")
    return doc


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


@dataclass(frozen=True)
class DaemonConfig:
    """What the proximity daemon does and how often.

    ``tx_power`` is the calibrated TX power (dBm) written into the AEM metadata: receivers
    compute attenuation = tx_power - (RSSI + their RSSI correction).  -24 dBm with a typical
    Android RSSI of -74 dBm at 1 m (fitted on the Ng smartphone data, docs/proximity.md) gives
    50 dB at 1 m, the value the simulator's channel model and GAEN's attenuation buckets
    (immediate <= 55 dB) assume.  Set it from Google's per-model calibration table on a phone.
    """

    tx_power: int = -24
    rpi_rotation_min: float = 600.0  # seconds; GAEN: a random 10-20 min
    rpi_rotation_max: float = 1200.0
    queue_size: int = 10_000  # received adverts waiting for the writer; beyond: counted drops
    flush_interval: float = 5.0  # seconds between batched writes at most
    flush_size: int = 2_000  # adverts that trigger a write at once
    status_interval: float = 60.0  # seconds between status lines
    purge_interval: float = 3600.0  # seconds between retention purges
    retention_days: int = 14
    rssi_correction: int = 0  # this device's RSSI correction (dB), used by `check`

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            want = int if f.type in ("int", int) else float
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if want is int:
                ok = ok and isinstance(value, int)
            if not ok:
                raise ConfigError(f"config: {f.name} must be {want.__name__}, got {value!r}")
            # TOML's nan and inf pass every range check below: rpi_rotation_max = inf never rotates
            if want is float and not _finite(value):
                raise ConfigError(f"config: {f.name} must be a finite number, got {value!r}")
        if not -128 <= self.tx_power <= 127:
            raise ConfigError(f"config: tx_power must fit a signed byte (dBm), got {self.tx_power}")
        if not 0 < self.rpi_rotation_min <= self.rpi_rotation_max:
            raise ConfigError("config: need 0 < rpi_rotation_min <= rpi_rotation_max")
        # The privacy promises are not settings: an RPI lives at most 20 minutes (GAEN), nothing
        # is kept beyond 14 days, and the running daemon purges at least daily.
        if self.rpi_rotation_max > MAX_RPI_LIFETIME:
            raise ConfigError(f"config: rpi_rotation_max is at most {MAX_RPI_LIFETIME:.0f} s (GAEN: 10-20 minutes)")
        for name in ("queue_size", "flush_size", "retention_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config: {name} must be at least 1")
        if self.retention_days > RETENTION_DAYS:
            raise ConfigError(f"config: retention_days is at most {RETENTION_DAYS}")
        for name in ("flush_interval", "status_interval", "purge_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"config: {name} must be positive")
        if self.purge_interval > DAY_SECONDS:
            raise ConfigError(f"config: purge_interval is at most {DAY_SECONDS} s (one day)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DaemonConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"config: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)

    @classmethod
    def load(cls, path: Path | str) -> DaemonConfig:
        """Read a TOML file; its settings may sit at the top level or under ``[daemon]``."""
        p = Path(path)
        data = read_toml_file(p)
        if "daemon" in data:
            if set(data) != {"daemon"} or not isinstance(data["daemon"], dict):
                raise ConfigError(f"config file {p}: put every setting under [daemon] or none")
            data = data["daemon"]
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> DaemonConfig:
        return dataclasses.replace(self, **changes)
