"""One calibration run, as ``bluezone calibrate`` does it: pick the radios, measure, keep the result.

Real radios run on the system clock.  On the emulated radio the whole run (adapter, and the
reference as a phone or a second radio at the stated distance on the same emulated air)
happens on a virtual clock, so minutes of measuring take a moment and the procedure can be
tested end to end.  The result goes into the daemon's TOML (``save_settings``), where the
daemon reads ``tx_power`` for its AEM and ``check`` reads ``rssi_correction``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.calibration.procedure import (
    DEFAULT_DISTANCE_M,
    DEFAULT_DURATION_S,
    CalibrationResult,
    Reference,
    measure,
)
from bluezone.calibration.table import default_table
from bluezone.clock import Clock, SystemClock, VirtualClock, run_on
from bluezone.config import DaemonConfig, save_settings
from bluezone.errors import ConfigError, UnknownDeviceError
from bluezone.proximity.backends import EMULATED, open_radio
from bluezone.proximity.backends.emulated import Air, Channel, Links, LogDistanceChannel
from bluezone.proximity.radio import Radio


class OffsetChannel:
    """A channel whose named emulated devices read (``rx``) and send (``tx``) some dB off nominal.

    An uncalibrated adapter reads every advert ``rx`` dB too strong and radiates ``tx`` dB more
    than it advertises; a reference phone with RSSI correction c reads -c dB off (a Pixel 4,
    c = +5, reads 5 dB weaker than the table's iPhone).  Calibrating against it must recover
    RSSI correction -rx and TX power (advertised + tx).
    """

    def __init__(self, base: Channel, rx: dict[str, float], tx: dict[str, float]) -> None:
        self.base, self.rx, self.tx = base, rx, tx
        self.air: Air | None = None

    def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray:
        value = self.base.rssi(links, rng)
        if self.air is None or not len(value):
            return value
        size = max(r.index for r in self.air.radios) + 1
        rx, tx = np.zeros(size), np.zeros(size)
        for r in self.air.radios:
            rx[r.index], tx[r.index] = self.rx.get(r.label, 0.0), self.tx.get(r.label, 0.0)
        return value + rx[links.rx] + tx[links.tx]


@dataclass(frozen=True)
class ReferenceSpec:
    """The known device as the user names it: a phone model from the table, or a calibrated radio."""

    model: str | None = None
    manufacturer: str | None = None
    radio: str | None = None  # e.g. bluez:hci1, or emulated
    rssi_correction_db: int | None = None
    tx_power_dbm: int | None = None

    def numbers(self) -> tuple[str, int, int]:
        """(name, RSSI correction, TX power) of the reference; unknown or incomplete is an error."""
        if self.radio is not None:
            if self.model is not None:
                raise ConfigError("give the reference as a phone model or as a radio, not both")
            if self.rssi_correction_db is None or self.tx_power_dbm is None:
                raise ConfigError(
                    "a reference radio needs its own calibration: --reference-rssi-correction and --reference-tx-power"
                )
            return f"reference radio {self.radio}", self.rssi_correction_db, self.tx_power_dbm
        if not self.model:
            raise ConfigError("name the reference device: --reference MODEL (a phone in Google's table) or --reference-radio")
        try:
            found = default_table().require(self.model, self.manufacturer)
        except UnknownDeviceError:  # its "give the numbers yourself" is no option here: --reference takes the table's
            who = f"{self.manufacturer} {self.model}" if self.manufacturer else self.model
            word = (self.model.split() or [self.model])[0]
            raise UnknownDeviceError(
                f"{who!r} is not in Google's calibration table: `bluezone calibrate --find {word}` lists the phones it"
                " has (give the model as it names it); a phone not in it cannot be the reference, a calibrated second"
                " adapter can (--reference-radio)"
            ) from None
        if found.tx_power_dbm is None:
            raise ConfigError(
                f"{found.model}: Google's table holds no TX power for iPhones (they are its reference receivers); "
                "use an Android phone listed in the table, or a calibrated second radio"
            )
        correction = found.rssi_correction_db if self.rssi_correction_db is None else self.rssi_correction_db
        tx = found.tx_power_dbm if self.tx_power_dbm is None else self.tx_power_dbm
        return f"{found.manufacturer} {found.model} ({found.source} in Google's table)", correction, tx


def run_calibration(
    radio_spec: str,
    reference: ReferenceSpec,
    *,
    adapter: str | None = None,
    distance_m: float = DEFAULT_DISTANCE_M,
    duration_s: float = DEFAULT_DURATION_S,
    phone_rssi: float | None = None,
    advertise_tx_power: int = -24,
    seed: int = 0,
    emulated_offsets: tuple[float, float] = (0.0, 0.0),
    progress: Callable[[float, int], None] | None = None,
) -> CalibrationResult:
    """Measure with the radio named by ``radio_spec`` against ``reference``; nothing is written.

    ``emulated_offsets``: on the emulated radio, how many dB the adapter reads too strong and
    sends above what it advertises (what calibrating should find); the emulated reference reads
    as its own RSSI correction says.
    """
    name, correction, tx = reference.numbers()
    if radio_spec.split(":", 1)[0] == EMULATED:
        if reference.radio not in (None, EMULATED):
            raise ConfigError("the emulated radio can only be calibrated against an emulated reference")
        clock = VirtualClock(time.time())
        rx_off, tx_off = emulated_offsets
        channel = OffsetChannel(LogDistanceChannel(), {"adapter": rx_off, "reference": -correction}, {"adapter": tx_off})
        air = Air(clock, seed, channel)
        channel.air = air
        return run_on(
            clock, _emulated(air, clock, name, correction, tx, distance_m, duration_s, advertise_tx_power, progress)
        )
    if reference.radio is not None and reference.radio.split(":", 1)[0] == EMULATED:
        raise ConfigError("an emulated reference needs --radio emulated")
    system = SystemClock()
    radio = open_radio(radio_spec, clock=system, adapter=adapter)
    ref_radio = open_radio(reference.radio, clock=system) if reference.radio else None
    return run_on(
        system,
        measure(
            radio,
            Reference(name, correction, tx, ref_radio),
            system,
            distance_m=distance_m,
            duration_s=duration_s,
            advertise_tx_power=advertise_tx_power,
            phone_rssi=phone_rssi,
            progress=progress,
        )
    )


async def _emulated(
    air: Air,
    clock: Clock,
    name: str,
    correction: int,
    tx: int,
    distance_m: float,
    duration_s: float,
    advertise_tx_power: int,
    progress: Callable[[float, int], None] | None,
) -> CalibrationResult:
    # the reference stands distance_m away; an emulated phone's scanner is readable, like a second radio
    adapter: Radio = air.radio("adapter", (0.0, 0.0))
    other: Radio = air.radio("reference", (distance_m, 0.0))
    return await measure(
        adapter,
        Reference(name, correction, tx, other),
        clock,
        distance_m=distance_m,
        duration_s=duration_s,
        advertise_tx_power=advertise_tx_power,
        progress=progress,
    )


def settings_of(result: CalibrationResult, when: datetime | None = None) -> dict[str, Any]:
    """The daemon settings a calibration sets: RSSI correction, TX power if measured, the note, and the adapter's
    address (cleared where unknown: a previous calibration's would name another adapter)."""
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    values: dict[str, Any] = {"rssi_correction": result.rssi_correction_db, "calibration": result.note(stamp),
                              "calibration_adapter": result.adapter_address or ""}
    if result.tx_power_dbm is not None:
        values["tx_power"] = result.tx_power_dbm
    return values


def save_calibration(path: Path, result: CalibrationResult, when: datetime | None = None) -> DaemonConfig:
    """Write a calibration into the daemon TOML at ``path``; returns the config now in force."""
    return save_settings(path, settings_of(result, when))
