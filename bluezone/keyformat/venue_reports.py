"""CWA's encrypted check-in reports (``CheckInProtectedReport``): what a case uploads per check-in.

The server stores and publishes these without learning where the case was: each report names
the venue only by SHA-256 of its location id, and its times are AES-256-CBC encrypted under a
key derived from the location id itself, so only a phone that checked in there (and so knows
the id) can read them.  Keys and MAC as in cwa-app-android ``CheckInCryptography.kt``:

* encryption key = SHA-256(``"CWA-ENCRYPTION-KEY"`` || location id), IV 16 random bytes,
  PKCS#7 padding;
* MAC = HMAC-SHA256(SHA-256(``"CWA-MAC-KEY"`` || location id), IV || ciphertext).

Times are counted in 10-minute intervals, the GAEN ENIntervalNumber.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from google.protobuf.message import DecodeError

import bluezone.keyformat.presence_pb2 as pb
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.errors import VenueError

ENCRYPTION_KEY_PREFIX = b"CWA-ENCRYPTION-KEY"
MAC_KEY_PREFIX = b"CWA-MAC-KEY"
IV_BYTES = 16
HASH_BYTES = 32
#: A CheckInRecord is at most ~18 bytes, so its ciphertext is one or two AES blocks.
MAX_RECORD_CIPHERTEXT = 64
#: CWA's valid transmission risk levels (``CheckInWarningMatcher.isValid``).
RISK_LEVELS = range(1, 9)
#: Check-ins one upload carries per UTC day, at most: the key server refuses more (a leaked or false code
#: warns at most this many venues a day) and ``bluezone upload`` sends a day's longest this many.
MAX_CHECKINS_PER_DAY = 12
INTERVALS_PER_DAY = DAY_SECONDS // INTERVAL_SECONDS


def location_id_hash(location_id: bytes) -> bytes:
    """SHA-256 of a location id: all that a published warning says about the venue."""
    return hashlib.sha256(location_id).digest()


def encryption_key(location_id: bytes) -> bytes:
    """The AES key of a venue's check-in reports, from its location id (CWA)."""
    return hashlib.sha256(ENCRYPTION_KEY_PREFIX + location_id).digest()


def mac_key(location_id: bytes) -> bytes:
    """The HMAC key of a venue's check-in reports, from its location id (CWA)."""
    return hashlib.sha256(MAC_KEY_PREFIX + location_id).digest()


