"""Each simulated phone's daily keys and RPI schedule, made with bluezone's own crypto.

Keys come from the scenario's seeded generator (not the OS CSPRNG) so that a seed repeats
a run exactly; everything after that (RPIK, RPIs, AEMK, AEM) is the product's code.
A phone rotates its RPI every 10-20 minutes at random and at each new UTC day, and the RPI
it sends is the one for the interval in which it rotated, as GAEN phones do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, rolling_start
from bluezone.crypto.keys import DailyKey, aem_key
from bluezone.crypto.payload import Metadata
from bluezone.crypto.derivation import aem, rpis_for_keys
from bluezone.keyformat.keys import keys_from_daily

ROTATE_MIN_S, ROTATE_MAX_S = 600.0, 1200.0


@dataclass(frozen=True)
class Schedule:
    """Every sender's payloads over the run, flattened: row i is valid from ``time[i]``."""

    sender: np.ndarray  # sender row (0..senders-1), sorted, then time
    time: np.ndarray  # Unix seconds the payload starts
    rpi: np.ndarray  # V16
    aem: np.ndarray  # V4
    daily: list[list[DailyKey]]  # per sender, its daily keys

    def payload_at(self, sender: np.ndarray, when: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RPI and AEM that ``sender`` rows broadcast at ``when`` (vectorised lookup)."""
        span = float(self.time.max() - self.time.min() + 10 * DAY_SECONDS)
        key = self.sender * span + (self.time - self.time.min())
        q = sender * span + (when - self.time.min())
        row = np.searchsorted(key, q, "right") - 1
        return self.rpi[row], self.aem[row]

    def diagnosis_keys(self, rows: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """KEY_DTYPE array of the given senders' keys and the sender row of each key."""
        daily, owner = [], []
        for r in rows:
            daily.extend(self.daily[int(r)])
            owner.extend([int(r)] * len(self.daily[int(r)]))
        return keys_from_daily(daily), np.array(owner, np.int64)


def make_schedule(
    senders: int, start: float, end: float, tx_power: np.ndarray, rng: np.random.Generator
) -> Schedule:
    """Keys for every UTC day touched by [start, end) and the rotation times within it."""
    first_day = int(start // DAY_SECONDS) * DAY_SECONDS
    days = list(range(first_day, int(end) + 1, DAY_SECONDS))
    daily = [
        [DailyKey(rng.bytes(16), rolling_start(day)) for day in days] for _ in range(senders)
    ]
    teks = np.frombuffer(b"".join(k.key for ks in daily for k in ks), np.uint8).reshape(-1, 16)
    starts = np.array([k.rolling_start for ks in daily for k in ks])
    all_rpis = rpis_for_keys(teks, starts).reshape(senders, len(days), -1, 16)
    rows_s, rows_t, rows_rpi, rows_aem = [], [], [], []
    for s in range(senders):
        aemks = [aem_key(k.key) for k in daily[s]]
        meta = bytes(Metadata(int(tx_power[s])))
        t = start - rng.uniform(0, ROTATE_MAX_S)
        while t < end:
            nxt = t + rng.uniform(ROTATE_MIN_S, ROTATE_MAX_S)
            midnight = (int(t // DAY_SECONDS) + 1) * DAY_SECONDS
            d = max(int((t - first_day) // DAY_SECONDS), 0)
            interval = int(max(t, first_day) // INTERVAL_SECONDS) - daily[s][d].rolling_start
            value = all_rpis[s, d, interval].tobytes()
            rows_s.append(s)
            rows_t.append(t)
            rows_rpi.append(value)
            rows_aem.append(aem(aemks[d], value, meta))
            t = min(nxt, float(midnight))
    return Schedule(
        sender=np.array(rows_s, np.int64),
        time=np.array(rows_t),
        rpi=np.frombuffer(b"".join(rows_rpi), "V16").copy(),
        aem=np.frombuffer(b"".join(rows_aem), "V4").copy(),
        daily=daily,
    )
