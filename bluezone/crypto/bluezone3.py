"""Bluezone v3 (Vietnam, 2020) IDs: pure functions, bytes in, bytes or numpy arrays out, no I/O.

Read from BluezoneGlobal/react-native-bluetooth-scan (``bluezoneid/BluezoneIdGenerator``,
``BluezoneIdTrace.checkContactF``), so that bluezone can hear, match and send what those
phones did:

- the daily key of UTC day D is SHA-256 applied (D - day0) times to the 32-byte base key;
- sub-key s0 = SHA-256(daily key || ASCII ``bluzonesubkey`` (sic)), s(i+1) = SHA-256(s(i));
- the ID of slot i (96 slots of 15 minutes per UTC day by default; the app could change the
  count, its F0 lists say it as ``max``) is 12 bytes of s(i): offsets 0, 4, 8, 12, then
  16, 18, ..., 30;
- the advert lists the 16-bit service UUID 0x4E56 and carries the ID as manufacturer data of
  company 0x22B5 (the 12 ID bytes follow the company ID; no service data, no TX power field).

A SHA-256 chain is sequential, so batches loop over slots and hash every key's link in one
list comprehension (C speed per hash); the ID layout is numpy fancy indexing over all keys.
"""

from __future__ import annotations

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import InputError, PayloadError

#: The advert: 16-bit service UUID 0x4E56 ("VN") and manufacturer data of company 0x22B5.
SERVICE_UUID16 = 0x4E56
SERVICE_UUID = "00004e56-0000-1000-8000-00805f9b34fb"
COMPANY_ID = 0x22B5
ID_LENGTH = 12
DAILY_KEY_LENGTH = 32
SLOTS_PER_DAY = 96
#: What the app's F0 lists may say for ``max`` (it refuses 1 or fewer; a slot of a minute is plenty).
MAX_SLOTS_PER_DAY = 1440
SUBKEY_SALT = b"bluzonesubkey"  # sic: the app's spelling
ID_OFFSETS = np.array([0, 4, 8, 12, 16, 18, 20, 22, 24, 26, 28, 30])
DAY_MS = DAY_SECONDS * 1000


def _sha256(data: bytes) -> bytes:
    import hashlib  # here: the store's purge imports this module, and a check of GAEN keys hashes nothing

    return hashlib.sha256(data).digest()


def _check_key(key: bytes) -> bytes:
    if len(key) != DAILY_KEY_LENGTH:
        raise InputError(f"a Bluezone v3 daily key is {DAILY_KEY_LENGTH} bytes, got {len(key)}")
    return bytes(key)


def check_slots_per_day(slots: int) -> int:
    """The number of IDs per day, checked: 2 to 1440 (the app refused fewer than 2)."""
    if not 2 <= int(slots) <= MAX_SLOTS_PER_DAY:
        raise InputError(f"slots per day must be 2-{MAX_SLOTS_PER_DAY}, got {slots}")
    return int(slots)


def slot_ms(slots_per_day: int = SLOTS_PER_DAY) -> int:
    """Length of one slot in milliseconds, rounded down as the app's Java integer division does."""
    return DAY_MS // check_slots_per_day(slots_per_day)


def next_daily_key(key: bytes) -> bytes:
    """The daily key of the following UTC day."""
    return _sha256(_check_key(key))


def daily_key(base_key: bytes, days: int) -> bytes:
    """The daily key ``days`` UTC days after the day of ``base_key`` (``days`` >= 0)."""
    if days < 0:
        raise InputError(f"a Bluezone v3 key chain only goes forward, got {days} days")
    key = _check_key(base_key)
    for _ in range(days):
        key = _sha256(key)
    return key


def id_from_subkey(subkey: bytes) -> bytes:
    """The 12-byte ID inside one 32-byte sub-key."""
    return bytes(np.frombuffer(subkey, np.uint8)[ID_OFFSETS])


def ids_for_day(key: bytes, slots: int = SLOTS_PER_DAY) -> np.ndarray:
    """The IDs of one daily key, uint8 of shape (slots, 12); row i is slot i."""
    return ids_for_keys([key], slots)[0]


def ids_for_keys(keys: list[bytes] | np.ndarray, slots: int = SLOTS_PER_DAY) -> np.ndarray:
    """IDs of many daily keys at once: uint8 (n, slots, 12).

    ``keys`` is a list of 32-byte strings or a uint8 array (n, 32).  ``slots`` may exceed a
    day's count when a caller wants the chain longer; the app stops at its ``max``.
    """
    if slots < 1:
        raise InputError(f"slots must be >= 1, got {slots}")
    if isinstance(keys, np.ndarray):
        if keys.ndim != 2 or keys.shape[1] != DAILY_KEY_LENGTH:
            raise InputError(f"daily keys must be an (n, {DAILY_KEY_LENGTH}) array, got shape {keys.shape}")
        raw = [bytes(row) for row in np.ascontiguousarray(keys, np.uint8)]
    else:
        raw = [_check_key(k) for k in keys]
    n = len(raw)
    digests = np.empty((slots, n, DAILY_KEY_LENGTH), np.uint8)
    if n == 0:
        return np.empty((0, slots, ID_LENGTH), np.uint8)
    import hashlib

    sha = hashlib.sha256
    link = [sha(k + SUBKEY_SALT).digest() for k in raw]
    for i in range(slots):
        digests[i] = np.frombuffer(b"".join(link), np.uint8).reshape(n, DAILY_KEY_LENGTH)
        if i + 1 < slots:
            link = [sha(s).digest() for s in link]
    return np.ascontiguousarray(digests[:, :, ID_OFFSETS].transpose(1, 0, 2))


def slot_of(unix_seconds: float, slots_per_day: int = SLOTS_PER_DAY) -> int:
    """The slot a phone advertises in at ``unix_seconds`` (UTC grid, as the app computes it)."""
    ms = int(np.floor(unix_seconds * 1000))
    # the last few ms of a day whose length the count does not divide belong to the last slot
    return min((ms % DAY_MS) // slot_ms(slots_per_day), slots_per_day - 1)


def id_at(base_key: bytes, base_day: int, unix_seconds: float, slots_per_day: int = SLOTS_PER_DAY) -> bytes:
    """The ID a phone with ``base_key`` (made on UTC day number ``base_day``) sends at a time."""
    day = int(unix_seconds // DAY_SECONDS)
    key = daily_key(base_key, day - base_day)
    slot = slot_of(unix_seconds, slots_per_day)
    return ids_for_keys([key], slot + 1)[0, slot].tobytes()


def parse_advert_id(manufacturer_data: bytes) -> bytes:
    """The ID in the manufacturer data of company 0x22B5 (after the company ID); exactly 12 bytes."""
    if len(manufacturer_data) != ID_LENGTH:
        raise PayloadError(f"a Bluezone v3 ID is {ID_LENGTH} bytes, got {len(manufacturer_data)}")
    return bytes(manufacturer_data)
