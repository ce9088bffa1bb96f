"""Rolling Proximity Identifiers and Associated Encrypted Metadata, one at a time or in batches.

RPI_i = AES-128-ECB(RPIK, "EN-RPI" || 0x000000000000 || LE32(ENIntervalNumber_i))
AEM   = AES-128-CTR(AEMK, IV=RPI, metadata)

The batched form derives every RPI of many keys with one ECB call per key over a
preallocated buffer: the padded blocks of all keys differ only in their interval bytes,
so they are built for a whole chunk of keys at once with numpy.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bluezone.crypto.intervals import ROLLING_PERIOD
from bluezone.crypto.keys import aem_key, rpi_key

RPI_LENGTH = 16
AEM_LENGTH = 4
_PREFIX = b"EN-RPI" + bytes(6)
_CHUNK = 2048  # keys per numpy chunk: bounded memory (2048*144*16 B = 4.7 MB)


def padded_data(interval: int) -> bytes:
    return _PREFIX + (interval & 0xFFFFFFFF).to_bytes(4, "little")


def rpi(rpik: bytes, interval: int) -> bytes:
    """The RPI broadcast during ``interval`` by the key whose RPIK is ``rpik``."""
    enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
    return enc.update(padded_data(interval)) + enc.finalize()


def aem(aemk: bytes, rpi_value: bytes, metadata: bytes) -> bytes:
    """Encrypt (or, being CTR, decrypt) the 4 metadata bytes sent beside ``rpi_value``."""
    ctx = Cipher(algorithms.AES(aemk), modes.CTR(rpi_value)).encryptor()
    return ctx.update(metadata) + ctx.finalize()


def rpis_for_key(tek: bytes, start: int, count: int = ROLLING_PERIOD) -> np.ndarray:
    """All ``count`` RPIs of one daily key from interval ``start``: uint8 array (count, 16)."""
    return rpis_for_keys(np.frombuffer(tek, np.uint8).reshape(1, 16), np.array([start]), count)[0]


def _padded_blocks(starts: np.ndarray, count: int) -> np.ndarray:
    """Plaintext blocks for each key's ``count`` intervals: uint8 (n, count, 16)."""
    n = len(starts)
    blocks = np.zeros((n, count, 16), np.uint8)
    blocks[:, :, :12] = np.frombuffer(_PREFIX, np.uint8)
    intervals = (starts.astype(np.uint64)[:, None] + np.arange(count, dtype=np.uint64)) & 0xFFFFFFFF
    blocks[:, :, 12:16] = intervals.astype("<u4").view(np.uint8).reshape(n, count, 4)
    return blocks


def rpis_for_keys(teks: np.ndarray, starts: np.ndarray, count: int = ROLLING_PERIOD) -> np.ndarray:
    """RPIs of many daily keys at once.

    ``teks`` is uint8 (n, 16), ``starts`` the first interval of each key.  Returns uint8
    (n, count, 16) where ``[k, i]`` is key k's RPI for interval ``starts[k] + i``.
    """
    teks = np.ascontiguousarray(teks, dtype=np.uint8).reshape(-1, 16)
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if len(teks) != len(starts):
        raise ValueError("teks and starts must have the same length")
    row_bytes = count * 16
    # update_into wants block_size - 1 spare bytes after the output; keep them at the end.
    buffer = np.empty(len(teks) * row_bytes + 15, np.uint8)
    for lo in range(0, len(teks), _CHUNK):
        hi = min(lo + _CHUNK, len(teks))
        flat_in = _padded_blocks(starts[lo:hi], count).reshape(-1)
        for k in range(hi - lo):
            enc = Cipher(algorithms.AES(rpi_key(teks[lo + k].tobytes())), modes.ECB()).encryptor()
            a, b = k * row_bytes, (lo + k) * row_bytes
            enc.update_into(flat_in[a : a + row_bytes], buffer[b : b + row_bytes + 15])
    return buffer[: len(teks) * row_bytes].reshape(len(teks), count, 16)


def decrypt_aem(tek: bytes, rpi_value: bytes, aem_value: bytes) -> bytes:
    """Metadata bytes from a received AEM, given the daily key that made the RPI."""
    return aem(aem_key(tek), rpi_value, aem_value)
