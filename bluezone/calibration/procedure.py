"""Calibrate a radio against a device of known calibration, as Google calibrated phones.

Google's procedure puts the device under test and a reference device (a Pixel 4) 1 m apart,
takes the median RSSI each hears of the other, and compares it with what a reference receiver
hears of the same transmitter ("BLE RSSI calibration procedure" and "BLE calibration
calculation", developers.google.com/android/exposure-notifications).  With two devices only,
the reference receiver's reading is replaced by the calibrated attenuation at the measured
distance, ``REFERENCE_ATTENUATION_1M_DB + 10 n log10(d / 1 m)``:

- RSSI correction = reference TX power - median RSSI heard of the reference - A(d)
- TX power        = A(d) + median RSSI the reference hears of us + reference RSSI correction

The second needs the reference's reading of us: a second radio on this machine gives it
itself; for a phone, the user reads it off a BLE scanner app (``phone_rssi``), or the TX power
is left as it was and reported as not measured.  While measuring, this radio advertises a
throwaway 0xFD6F payload (random bytes, no key of the user's), so a phone app can see it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from bluezone.clock import Clock
from bluezone.config import MAX_RSSI_CORRECTION_DB
from bluezone.crypto.payload import SERVICE_UUID, TX_POWER_MAX, TX_POWER_MIN
from bluezone.errors import CalibrationError, ReferenceNotHeardError, TooFewAdvertsError
from bluezone.proximity.radio import Advert, Radio

log = logging.getLogger(__name__)

#: Calibrated attenuation at 1 m: what the daemon's default TX power (-24 dBm) and a typical
#: Android RSSI at 1 m (-74 dBm, Ng et al.) give, what the emulated channel and the
#: simulator assume, and about what GAEN's buckets mean (55 dB ~ 1.5 m, CWA).
REFERENCE_ATTENUATION_1M_DB = 50.0
#: Free-space exponent for other distances; measure at 1 m and it does not matter.
PATH_LOSS_EXPONENT = 2.0
DEFAULT_DISTANCE_M = 1.0
DISTANCE_RANGE_M = (0.3, 3.0)
DEFAULT_DURATION_S = 180.0
MIN_ADVERTS = 100  # GAEN sends 4-5 a second: 100 is under a minute of a device that is heard well
#: The shortest measurement that can hear MIN_ADVERTS: GAEN's slowest advertising interval (270 ms) sends
#: them in 27 s (the emulated radio hears ~4.1 a second: 101-102 in 25 s, 123 in 30 s; 38 in 10 s, refused).
MIN_DURATION_S = 30.0
#: Another 0xFD6F sender heard at the same time within this many dB of the strongest is too close to tell apart.
AMBIGUOUS_DB = 6.0
MAX_CORRECTION_DB = MAX_RSSI_CORRECTION_DB


def check_duration(duration_s: float) -> None:
    """CalibrationError, before anything is measured, for a duration too short to hear MIN_ADVERTS adverts:
    10 s was accepted and always failed after measuring (38 adverts heard, 100 needed)."""
    if not duration_s >= MIN_DURATION_S:
        raise CalibrationError(
            f"--duration {duration_s:g} s cannot hear the {MIN_ADVERTS} adverts a calibration needs: measure for at"
            f" least {MIN_DURATION_S:g} s (a phone sends one every 200-270 ms; a few minutes is best)"
        )


@dataclass(frozen=True)
class Reference:
    """The device of known calibration: its numbers, and its adverts if we send them ourselves."""

    name: str
    rssi_correction_db: float
    tx_power_dbm: float
    radio: Radio | None = None  # a second radio on this machine, calibrated; None for a phone


@dataclass(frozen=True)
class CalibrationResult:
    """What a calibration found; ``tx_power_dbm`` is None when the reference's reading of us was missing."""

    rssi_correction_db: int
    tx_power_dbm: int | None
    distance_m: float
    duration_s: float
    reference: str
    adverts_heard: int
    median_rssi_dbm: float
    spread_db: float  # interquartile range of the RSSI heard of the reference
    heard_by_reference: int | None  # adverts of ours the reference heard (a second radio only)
    reference_median_rssi_dbm: float | None
    adapter_address: str | None = None  # the adapter measured (``Radio.adapter_address``): its numbers hold for it only

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def note(self, when: str) -> str:
        """The line kept in the daemon's config, so ``doctor`` and ``status`` can say how it was calibrated."""
        tx = f"TX power {self.tx_power_dbm} dBm" if self.tx_power_dbm is not None else "TX power not measured"
        adapter = f" on adapter {self.adapter_address}" if self.adapter_address else ""
        return (
            f"bluezone calibrate {when}{adapter}: {self.distance_m:g} m from {self.reference}, {self.adverts_heard} adverts, "
            f"RSSI correction {self.rssi_correction_db:+d} dB, {tx}"
        )


