"""``bluezone keys derive``: everything GAEN derives from one daily key, as hex, for interop checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from bluezone.crypto.keys import aem_key, rpi_key
from bluezone.crypto.payload import Metadata
from bluezone.crypto.derivation import aem, rpis_for_keys
from bluezone.errors import InputError


def derive(tek: bytes, interval: int, count: int = 1, metadata: bytes = bytes(Metadata(tx_power=0))) -> dict[str, Any]:
    """RPIK, AEMK and the RPI/AEM of ``count`` intervals from ``interval`` on."""
    if len(tek) != 16:
        raise InputError(f"a daily key is 16 bytes, got {len(tek)}")
    if len(metadata) != 4:
        raise InputError(f"metadata is 4 bytes, got {len(metadata)}")
    if not 1 <= count <= 144 or interval < 0:
        raise InputError("count must be 1-144 and interval >= 0")
    if interval + count > 2**32:  # ENIntervalNumber is 32 bits: past it the RPIs were of intervals wrapped round to 0
        raise InputError(f"intervals {interval}-{interval + count - 1} pass ENIntervalNumber's last, {2**32 - 1}")
    rpik, aemk = rpi_key(tek), aem_key(tek)
    rpis = rpis_for_keys(np.frombuffer(tek, np.uint8).reshape(1, 16), np.array([interval]), count)[0]
    rows = []
    for i in range(count):
        value = rpis[i].tobytes()
        rows.append({"interval": interval + i, "rpi": value.hex(), "aem": aem(aemk, value, metadata).hex()})
    return {"tek": tek.hex(), "rpik": rpik.hex(), "aemk": aemk.hex(), "metadata": metadata.hex(), "intervals": rows}


def parse_slots(spec: str, slots_per_day: int) -> list[int]:
    """``"0-3,95"`` -> [0, 1, 2, 3, 95]; every slot within the day, in the order given."""
    out: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if last else lo
        except ValueError:
            raise InputError(f"slots are numbers or ranges like 0-3,95; got {spec!r}") from None
        if not 0 <= lo <= hi < slots_per_day:
            raise InputError(f"slots must lie in 0-{slots_per_day - 1} (low-high ascending), got {part.strip()!r}")
        out.extend(range(lo, hi + 1))
    return out


def derive_bluezone3(daily_key: bytes, slots: str = "0-95", slots_per_day: int = 96, days_after: int = 0) -> dict[str, Any]:
    """The Bluezone v3 IDs of ``slots`` of a daily key (or of the key ``days_after`` days later)."""
    from bluezone.crypto import bluezone3 as bz3

    bz3.check_slots_per_day(slots_per_day)
    if not 0 <= days_after <= 366:
        raise InputError(f"days after must be 0-366, got {days_after}")
    key = bz3.daily_key(daily_key, days_after)
    wanted = parse_slots(slots, slots_per_day)
    ids = bz3.ids_for_day(key, max(wanted) + 1)
    minutes = bz3.slot_ms(slots_per_day) / 60000
    return {
        "protocol": "bluezone3",
        "daily_key": key.hex(),
        "slots_per_day": slots_per_day,
        "slots": [
            {"slot": s, "from_utc": _hhmm(s * minutes), "id": ids[s].tobytes().hex()} for s in wanted
        ],
    }


def _hhmm(minutes: float) -> str:
    m = int(minutes)
    return f"{m // 60:02d}:{m % 60:02d}"