def report_mac(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """HMAC-SHA256 over IV and ciphertext of a check-in report."""
    return hmac.new(key, iv + ciphertext, hashlib.sha256).digest()


@dataclass(frozen=True)
class VenueWarning:
    """A decrypted report: a case was at the venue with this id hash for these intervals."""

    location_id_hash: bytes
    start_interval: int
    period: int  # intervals
    transmission_risk: int

    @property
    def start(self) -> float:
        return float(self.start_interval * INTERVAL_SECONDS)

    @property
    def end(self) -> float:
        return float((self.start_interval + self.period) * INTERVAL_SECONDS)

    def check(self) -> None:
        """Raise :class:`VenueError` unless CWA would accept it (period > 0, risk 1-8, one day at most)."""
        if self.start_interval < 0 or not 0 < self.period <= INTERVALS_PER_DAY:
            raise VenueError(f"a venue report covers {self.period} intervals; 1 to {INTERVALS_PER_DAY} are allowed")
        if self.transmission_risk not in RISK_LEVELS:
            raise VenueError(f"a venue report's transmission risk {self.transmission_risk} is not 1-8")


@dataclass(frozen=True)
class ProtectedReport:
    """One ``CheckInProtectedReport``: opaque to everyone who does not know the venue."""

    location_id_hash: bytes
    iv: bytes
    ciphertext: bytes
    mac: bytes

    @classmethod
    def seal(
        cls, location_id: bytes, start_interval: int, period: int, transmission_risk: int, iv: bytes | None = None
    ) -> ProtectedReport:
        """Encrypt one check-in (``iv`` is random unless given, for test vectors)."""
        VenueWarning(location_id_hash(location_id), start_interval, period, transmission_risk).check()
        record = pb.CheckInRecord(
            start_interval_number=start_interval, period=period, transmission_risk_level=transmission_risk
        ).SerializeToString()
        iv = os.urandom(IV_BYTES) if iv is None else bytes(iv)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(record) + padder.finalize()
        encryptor = Cipher(algorithms.AES(encryption_key(location_id)), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        return cls(location_id_hash(location_id), iv, ciphertext, report_mac(mac_key(location_id), iv, ciphertext))

    @classmethod
    def fake(cls, rng_bytes: bytes | None = None) -> ProtectedReport:
        """A report for no venue, indistinguishable from a real one without the venue's id."""
        raw = os.urandom(HASH_BYTES + IV_BYTES + 16 + HASH_BYTES) if rng_bytes is None else rng_bytes
        return cls(raw[:32], raw[32:48], raw[48:64], raw[64:96])

    def open(self, location_id: bytes) -> VenueWarning:
        """Decrypt with the venue's id; :class:`VenueError` if it is not this venue's or was altered."""
        if location_id_hash(location_id) != self.location_id_hash:
            raise VenueError("the report is for another venue")
        if not hmac.compare_digest(report_mac(mac_key(location_id), self.iv, self.ciphertext), self.mac):
            raise VenueError("the report's MAC does not match: altered or corrupt")
        decryptor = Cipher(algorithms.AES(encryption_key(location_id)), modes.CBC(self.iv)).decryptor()
        try:
            padded = decryptor.update(self.ciphertext) + decryptor.finalize()
            unpadder = padding.PKCS7(128).unpadder()
            record = pb.CheckInRecord()
            record.ParseFromString(unpadder.update(padded) + unpadder.finalize())
        except (ValueError, DecodeError) as exc:
            raise VenueError(f"the report does not decrypt to a check-in record ({exc})") from None
        warning = VenueWarning(
            self.location_id_hash,
            int(record.start_interval_number),
            int(record.period),
            int(record.transmission_risk_level),
        )
        warning.check()
        return warning

    # --- wire form ----------------------------------------------------------------------------

    def to_message(self) -> pb.CheckInProtectedReport:
        return pb.CheckInProtectedReport(
            location_id_hash=self.location_id_hash, iv=self.iv, encrypted_check_in_record=self.ciphertext, mac=self.mac
        )

    def __bytes__(self) -> bytes:
        return self.to_message().SerializeToString()

    @classmethod
    def from_message(cls, message: pb.CheckInProtectedReport) -> ProtectedReport:
        report = cls(
            bytes(message.location_id_hash), bytes(message.iv), bytes(message.encrypted_check_in_record), bytes(message.mac)
        )
        report.check_shape()
        return report

    @classmethod
    def from_bytes(cls, data: bytes) -> ProtectedReport:
        message = pb.CheckInProtectedReport()
        try:
            message.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise VenueError(f"not a CheckInProtectedReport ({exc})") from None
        return cls.from_message(message)

    def check_shape(self) -> None:
        """Field sizes a server can check without the venue's id (as cwa-server validates)."""
        if len(self.location_id_hash) != HASH_BYTES:
            raise VenueError(f"a venue report's location hash has {len(self.location_id_hash)} bytes, not 32")
        if len(self.iv) != IV_BYTES:
            raise VenueError(f"a venue report's IV has {len(self.iv)} bytes, not {IV_BYTES}")
        if not self.ciphertext or len(self.ciphertext) % 16 or len(self.ciphertext) > MAX_RECORD_CIPHERTEXT:
            raise VenueError(f"a venue report's record has {len(self.ciphertext)} bytes (16, 32, 48 or 64 expected)")
        if len(self.mac) != HASH_BYTES:
            raise VenueError(f"a venue report's MAC has {len(self.mac)} bytes, not 32")
