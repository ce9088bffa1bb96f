"""``bluezone keys derive``: everything GAEN derives from one daily key, as hex, for interop checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from bluezone.crypto.keys import aem_key, rpi_key
from bluezone.crypto.payload import Metadata
from bluezone.crypto.rpi import aem, rpis_for_keys
from bluezone.errors import InputError


def derive(tek: bytes, interval: int, count: int = 1, metadata: bytes = bytes(Metadata(tx_power=0))) -> dict[str, Any]:
    """RPIK, AEMK and the RPI/AEM of ``count`` intervals from ``interval`` on."""
    if len(tek) != 16:
        raise InputError(f"a daily key is 16 bytes, got {len(tek)}")
    if len(metadata) != 4:
        raise InputError(f"metadata is 4 bytes, got {len(metadata)}")
    if not 1 <= count <= 144 or interval < 0:
        raise InputError("count must be 1-144 and interval >= 0")
    rpik, aemk = rpi_key(tek), aem_key(tek)
    rpis = rpis_for_keys(np.frombuffer(tek, np.uint8).reshape(1, 16), np.array([interval]), count)[0]
    rows = []
    for i in range(count):
        value = rpis[i].tobytes()
        rows.append({"interval": interval + i, "rpi": value.hex(), "aem": aem(aemk, value, metadata).hex()})
    return {"tek": tek.hex(), "rpik": rpik.hex(), "aemk": aemk.hex(), "metadata": metadata.hex(), "intervals": rows}
