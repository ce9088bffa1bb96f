"""Daily keys (Temporary Exposure Keys) and the keys derived from them (GAEN v1.2)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError

KEY_LENGTH = 16


def _hkdf(key: bytes, info: bytes) -> bytes:
    # cryptography imported here: KEY_LENGTH and DailyKey (a check's key file reader) need none of it
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_LENGTH, salt=None, info=info).derive(key)


def rpi_key(tek: bytes) -> bytes:
    """RPIK = HKDF-SHA256(TEK, salt=None, info="EN-RPIK", 16)."""
    return _hkdf(tek, b"EN-RPIK")


def aem_key(tek: bytes) -> bytes:
    """AEMK = HKDF-SHA256(TEK, salt=None, info="EN-AEMK", 16)."""
    return _hkdf(tek, b"EN-AEMK")


@dataclass(frozen=True)
class DailyKey:
    """A Temporary Exposure Key and the intervals it covers.

    ``rolling_start`` is an ENIntervalNumber; ``rolling_period`` counts 10-minute intervals
    (144 for a whole day; shorter when a key was replaced early, as GAEN allows).
    """

    key: bytes
    rolling_start: int
    rolling_period: int = ROLLING_PERIOD

    def __post_init__(self) -> None:
        if len(self.key) != KEY_LENGTH:
            raise InputError(f"a daily key is {KEY_LENGTH} bytes, got {len(self.key)}")
        if not 1 <= self.rolling_period <= ROLLING_PERIOD:
            raise InputError(f"rolling period must be 1-{ROLLING_PERIOD}, got {self.rolling_period}")
        if self.rolling_start < 0:
            raise InputError(f"rolling start must be >= 0, got {self.rolling_start}")

    @classmethod
    def generate(cls, unix_seconds: float) -> DailyKey:
        """A fresh key from the OS CSPRNG for the UTC day holding ``unix_seconds``."""
        return cls(os.urandom(KEY_LENGTH), rolling_start(unix_seconds))

    @property
    def end(self) -> int:
        """First interval after this key's validity."""
        return self.rolling_start + self.rolling_period

    def covers(self, interval: int) -> bool:
        return self.rolling_start <= interval < self.end

    def __repr__(self) -> str:  # never print key material by accident
        return f"DailyKey(rolling_start={self.rolling_start}, rolling_period={self.rolling_period})"
