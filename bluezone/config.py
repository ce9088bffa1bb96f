"""The daemon's settings: one frozen dataclass, loadable from a TOML file.

A TOML file holds the same names as the fields, at the top level or under ``[daemon]``::

    tx_power = -24
    rpi_rotation_min = 600
    rpi_rotation_max = 1200

``bluezone run`` reads ``--config`` or, without it, ``default_config_path()`` when that file
exists; ``bluezone calibrate`` writes its results there (``save_settings``, comments kept).

Unknown keys and wrong types are refused with a one-line ConfigError: a typo in a
privacy-relevant setting (rotation, retention) must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import ConfigError
from bluezone.writefile import link_target, write_file

RETENTION_DAYS = 14  # sightings and daily keys older than this are deleted: a promise, not a default
MAX_RPI_LIFETIME = 1200.0  # seconds: GAEN changes the RPI every 10-20 minutes
#: The largest RSSI correction (dB) a receiver may have: what ``bluezone calibrate`` accepts (Google's table's phones
#: lie within -37..+14).  Every check shifted each attenuation by it: 127 set by hand made a phone 25 m away an F1
#: (and one beyond TRUSTED_CORRECTION_DB is not applied now).
MAX_RSSI_CORRECTION_DB = 40
#: The largest RSSI correction (dB, either way) bluezone believes: ``check`` and the venue rules alike read the RSSI as it
#: comes (correction 0, as an uncalibrated adapter's) beyond it.  Google's table measured 311 of its 313 phones within
#: -20..+14 dB (the two beyond: -21 and -37), and Linux adapters are often 8-9 dB off; a correction beyond this is
#: likelier a calibration gone wrong (a reference behind a wall or in a pocket, a typo) than an adapter, and moves every
#: verdict by as much: +30 checked a visitor in next door (-97 dBm read -67).  ``calibrate`` still measures and writes
#: up to MAX_RSSI_CORRECTION_DB (what it measured: ``run``, ``status``, ``doctor`` and ``check`` say it is not believed).
#: One policy: check applied up to 40 where the venue rules stopped at 20, for no reason either side could give.
TRUSTED_CORRECTION_DB = 20


#: A settings file (daemon.toml, config.toml, a scorer's): one with every option of every command set is 15 KB.
#: tomllib parses its slowest shape (``a = [1,1,...]``) at 2.4 s a MiB here, and config.toml is read at every
#: command's start: a 16 MiB one, the limit before, held each for 40 s to 2 minutes before saying anything.
MAX_SETTINGS_BYTES = 1024 * 1024
#: A scenario file: every limit of docs/simulation.md written one by one (10,000 people each a group of one, every
#: model of Google's table, 1,000 walls and 1,000 zones) is 4.1 MB, 60 groups each choosing among 10,000 models 6.9 MB.
MAX_SCENARIO_BYTES = 8 * 1024 * 1024


def read_toml_file(path: str | Path, what: str = "config file", limit: int = MAX_SETTINGS_BYTES) -> dict[str, Any]:
    """A whole TOML file of at most ``limit`` bytes (a larger one refused before it is parsed); every settings file
    bluezone reads comes through here, so all fail the same way: one ConfigError line naming the file and what was
    wrong."""
    import tomllib  # here: a command with no settings file never parses TOML (~1 ms of every start)

    from bluezone.readfile import read_regular_file

    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise ConfigError(f"no {what} at {p}")
    try:
        return tomllib.loads(read_regular_file(p, limit, what, ConfigError).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {p} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise ConfigError(f"{what} {p} is nested too deeply to read") from None


def read_toml_table(path: str | Path, table: str, what: str = "config file") -> dict[str, Any]:
    """The dotted ``table`` (e.g. ``scoring.gaen``) of a TOML file.  Absent is a ConfigError naming the
    tables there: a file given to be read that gives nothing is a mistake (`check --scorer-config` of a
    file of ``[scoring.gaen]`` settings without ``--scorer gaen``, or of the wrong file, ran on defaults)."""
    doc: Any = read_toml_file(path, what)
    parts = table.split(".")
    for depth, part in enumerate(parts):
        if isinstance(doc, dict) and part not in doc:
            there = [f"[{'.'.join([*parts[:depth], k])}]" for k, v in doc.items() if isinstance(v, dict)]
            raise ConfigError(f"{what} {path} has no [{table}] table ({'it has ' + ', '.join(there) if there else 'nor any other'})")
        doc = doc.get(part) if isinstance(doc, dict) else None
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
    (immediate <= 55 dB) assume.  Set it from Google's per-model calibration table on a phone,
    or measure it with ``bluezone calibrate`` on a Linux adapter; ``calibration`` says how
    ``tx_power`` and ``rssi_correction`` were obtained ("" = nominal, uncalibrated).
    """

    tx_power: int = -24
    rpi_rotation_min: float = 600.0  # seconds; GAEN: a random 10-20 min
    rpi_rotation_max: float = 1200.0
    queue_size: int = 10_000  # received adverts waiting for the writer; beyond: counted drops
    backlog_size: int = 100_000  # sightings kept in memory while the store refuses writes (disk full)
    flush_interval: float = 5.0  # seconds between batched writes at most
    flush_size: int = 2_000  # adverts that trigger a write at once
    max_rpis_per_minute: int = 1_000  # distinct RPIs (and v3 IDs) stored per minute; a flood's others are not
    status_interval: float = 60.0  # seconds between status lines
    purge_interval: float = 3600.0  # seconds between retention purges
    retention_days: int = 14
    rssi_correction: int = 0  # this device's RSSI correction (dB), used by `check`
    calibration: str = ""  # how tx_power and rssi_correction were obtained; "" = nominal values
    #: the Bluetooth address of the adapter calibrated ("" = not recorded: not checked); another's numbers differ
    calibration_adapter: str = ""

    @property
    def calibrated(self) -> bool:
        """A calibration note, and numbers it does not contradict (``edited_since_calibration``)."""
        return bool(self.calibration.strip()) and self.edited_since_calibration() is None

    def edited_since_calibration(self) -> str | None:
        """The numbers edited since ``bluezone calibrate`` wrote them beside its note, said as the config has them
        and as the note has them; None when the note says nothing else (or names no numbers: one written by hand)."""
        return edited_since_calibration(self.calibration, self.tx_power, self.rssi_correction)

    def on_another_adapter(self, address: str | None) -> str | None:
        """What ``run``, ``status`` and ``doctor`` say when the adapter at ``address`` is not the one calibrated."""
        return on_another_adapter(self.calibration_adapter, address)

    def uncalibrated_numbers(self) -> str:
        """What ``doctor``, ``status`` and ``run`` say of TX power and RSSI correction without a calibration note."""
        return uncalibrated_numbers(self.tx_power, self.rssi_correction)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("str", str):
                if not isinstance(value, str) or "\n" in value or len(value) > 500:
                    raise ConfigError(f"config: {f.name} must be one line of text, got {value!r}")
                continue
            want = int if f.type in ("int", int) else float
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if want is int:
                ok = ok and isinstance(value, int)
            if not ok:
                raise ConfigError(f"config: {f.name} must be {want.__name__}, got {value!r}")
            # TOML's nan and inf pass every range check below: rpi_rotation_max = inf never rotates
            if want is float and not _finite(value):
                raise ConfigError(f"config: {f.name} must be a finite number, got {value!r}")
        # here, not at the top: every command's start reads this module (cliconfig), and payload brings numpy
        # (~75 ms), which a check imports only once its store's reader has started (bluezone.matching.cli)
        from bluezone.crypto.payload import TX_POWER_MAX, TX_POWER_MIN

        if not TX_POWER_MIN <= self.tx_power <= TX_POWER_MAX:
            # a signed byte fits the AEM, but every receiver (GAEN's and bluezone's) ignores a TX power
            # outside this range and assumes its default: a typo such as 24 for -24 silently did nothing
            raise ConfigError(
                f"config: tx_power must be {TX_POWER_MIN}..{TX_POWER_MAX} dBm (receivers ignore others), got {self.tx_power}"
            )
        if not -MAX_RSSI_CORRECTION_DB <= self.rssi_correction <= MAX_RSSI_CORRECTION_DB:
            raise ConfigError(
                f"config: rssi_correction must be -{MAX_RSSI_CORRECTION_DB}..{MAX_RSSI_CORRECTION_DB} dB (what bluezone"
                f" calibrate measures; every check shifts each attenuation by it), got {self.rssi_correction}"
            )
        if self.calibration_adapter and not _BLUETOOTH_ADDRESS.fullmatch(self.calibration_adapter):
            raise ConfigError(
                f"config: calibration_adapter must be a Bluetooth address (00:1A:7D:DA:71:13, as bluezone calibrate"
                f" writes it) or empty, got {self.calibration_adapter!r}"
            )
        if not 0 < self.rpi_rotation_min <= self.rpi_rotation_max:
            raise ConfigError("config: need 0 < rpi_rotation_min <= rpi_rotation_max")
        # The privacy promises are not settings: an RPI lives at most 20 minutes (GAEN), nothing
        # is kept beyond 14 days, and the running daemon purges at least daily.
        if self.rpi_rotation_max > MAX_RPI_LIFETIME:
            raise ConfigError(f"config: rpi_rotation_max is at most {MAX_RPI_LIFETIME:.0f} s (GAEN: 10-20 minutes)")
        for name in ("queue_size", "backlog_size", "flush_size", "max_rpis_per_minute", "retention_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config: {name} must be at least 1")
        if self.retention_days > RETENTION_DAYS:
            raise ConfigError(f"config: retention_days is at most {RETENTION_DAYS}")
        # a busy loop otherwise: status_interval = 1e-9 printed ~5,000 status lines a second (a journal
        # filling its disk), purge_interval = 1e-9 purged without pause; a new RPI each millisecond is
        # thousands of advertising changes a second on BlueZ
        for name, least in (("flush_interval", 0.1), ("status_interval", 1.0), ("purge_interval", 60.0),
                            ("rpi_rotation_min", 1.0)):
            if getattr(self, name) < least:
                raise ConfigError(f"config: {name} must be at least {least:g} s, got {getattr(self, name)!r}")
        if self.purge_interval > DAY_SECONDS:
            raise ConfigError(f"config: purge_interval is at most {DAY_SECONDS} s (one day)")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the config") -> DaemonConfig:
        """Refuse a setting this version does not know: ignored, a newer bluezone's setting (or a
        typo's) could change what a check concludes; the message says how to get past it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            import difflib  # here: only a refused config needs it, every command imports this module

            name = unknown[0]
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)  # a typo, not a new name
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"config: unknown setting {name!r} ({hint}a setting of a newer bluezone? upgrade bluezone, "
                f"or remove it from {source}; known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    @classmethod
    def load(cls, path: Path | str) -> DaemonConfig:
        """Read a TOML file; its settings may sit at the top level or under ``[daemon]``."""
        p = Path(path)
        return cls._from_document(read_toml_file(p), str(p))

    @classmethod
    def load_text(cls, text: str, name: str = "config") -> DaemonConfig:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {name} is not valid TOML: {exc}") from None
        except RecursionError:
            raise ConfigError(f"config file {name} is nested too deeply to read") from None
        return cls._from_document(data, name)

    @classmethod
    def _from_document(cls, data: dict[str, Any], name: str) -> DaemonConfig:
        if "daemon" in data:
            if set(data) != {"daemon"} or not isinstance(data["daemon"], dict):
                raise ConfigError(f"config file {name}: put every setting under [daemon] or none")
            data = data["daemon"]
        try:
            return cls.from_dict(data, name)
        except ConfigError as exc:  # name the file: check, doctor and run read the default one unasked
            raise ConfigError(f"config file {name}: {str(exc).removeprefix('config: ')}") from None

    def replace(self, **changes: Any) -> DaemonConfig:
        return dataclasses.replace(self, **changes)


#: The numbers in ``bluezone calibrate``'s note (``CalibrationResult.note``, the same words since it was written).
_NOTED_NUMBERS = re.compile(r"^bluezone calibrate .*: .*RSSI correction ([+-]\d+) dB, TX power (-?\d+ dBm|not measured)$")


def edited_since_calibration(note: str, tx_power: object, rssi_correction: object) -> str | None:
    """``DaemonConfig.edited_since_calibration`` of a config's (or a daemon report's) note and numbers: a number
    edited by hand after calibrating (a typo, 20 for -20) was reported 'calibrated' by ``doctor`` and ``status``
    under the note of the old one, while every check used the new."""
    found = _NOTED_NUMBERS.match(note.strip())
    if found is None:
        return None
    edited = []
    if int(found[1]) != rssi_correction:
        edited.append(f"rssi_correction = {rssi_correction} (calibrated: {found[1]} dB)")
    if found[2] != "not measured" and int(found[2].removesuffix(" dBm")) != tx_power:
        edited.append(f"tx_power = {tx_power} (calibrated: {found[2]})")
    return ", ".join(edited) or None


_BLUETOOTH_ADDRESS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def trusted_correction(rssi_correction: int) -> int:
    """The RSSI correction applied: within +-TRUSTED_CORRECTION_DB as it is, else none (not clamped: a clamp to 20
    still checked a mistaken +21 in next door, docs/venues.md "The step at 20 dB")."""
    return rssi_correction if abs(rssi_correction) <= TRUSTED_CORRECTION_DB else 0


def on_another_adapter(calibrated: object, address: object) -> str | None:
    """The one line for a calibration made on the adapter at ``calibrated`` and used on the one at ``address`` (a
    dongle swapped, ``--adapter hci1``, the config copied to another node): its numbers are the other adapter's, and
    Linux adapters differ by 8-9 dB.  None when they are one adapter, or either is unknown (a config calibrated
    before the address was recorded is not checked)."""
    if not calibrated or not address or str(calibrated).upper() == str(address).upper():
        return None
    return (
        f"calibrated on adapter {calibrated}, but this is adapter {address}: its TX power and RSSI correction are the"
        " other adapter's, used all the same (adapters differ by up to 8-9 dB); run `bluezone calibrate` on this one"
    )


def uncalibrated_numbers(tx_power: object, rssi_correction: object) -> str:
    """'TX power -24 dBm and RSSI correction 0 dB are nominal', or, for numbers someone set in the
    config without ``bluezone calibrate``, that they were set by hand (calling those nominal was wrong)."""
    numbers = f"TX power {tx_power} dBm and RSSI correction {rssi_correction} dB"
    if (tx_power, rssi_correction) == (DaemonConfig.tx_power, DaemonConfig.rssi_correction):
        return f"{numbers} are nominal"
    return f"{numbers} were set by hand, not measured"


def xdg_home(variable: str, default: str) -> Path:
    """``$XDG_CONFIG_HOME`` or ``$XDG_DATA_HOME`` (``variable``), else ``~/default``.  A relative value
    is ignored, as the XDG spec says: it would put the store wherever the command happens to run."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / default


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/bluezone/daemon.toml``, falling back to ``~/.config``."""
    return xdg_home("XDG_CONFIG_HOME", ".config") / "bluezone" / "daemon.toml"


def load_config(path: Path | str | None = None) -> DaemonConfig:
    """``path``, or the default file when it exists, or the defaults."""
    if path is not None:
        return DaemonConfig.load(path)
    default = default_config_path()
    return DaemonConfig.load(default) if default.exists() else DaemonConfig()


def save_settings(path: Path | str, values: dict[str, Any]) -> DaemonConfig:
    """Set ``values`` in the daemon TOML at ``path`` and return the config it now holds.

    The file keeps its comments and other settings (tomlkit edits it in place), settings go
    where the file keeps them (top level or ``[daemon]``), the result is validated before it
    replaces the old file, and the replacement is atomic and private (0600).
    """
    import tomlkit

    p = Path(path)
    if p.exists() or p.is_symlink():
        check_settings_file(p)  # one clear error for a broken file, before tomlkit sees it
        document = tomlkit.parse(p.read_text(encoding="utf-8"))
    else:
        document = tomlkit.document()
        document.add(tomlkit.comment("bluezone daemon settings (see bluezone/config.py)"))
    target: Any = document["daemon"] if "daemon" in document else document
    for key, value in values.items():
        target[key] = value
    text = tomlkit.dumps(document)
    config = DaemonConfig.load_text(text, str(p))
    try:
        p = link_target(p)  # a daemon.toml kept elsewhere (dotfiles) stays a link: the file it names is replaced
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(p, text.encode("utf-8"), 0o600)  # whole: a power cut leaves the old file or the new one
    except OSError as exc:
        raise ConfigError(f"cannot write config file {p}: {exc.strerror or exc}") from None
    return config


def check_settings_file(path: Path | str) -> None:
    """Raise the ConfigError ``save_settings`` would meet in an existing file, before any work
    that would be lost to it (``bluezone calibrate`` measures for minutes, then writes)."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        DaemonConfig.load(p)  # readable, valid TOML, known settings, [daemon] a table
    for parent in p.parents:  # a file where a directory must be (config.toml/daemon.toml)
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"cannot write config file {p}: {parent} is not a directory")
            break
