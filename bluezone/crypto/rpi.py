"""Rolling Proximity Identifiers and Associated Encrypted Metadata, one at a time or in batches.

RPI_i = AES-128-ECB(RPIK, "EN-RPI" || 0x000000000000 || LE32(ENIntervalNumber_i))
AEM   = AES-128-CTR(AEMK, IV=RPI, metadata)

The batched form derives every RPI of many keys with one ECB call per key over a
preallocated buffer: the padded blocks of all keys differ only in their interval bytes,
so they are built for a whole chunk of keys at once with numpy.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bluezone.crypto.intervals import ROLLING_PERIOD
from bluezone.crypto.keys import aem_key

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
    """Plaintext blocks for each start's ``count`` intervals: uint8 (n, count, 16)."""
    n = len(starts)
    blocks = np.zeros((n, count, 16), np.uint8)
    blocks[:, :, :12] = np.frombuffer(_PREFIX, np.uint8)
    intervals = np.bitwise_and(starts.astype(np.uint64)[:, None] + np.arange(count, dtype=np.uint64), np.uint64(0xFFFFFFFF))
    blocks[:, :, 12:16] = intervals.astype("<u4").view(np.uint8).reshape(n, count, 4)
    return blocks


def rpis_for_keys(
    teks: np.ndarray,
    starts: np.ndarray,
    count: int = ROLLING_PERIOD,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """RPIs of many daily keys at once.

    ``teks`` is uint8 (n, 16), ``starts`` the first interval of each key.  Returns uint8
    (n, count, 16) where ``[k, i]`` is key k's RPI for interval ``starts[k] + i``.
    ``out``, if given, is a C-contiguous uint8 buffer of at least ``n * count * 16 + 15``
    bytes that is reused instead of allocating (the matcher passes one per chunk).

    Per key the cost is one HKDF and one ECB call over all ``count`` blocks; the plaintext
    is shared between keys with the same start (most keys start at UTC midnight), so
    nothing is built per key in Python.
    """
    teks = np.ascontiguousarray(teks, dtype=np.uint8).reshape(-1, 16)
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    n = len(teks)
    if n != len(starts):
        raise ValueError("teks and starts must have the same length")
    row_bytes = count * 16
    # update_into wants block_size - 1 spare bytes after the output; keep them at the end.
    needed = n * row_bytes + 15
    if out is None:
        buffer = np.empty(needed, np.uint8)
    else:
        buffer = out.reshape(-1)
        if buffer.dtype != np.uint8 or not buffer.flags.c_contiguous or len(buffer) < needed:
            raise ValueError(f"out must be a contiguous uint8 buffer of at least {needed} bytes")
    out_view = memoryview(buffer)  # type: ignore[arg-type]  # numpy arrays are buffers
    tek_bytes = teks.tobytes()
    sha256, ecb, aes, cipher, hkdf = hashes.SHA256(), modes.ECB(), algorithms.AES, Cipher, HKDF
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        unique_starts, which = np.unique(starts[lo:hi], return_inverse=True)
        plain = memoryview(_padded_blocks(unique_starts, count).reshape(-1))  # type: ignore[arg-type]
        # Slices made up front in comprehensions: the loop below is the hot path (~5 us/key,
        # nearly all of it HKDF and Cipher set-up inside cryptography).
        plains = [plain[a : a + row_bytes] for a in range(0, len(unique_starts) * row_bytes, row_bytes)]
        outs = [out_view[b : b + row_bytes + 15] for b in range(lo * row_bytes, hi * row_bytes, row_bytes)]
        teks_here = [tek_bytes[i : i + 16] for i in range(lo * 16, hi * 16, 16)]
        for tek, u, dest in zip(teks_here, which.tolist(), outs):
            rpik = hkdf(sha256, 16, None, b"EN-RPIK").derive(tek)
            cipher(aes(rpik), ecb).encryptor().update_into(plains[u], dest)
    return buffer[: n * row_bytes].reshape(n, count, 16)


def decrypt_aem(tek: bytes, rpi_value: bytes, aem_value: bytes) -> bytes:
    """Metadata bytes from a received AEM, given the daily key that made the RPI."""
    return aem(aem_key(tek), rpi_value, aem_value)
