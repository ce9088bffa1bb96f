"""The 0xFD6F service data of a GAEN advertisement: 16-byte RPI then 4-byte AEM.

Metadata (before AEM encryption) is: version byte (major in bits 7-6, minor in bits 5-4;
0x40 = v1.0), TX power as a signed byte in dBm, two reserved bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bluezone.crypto.derivation import AEM_LENGTH, RPI_LENGTH
from bluezone.errors import PayloadError

SERVICE_UUID16 = 0xFD6F
SERVICE_UUID = "0000fd6f-0000-1000-8000-00805f9b34fb"
SERVICE_DATA_LENGTH = RPI_LENGTH + AEM_LENGTH
VERSION_1_0 = 0x40
TX_POWER_MIN, TX_POWER_MAX = -50, 20  # Google rejects decrypted TX power outside this range


@dataclass(frozen=True)
class ServiceData:
    """What one GAEN advertisement carries."""

    rpi: bytes
    aem: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> ServiceData:
        if len(data) != SERVICE_DATA_LENGTH:
            raise PayloadError(f"0xFD6F service data is {SERVICE_DATA_LENGTH} bytes, got {len(data)}")
        return cls(bytes(data[:RPI_LENGTH]), bytes(data[RPI_LENGTH:]))

    def __bytes__(self) -> bytes:
        return self.rpi + self.aem


@dataclass(frozen=True)
class Metadata:
    """The plaintext behind an AEM."""

    tx_power: int
    version: int = VERSION_1_0

    @classmethod
    def from_bytes(cls, data: bytes) -> Metadata:
        if len(data) != AEM_LENGTH:
            raise PayloadError(f"metadata is {AEM_LENGTH} bytes, got {len(data)}")
        tx = data[1] - 256 if data[1] > 127 else data[1]
        return cls(tx_power=tx, version=data[0])

    def __bytes__(self) -> bytes:
        if not -128 <= self.tx_power <= 127:
            raise PayloadError(f"TX power must fit a signed byte, got {self.tx_power}")
        return bytes([self.version & 0xFF, self.tx_power & 0xFF, 0, 0])

    @property
    def major_version(self) -> int:
        return self.version >> 6

    @property
    def plausible(self) -> bool:
        """Google ignores metadata of an unknown major version or a TX power outside -50..+20 dBm."""
        return self.major_version == 1 and TX_POWER_MIN <= self.tx_power <= TX_POWER_MAX


def metadata_fields(metadata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TX power in dBm, plausible) of many decrypted metadata rows, uint8 (m, 4): ``Metadata`` in bulk."""
    metadata = np.asarray(metadata, np.uint8).reshape(-1, 4)
    tx_power = metadata[:, 1].view(np.int8).astype(np.int16)
    plausible = ((metadata[:, 0] >> 6) == 1) & (tx_power >= TX_POWER_MIN) & (tx_power <= TX_POWER_MAX)
    return tx_power, plausible