def reference_attenuation(distance_m: float) -> float:
    """The calibrated attenuation a device at ``distance_m`` should see (see the module docstring)."""
    return REFERENCE_ATTENUATION_1M_DB + 10.0 * PATH_LOSS_EXPONENT * math.log10(distance_m)


def throwaway_payload() -> bytes:
    """20 random bytes shaped as 0xFD6F service data: seen by scanners, linked to no key."""
    return os.urandom(20)


class _Collector:
    """Adverts under 0xFD6F one radio hears, grouped by payload (an RPI lives 10-20 minutes)."""

    def __init__(self, ignore: set[bytes]) -> None:
        self.ignore = ignore
        self.by_payload: dict[bytes, list[tuple[float, int]]] = {}

    def __call__(self, advert: Advert) -> None:
        if advert.service_uuid != SERVICE_UUID or len(advert.service_data) != 20 or advert.service_data in self.ignore:
            return
        self.by_payload.setdefault(bytes(advert.service_data), []).append((advert.time, advert.rssi))

    def count(self, payload: bytes | None = None) -> int:
        if payload is not None:
            return len(self.by_payload.get(payload, []))
        return sum(len(v) for v in self.by_payload.values())


def pick_reference(groups: dict[bytes, list[tuple[float, int]]], name: str) -> list[int]:
    """The RSSIs of the strongest 0xFD6F sender, its RPIs before and after a rotation merged.

    Another sender heard in the same stretch of time within ``AMBIGUOUS_DB`` of it makes the
    measurement ambiguous (which phone is the reference?): an error that says what to do.
    """
    if not groups:
        raise ReferenceNotHeardError(
            f"{name} was not heard: is it within a few metres, Bluetooth on, exposure notifications "
            "(or the reference radio) advertising?"
        )
    stats = sorted(
        ((statistics.median(r for _, r in rows), min(t for t, _ in rows), max(t for t, _ in rows), rows) for rows in groups.values()),
        key=lambda s: -s[0],
    )
    best, first, last, rows = stats[0]
    picked = list(rows)
    for median, start, end, more in stats[1:]:
        if best - median > AMBIGUOUS_DB:
            break
        overlap = min(end, last) - max(start, first)
        if overlap > 2.0 and len(more) >= 10:
            raise CalibrationError(
                f"two devices advertise 0xFD6F at similar strength ({best:.0f} and {median:.0f} dBm): "
                "move other phones and Bluetooth devices at least 5 m away and start again"
            )
        picked.extend(more)  # the same device after an RPI rotation
        first, last = min(first, start), max(last, end)
    return [r for _, r in picked]


def _iqr(values: list[int]) -> float:
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return float(q[2] - q[0])


