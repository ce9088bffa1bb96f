"""Building blocks for matching tests: keys and the sightings their adverts leave behind, the two-day
scene check_store's tests share, and the signed day file made of it that check_key_file's tests read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.export import SignatureInfo, signed_export_zip
from bluezone.keyformat.keyfile import load_keys, load_signed_keys
from bluezone.keyformat.keys import REPORT_TYPE_REVOKED, empty_keys
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.check import CheckResult, check_keys
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.scoring import get_scorer
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore

DAY = 2_900_016  # interval of a UTC midnight
SCORERS = {
    "bluezone": get_scorer("bluezone"),  # the same-minute reference, the day's where a minute is sparse
    "day-shift": BluezoneScorer(BluezoneConfig(minute_reference_weight=0.0)),  # the day's reference only
    "gaen": get_scorer("gaen"),  # no receiver context
}
#: The key that signs day_file's export (a new one each run), and its signature info.
SIGNER = ec.generate_private_key(ec.SECP256R1())
INFO = SignatureInfo("310", "v1")
FILLER = 3000  # random keys around the scene's: many batches at BATCH = 256


def make_keys(rows: list[tuple[bytes, int, int]], risk: int = 0) -> np.ndarray:
    keys = empty_keys(len(rows))
    for i, (tek, start, period) in enumerate(rows):
        keys[i]["key"] = np.void(tek)
        keys[i]["rolling_start"] = start
        keys[i]["rolling_period"] = period
        keys[i]["transmission_risk"] = risk
    return keys


def advert_sightings(
    tek: bytes,
    rpi_interval: int,
    times: list[float] | np.ndarray,
    rssi: int | list[int] = -70,
    tx_power: int = -20,
    metadata: bytes | None = None,
) -> np.ndarray:
    """Sightings of the advert ``tek`` sent during ``rpi_interval``, received at ``times``."""
    value = rpi(rpi_key(tek), rpi_interval)
    meta = bytes(Metadata(tx_power=tx_power)) if metadata is None else metadata
    out = np.zeros(len(times), SIGHTING_DTYPE)
    out["time"] = times
    out["rpi"] = np.void(value)
    out["aem"] = np.void(aem(aem_key(tek), value, meta))
    out["rssi"] = rssi
    out["tx_power"] = -128
    return out


def noise_sightings(n: int, t0: float, t1: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, SIGHTING_DTYPE)
    out["time"] = np.sort(rng.uniform(t0, t1, n))
    out["rpi"] = np.frombuffer(rng.bytes(16 * n), "V16")
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["rssi"] = rng.integers(-100, -40, n)
    return out


def interval_time(interval: int, offset: float = 30.0) -> float:
    return interval * INTERVAL_SECONDS + offset


def neighbours(rng: np.random.Generator, first: int, intervals: int, phones: int, per_rpi: int) -> np.ndarray:
    """``phones`` around for ``intervals`` 10-minute intervals from ``first``, each heard ``per_rpi``
    times per RPI (a new random RPI every interval), each at its own level: a real store's shape."""
    n = intervals * phones * per_rpi
    out = np.zeros(n, SIGHTING_DTYPE)
    interval = np.repeat(first + np.arange(intervals), phones * per_rpi)
    out["time"] = interval * INTERVAL_SECONDS + rng.uniform(0, INTERVAL_SECONDS, n)
    out["rpi"] = np.repeat(np.frombuffer(rng.bytes(16 * intervals * phones), "V16"), per_rpi)
    level = np.repeat(rng.integers(-95, -50, intervals * phones), per_rpi)
    out["rssi"] = level + rng.integers(-4, 5, n)
    out["aem"] = np.frombuffer(rng.bytes(4 * n), "V4")
    out["tx_power"] = NO_TX_POWER
    return out


