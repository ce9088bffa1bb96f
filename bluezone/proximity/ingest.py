"""From received adverts to sightings: the one place that decides what is stored.

A valid sighting is 0xFD6F service data of exactly 20 bytes (16 RPI + 4 AEM) with a
plausible RSSI, or a Bluezone v3 advert (0x4E56) whose 0x22B5 manufacturer data is exactly a
12-byte ID; anything else is counted as malformed and never stored.  Vectorised over
batches so the daemon and the simulator push adverts through the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bluezone.crypto.bluezone3 import ID_LENGTH as BLUEZONE3_ID_LENGTH
from bluezone.crypto.bluezone3 import SERVICE_UUID as BLUEZONE3_UUID
from bluezone.crypto.payload import SERVICE_DATA_LENGTH, SERVICE_UUID
from bluezone.proximity.radio import Advert
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, NO_TX_POWER, SIGHTING_DTYPE

#: RSSI an HCI controller can report (Core spec: -127..+20 dBm; 127 means "not available").
RSSI_MIN, RSSI_MAX = -127, 20


@dataclass(frozen=True)
class Ingested:
    """A batch after validation: the sightings to store, their senders' addresses, what was dropped."""

    sightings: np.ndarray  # SIGHTING_DTYPE
    addresses: list[str | None]
    malformed: int
    bluezone3: np.ndarray = field(default_factory=lambda: np.empty(0, BLUEZONE3_SIGHTING_DTYPE))
    bluezone3_addresses: list[str | None] = field(default_factory=list)


def payloads_to_sightings(
    times: Sequence[float] | np.ndarray,
    payloads: Sequence[bytes] | np.ndarray,
    rssi: Sequence[int] | np.ndarray,
    tx_power: Sequence[int | None] | np.ndarray | None = None,
    service_uuids: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a batch given column by column; returns (sightings, mask of the valid inputs).

    ``payloads`` is a list of bytes (as radios deliver them) or a uint8 array of shape (n, L)
    (as a simulator holds them: no Python object per advert; L != 20 makes every row malformed).

    ``tx_power`` entries may be None (no TX Power Level field); ``service_uuids`` None means
    every payload came under 0xFD6F (the simulator's case).
    """
    n = len(payloads)
    if isinstance(payloads, np.ndarray):
        return _array_payloads(np.asarray(times, dtype=float), payloads, np.asarray(rssi, dtype=float), tx_power)
    t = np.asarray(times, dtype=float)
    r = np.asarray(rssi, dtype=float)
    if len(t) != n or len(r) != n:
        raise ValueError("times, payloads and rssi must have the same length")
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    ok = (lengths == SERVICE_DATA_LENGTH) & np.isfinite(t) & (r >= RSSI_MIN) & (r <= RSSI_MAX)
    if service_uuids is not None:
        ok &= np.fromiter((u.lower() == SERVICE_UUID for u in service_uuids), dtype=bool, count=n)
    keep = np.flatnonzero(ok)
    out = np.empty(len(keep), SIGHTING_DTYPE)
    if len(keep):
        raw = np.frombuffer(b"".join([payloads[i] for i in keep.tolist()]), dtype=np.uint8).reshape(-1, 20)
        out["rpi"] = raw[:, :16].copy().view("V16").ravel()
        out["aem"] = raw[:, 16:].copy().view("V4").ravel()
        out["time"] = t[keep]
        out["rssi"] = r[keep]
        if tx_power is None:
            out["tx_power"] = NO_TX_POWER
        else:
            tx = np.array([NO_TX_POWER if v is None else v for v in tx_power], dtype=float)[keep]
            tx[~((tx >= -127) & (tx <= 127))] = NO_TX_POWER
            out["tx_power"] = tx
    return out, ok


def _array_payloads(
    t: np.ndarray, payloads: np.ndarray, r: np.ndarray, tx_power: Sequence[int | None] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    n = len(payloads)
    if len(t) != n or len(r) != n:
        raise ValueError("times, payloads and rssi must have the same length")
    ok = np.isfinite(t) & (r >= RSSI_MIN) & (r <= RSSI_MAX)
    if payloads.ndim != 2 or payloads.shape[1] != SERVICE_DATA_LENGTH:
        ok[:] = False
    keep = np.flatnonzero(ok)
    out = np.empty(len(keep), SIGHTING_DTYPE)
    if len(keep):
        raw = np.ascontiguousarray(payloads[keep], dtype=np.uint8)
        out["rpi"] = np.ascontiguousarray(raw[:, :16]).view("V16").ravel()
        out["aem"] = np.ascontiguousarray(raw[:, 16:]).view("V4").ravel()
        out["time"], out["rssi"] = t[keep], r[keep]
        if tx_power is None:
            out["tx_power"] = NO_TX_POWER
        else:
            tx = np.asarray(tx_power, dtype=float)[keep]
            tx[~((tx >= -127) & (tx <= 127))] = NO_TX_POWER
            out["tx_power"] = tx
    return out, ok


def adverts_to_sightings(adverts: Sequence[Advert]) -> Ingested:
    """Validate received adverts (the daemon's writer calls this once per flush)."""
    if not adverts:
        return Ingested(np.empty(0, SIGHTING_DTYPE), [], 0)
    v3 = [a for a in adverts if a.service_uuid.lower() == BLUEZONE3_UUID]
    gaen = [a for a in adverts if a.service_uuid.lower() != BLUEZONE3_UUID] if v3 else list(adverts)
    sightings, ok = payloads_to_sightings(
        [a.time for a in gaen],
        [a.service_data for a in gaen],
        [a.rssi for a in gaen],
        [a.tx_power for a in gaen],
        [a.service_uuid for a in gaen],
    )
    addresses = [gaen[i].address for i in np.flatnonzero(ok).tolist()]
    bz3, bz3_addresses = bluezone3_sightings(v3)
    malformed = len(adverts) - len(sightings) - len(bz3)
    return Ingested(sightings, addresses, int(malformed), bz3, bz3_addresses)


def bluezone3_sightings(adverts: Sequence[Advert]) -> tuple[np.ndarray, list[str | None]]:
    """The valid Bluezone v3 adverts among ``adverts`` (all under 0x4E56) and their senders."""
    good = [
        a
        for a in adverts
        if len(a.service_data) == BLUEZONE3_ID_LENGTH and np.isfinite(a.time) and RSSI_MIN <= a.rssi <= RSSI_MAX
    ]
    out = np.empty(len(good), BLUEZONE3_SIGHTING_DTYPE)
    if good:
        out["time"] = [a.time for a in good]
        out["bzid"] = np.frombuffer(b"".join(a.service_data for a in good), "V12")
        out["rssi"] = [a.rssi for a in good]
        out["tx_power"] = [a.tx_power if a.tx_power is not None and -127 <= a.tx_power <= 127 else NO_TX_POWER for a in good]
    return out, [a.address for a in good]