async def measure(
    radio: Radio,
    reference: Reference,
    clock: Clock,
    *,
    distance_m: float = DEFAULT_DISTANCE_M,
    duration_s: float = DEFAULT_DURATION_S,
    advertise_tx_power: int = -24,
    phone_rssi: float | None = None,
    progress: Callable[[float, int], None] | None = None,
) -> CalibrationResult:
    """Scan ``duration_s`` seconds with ``radio`` (and ``reference.radio``), then compute the calibration.

    ``advertise_tx_power`` goes into our throwaway advert's AEM position only; ``phone_rssi``
    is the median RSSI a phone reference showed for our advert, if the user read it.
    """
    lo, hi = DISTANCE_RANGE_M
    if not lo <= distance_m <= hi or not math.isfinite(distance_m):
        raise CalibrationError(f"distance must be {lo}-{hi} m (1 m is Google's), got {distance_m}")
    check_duration(duration_s)
    ours, theirs = throwaway_payload(), throwaway_payload()
    heard = _Collector(ignore={ours})
    heard_by_ref = _Collector(ignore={theirs})
    async with radio:
        adapter_address = radio.adapter_address
        await radio.advertise(ours, advertise_tx_power)
        await radio.start_scanning(heard)
        if reference.radio is not None:
            async with reference.radio:
                await reference.radio.advertise(theirs, int(round(reference.tx_power_dbm)))
                await reference.radio.start_scanning(heard_by_ref)
                await _wait(clock, duration_s, heard, theirs, progress)
        else:
            await _wait(clock, duration_s, heard, None, progress)
    if reference.radio is not None:
        rssi = [r for _, r in heard.by_payload.get(theirs, [])]
        if not rssi:
            raise ReferenceNotHeardError(f"{reference.name} advertised, but this radio heard none of it: are both on and within a few metres?")
    else:
        rssi = pick_reference(heard.by_payload, reference.name)
    if len(rssi) < MIN_ADVERTS:
        raise TooFewAdvertsError(
            f"heard only {len(rssi)} adverts of {reference.name} in {duration_s:g} s (need {MIN_ADVERTS}): "
            "measure longer (--duration), or check that it advertises all the time"
        )
    expected = reference_attenuation(distance_m)
    median = float(statistics.median(rssi))
    correction = round(reference.tx_power_dbm - median - expected)
    ref_median: float | None = None
    heard_count: int | None = None
    if reference.radio is not None:
        back = [r for _, r in heard_by_ref.by_payload.get(ours, [])]
        heard_count = len(back)
        if len(back) < MIN_ADVERTS:
            raise TooFewAdvertsError(
                f"{reference.name} heard only {len(back)} adverts of this radio (need {MIN_ADVERTS}): can it scan?"
            )
        ref_median = float(statistics.median(back))
    elif phone_rssi is not None:
        ref_median = float(phone_rssi)
    tx_power = None if ref_median is None else tx_power_from(distance_m, ref_median, reference.rssi_correction_db)
    if abs(correction) > MAX_CORRECTION_DB:
        raise CalibrationError(
            f"an RSSI correction of {correction:+d} dB is implausible (median {median:.0f} dBm at {distance_m:g} m): "
            "check the distance, and that nothing stands between the devices"
        )
    return CalibrationResult(
        rssi_correction_db=int(correction),
        tx_power_dbm=None if tx_power is None else int(tx_power),
        distance_m=distance_m,
        duration_s=duration_s,
        reference=reference.name,
        adverts_heard=len(rssi),
        median_rssi_dbm=median,
        spread_db=_iqr(rssi),
        heard_by_reference=heard_count,
        reference_median_rssi_dbm=ref_median,
        adapter_address=adapter_address,
    )


def tx_power_from(distance_m: float, reference_rssi: float, reference_correction: float) -> int:
    """Our TX power from the median RSSI the reference heard of us (see the module docstring)."""
    if not math.isfinite(reference_rssi) or not -127 <= reference_rssi <= 20:
        raise CalibrationError(f"the reference's RSSI of this radio must be -127..20 dBm, got {reference_rssi}")
    tx = round(reference_attenuation(distance_m) + reference_rssi + reference_correction)
    if not TX_POWER_MIN <= tx <= TX_POWER_MAX:
        raise CalibrationError(
            f"a TX power of {tx} dBm is outside what GAEN receivers accept ({TX_POWER_MIN}..{TX_POWER_MAX}): "
            "check the distance and the RSSI read on the reference"
        )
    return int(tx)


def with_phone_reading(result: CalibrationResult, reference_correction: float, phone_rssi: float) -> CalibrationResult:
    """``result`` with the TX power a phone's reading of our advert gives (read after measuring)."""
    tx = tx_power_from(result.distance_m, phone_rssi, reference_correction)
    return replace(result, tx_power_dbm=tx, reference_median_rssi_dbm=float(phone_rssi))


async def _wait(
    clock: Clock, duration_s: float, heard: _Collector, payload: bytes | None, progress: Callable[[float, int], None] | None
) -> None:
    """``duration_s`` of the event loop's time (monotonic; a test's virtual time), not of the wall clock: stepped (NTP's
    first sync on a board without a real-time clock), it ended the measurement at the step or made it the step longer."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    step = 1.0
    while (elapsed := loop.time() - start) < duration_s:
        await clock.sleep(min(step, duration_s - elapsed))
        if progress:
            progress(min((loop.time() - start) / duration_s, 1.0), heard.count(payload))