def encounter(tek: bytes, first_interval: int, minutes: int, rssi: int, every: float = 10.0) -> np.ndarray:
    """Sightings every ``every`` seconds for ``minutes`` of the adverts ``tek`` sent from ``first_interval``,
    each in the middle of its ``every`` seconds (the scorers credit a sighting the default 10-s sampling
    interval around it: so the encounter is credited its whole ``minutes``)."""
    times = first_interval * INTERVAL_SECONDS + every / 2 + np.arange(0, minutes * 60, every)
    return np.concatenate(
        [
            advert_sightings(tek, i, times[times // INTERVAL_SECONDS == i], rssi=rssi, tx_power=-20)
            for i in np.unique(times // INTERVAL_SECONDS).astype(int).tolist()
        ]
    )


def scene(seed: int = 0, per_rpi: int = 30, phones: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """(keys, sightings) over two days: busy neighbours, close and far encounters with diagnosis keys
    on both days, a key heard at the edge of GAEN's 2-hour tolerance and one just beyond it, a
    short key, a revoked key, and one RPI heard again far from its interval."""
    rng = np.random.default_rng(seed)
    teks = [bytes(rng.bytes(16)) for _ in range(8)]
    parts = [
        neighbours(rng, DAY * 1 + 40, 60, phones, per_rpi),  # day one, 06:40-16:40
        neighbours(rng, DAY + 144 + 50, 40, phones, per_rpi),  # day two
        encounter(teks[0], DAY + 60, 25, rssi=-70),  # close, long
        encounter(teks[1], DAY + 75, 30, rssi=-90),  # far
        encounter(teks[2], DAY + 144 + 60, 20, rssi=-72),  # day two
        encounter(teks[3], DAY + 144 - 1, 12, rssi=-70),  # around midnight: two windows
        advert_sightings(teks[4], DAY + 143, [(DAY + 143 + 12) * INTERVAL_SECONDS + 30.0] * 3, rssi=-70),  # 12 intervals late
        advert_sightings(teks[4], DAY + 142, [(DAY + 142 + 13) * INTERVAL_SECONDS + 30.0] * 3, rssi=-70),  # 13: too late
        encounter(teks[5], DAY + 20, 15, rssi=-66),  # within its short period
        encounter(teks[5], DAY + 100, 15, rssi=-66),  # after it: never sent
        encounter(teks[6], DAY + 80, 30, rssi=-60),  # revoked
        advert_sightings(teks[7], DAY + 90, (DAY + 90) * INTERVAL_SECONDS + np.arange(0, 300, 20.0), rssi=-68),
        advert_sightings(teks[7], DAY + 90, (DAY + 144 + 90) * INTERVAL_SECONDS + np.arange(0, 300, 20.0), rssi=-68),
    ]
    keys = make_keys(
        [(teks[0], DAY, 144), (teks[1], DAY, 144), (teks[2], DAY + 144, 144), (teks[3], DAY, 144),
         (teks[4], DAY, 144), (teks[5], DAY, 40), (teks[6], DAY, 144), (teks[7], DAY, 144),
         (bytes(rng.bytes(16)), DAY, 144)],
        risk=3,
    )
    keys["report_type"][6] = REPORT_TYPE_REVOKED
    rows = np.concatenate(parts)
    return keys, rows[np.argsort(rows["time"], kind="stable")]


def day_file(tmp_path: Path, per_rpi: int = 30) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """(signed zip, store, the file's keys, its revised keys): the check_store scene's keys among
    random ones, with revisions of every kind, and a store that also holds days no key covers."""
    keys, rows = scene(per_rpi=per_rpi, phones=6 if per_rpi > 1 else 180)
    rng = np.random.default_rng(5)
    filler = make_keys([(bytes(rng.bytes(16)), DAY + int(rng.integers(0, 288)), 144) for _ in range(FILLER)])
    file_keys = np.concatenate([filler[:1000], keys, filler[1000:]])  # scene key i is row 1000 + i
    file_keys["report_type"][1003] = REPORT_TYPE_REVOKED  # scene key 3: revoked in the file itself
    new_tek, new_revoked_tek = bytes(rng.bytes(16)), bytes(rng.bytes(16))
    revised = np.concatenate([
        file_keys[[1000]],  # scene key 0 (close, long): revoked by a negative test
        file_keys[[1006]],  # scene key 6, revoked in the file: re-instated, a positive test after all
        file_keys[[1001]],  # scene key 1: its risk revised
        make_keys([(new_tek, DAY, 144), (new_revoked_tek, DAY, 144)], risk=5),  # published before
    ])
    revised["report_type"] = [REPORT_TYPE_REVOKED, 1, 1, 2, REPORT_TYPE_REVOKED]
    revised["transmission_risk"][2] = 7
    later = [
        neighbours(rng, DAY + 4 * 144 + 30, 30, 6, per_rpi),  # a day no key covers
        advert_sightings(new_tek, DAY + 50, (DAY + 50) * INTERVAL_SECONDS + np.arange(0, 600, 15.0), rssi=-65),
        advert_sightings(new_revoked_tek, DAY + 50, (DAY + 50) * INTERVAL_SECONDS + np.arange(0, 600, 15.0), rssi=-65),
        # scene key 2's RPI heard again days later: found against the whole store, matches nothing
        advert_sightings(bytes(keys[2]["key"]), DAY + 144 + 60, [(DAY + 5 * 144) * INTERVAL_SECONDS + 30.0] * 3),
    ]
    path = tmp_path / "day.zip"
    path.write_bytes(signed_export_zip(file_keys, SIGNER, INFO, region="VN", revised_keys=revised))
    db = tmp_path / "store.db"
    with SightingStore.open(db) as store:
        store.add_sightings(np.concatenate([rows, *later]))
    return path, db, file_keys, revised


def as_array(path: Path, db: Path, scorer: str, **signed: object) -> CheckResult:
    """What the check reported before: the whole file loaded, then matched as one array."""
    keys = load_signed_keys(path, **signed) if signed else load_keys(path)  # type: ignore[arg-type]
    return check_keys(keys, db, scorer=SCORERS[scorer])


# Windows as the simulator's receivers store them (the present credit's tests, issue 13).
T0 = 1_780_473_600.0  # a UTC midnight, so a minute boundary
SAMPLING = 10.0


def scanned(start_min: float, end_min: float, seed: int = 0, attenuation: int = 50) -> ExposureWindow:
    """What the simulator's receivers store: a 2-s scan every 10 s at a random phase, adverts at
    4.5 Hz with 20 % lost, for a pair present from ``start_min`` to ``end_min``."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 10)
    scans = np.arange(phase, 3600.0, 10.0)
    t = np.sort(np.concatenate([s + rng.uniform(0, 2, rng.poisson(4.5 * 2 * 0.8)) for s in scans]))
    t = t[(t >= start_min * 60) & (t <= end_min * 60)]
    att = np.full(len(t), attenuation, np.int32)
    return ExposureWindow(key_index=0, day=int(T0), times=T0 + t, rssi=-24 - att, attenuation=att, tx_power_estimated=False)


def bare(times: np.ndarray, attenuation: int = 50) -> ExposureWindow:
    t = np.asarray(times, np.float64)
    att = np.full(len(t), attenuation, np.int32)
    return ExposureWindow(key_index=0, day=int(T0), times=T0 + t, rssi=-24 - att, attenuation=att, tx_power_estimated=False)


#: A UTC midnight in Unix seconds: the day of ``sightings``.
MIDNIGHT = 1_780_444_800


def sightings(attenuations: dict[int, float], minutes: int, per_minute: int = 20, start: float = MIDNIGHT + 3600, seed: int = 0) -> np.ndarray:
    """Neighbour n (its RPI is n) heard ``per_minute`` times a minute at about ``attenuations[n]`` dB (TX -24 dBm)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, att in attenuations.items():
        k = minutes * per_minute
        out = np.zeros(k, SIGHTING_DTYPE)
        out["time"] = start + np.sort(rng.uniform(0, minutes * 60, k))
        out["rpi"] = np.frombuffer(n.to_bytes(16, "little") * k, "V16")
        out["rssi"] = np.round(-24 - (att + rng.normal(0, 2, k))).astype(np.int16)
        out["tx_power"] = NO_TX_POWER
        rows.append(out)
    return np.sort(np.concatenate(rows), order="time")
