"""bluezone's compiled helper: the RPIs of many GAEN daily keys in one call.

A plain shared library (``_rpi.so``, from ``rpi.c``) called through ctypes, one call per
batch of keys, so one wheel per architecture serves every Python 3 (no Python ABI). It
uses OpenSSL 3's libcrypto, opened at run time; :func:`load` raises :class:`OSError` when
it cannot be used, and bluezone then derives in Python (``bluezone.crypto.derivation``).
"""

from __future__ import annotations

import ctypes
import functools
import operator
from pathlib import Path

import numpy as np

__all__ = ["load", "openssl_version", "rpis_into", "rpis_passing", "set_bits"]
__version__ = "0.2.0"

#: Most RPIs per key ``rpis_passing`` derives (a key's RPIs are tested in a buffer on the stack).
PASSING_MAX_COUNT = 4096

_LIBRARY = Path(__file__).with_name("_rpi.so")


@functools.cache
def load() -> ctypes.CDLL:
    """The helper library, initialised (libcrypto opened, algorithms fetched once).

    Raises OSError if the library or OpenSSL 3 cannot be loaded.  ctypes releases the GIL
    during each call, so threads may derive in parallel.
    """
    lib = ctypes.CDLL(str(_LIBRARY))
    lib.bz_init.restype = ctypes.c_int
    lib.bz_error.restype = ctypes.c_char_p
    lib.bz_openssl_version.restype = ctypes.c_char_p
    lib.bz_rpis.restype = ctypes.c_int
    lib.bz_rpis.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p]
    lib.bz_rpis_passing.restype = ctypes.c_int64
    lib.bz_rpis_passing.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32,
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.bz_set_bits.restype = ctypes.c_int
    lib.bz_set_bits.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p]
    if lib.bz_init() != 0:
        raise OSError(f"bluezone_native: {lib.bz_error().decode()}")
    return lib


def openssl_version() -> str:
    """The version of the OpenSSL that the helper uses, e.g. ``OpenSSL 3.0.19 27 Jan 2026``."""
    return str(load().bz_openssl_version().decode())


def rpis_into(teks: np.ndarray, starts: np.ndarray, count: int, out: np.ndarray) -> None:
    """Write the ``count`` RPIs of each daily key into ``out``.

    ``teks`` is uint8 (n, 16), ``starts`` uint32 (n,) (first interval of each key, the
    interval wrapping modulo 2**32 as in the spec), ``out`` a C-contiguous writable uint8
    buffer of at least ``n * count * 16`` bytes: ``out[(k * count + i) * 16 :][:16]`` becomes
    key k's RPI for interval ``starts[k] + i``.
    """
    count = operator.index(count)  # a numpy integer would wrap in ``n * count * 16`` below
    if teks.dtype != np.uint8 or teks.ndim != 2 or teks.shape[1] != 16 or not teks.flags.c_contiguous:
        raise ValueError("teks must be a C-contiguous uint8 array of shape (n, 16)")
    n = teks.shape[0]
    if starts.dtype != np.uint32 or starts.shape != (n,) or not starts.flags.c_contiguous:
        raise ValueError("starts must be a C-contiguous uint32 array with one entry per key")
    if not 1 <= count <= 1 << 24:
        raise ValueError("count must be between 1 and 2**24")
    if out.dtype != np.uint8 or not out.flags.c_contiguous or not out.flags.writeable or out.size < n * count * 16:
        raise ValueError(f"out must be a writable C-contiguous uint8 buffer of at least {n * count * 16} bytes")
    if n and load().bz_rpis(teks.ctypes.data, starts.ctypes.data, n, count, out.ctypes.data) != 0:
        raise OSError("bluezone_native: OpenSSL failed while deriving RPIs")


def rpis_passing(
    teks: np.ndarray, starts: np.ndarray, count: int, table1: np.ndarray, bits1: int, table2: np.ndarray, bits2: int
) -> tuple[np.ndarray, np.ndarray]:
    """The RPIs (as ``rpis_into`` derives them) that pass a pre-filter of two bit sets, and where.

    An RPI passes when bit ``w0 & (2**bits1 - 1)`` of ``table1`` and bit ``w1 & (2**bits2 - 1)`` of
    ``table2`` are set, w0 and w1 its first two little-endian 32-bit words (bit ``v`` of a table is
    bit ``v & 7`` of byte ``v >> 3``; a table holds at least ``2**bits`` bits).  Returns (flat
    positions ``k * count + i`` int64, RPIs uint8 (m, 16)) in order.  Each key's RPIs are tested
    while still in cache and the others never written out.  ``count`` is at most ``PASSING_MAX_COUNT``.
    """
    count = operator.index(count)
    bits1, bits2 = operator.index(bits1), operator.index(bits2)
    if teks.dtype != np.uint8 or teks.ndim != 2 or teks.shape[1] != 16 or not teks.flags.c_contiguous:
        raise ValueError("teks must be a C-contiguous uint8 array of shape (n, 16)")
    n = teks.shape[0]
    if starts.dtype != np.uint32 or starts.shape != (n,) or not starts.flags.c_contiguous:
        raise ValueError("starts must be a C-contiguous uint32 array with one entry per key")
    if not 1 <= count <= PASSING_MAX_COUNT:
        raise ValueError(f"count must be between 1 and {PASSING_MAX_COUNT}")
    for table, bits in ((table1, bits1), (table2, bits2)):
        if not 3 <= bits <= 31:
            raise ValueError("bits must be between 3 and 31")
        if table.dtype != np.uint8 or not table.flags.c_contiguous or table.size * 8 < 1 << bits:
            raise ValueError(f"a table for {bits} bits must be a C-contiguous uint8 array of at least {1 << bits >> 3} bytes")
    positions = np.empty(n * count, np.int64)
    rpis = np.empty((n * count, 16), np.uint8)
    found = 0
    if n:
        found = load().bz_rpis_passing(
            teks.ctypes.data, starts.ctypes.data, n, count,
            table1.ctypes.data, bits1, table2.ctypes.data, bits2, positions.ctypes.data, rpis.ctypes.data,
        )
        if found < 0:
            raise OSError("bluezone_native: OpenSSL failed while deriving RPIs")
    return positions[:found].copy(), rpis[:found].copy()


def set_bits(values: np.ndarray, bits: int, table: np.ndarray) -> None:
    """Set bit ``v & (2**bits - 1)`` of ``table`` for each ``v`` in ``values`` (bit ``b`` is bit
    ``b & 7`` of byte ``b >> 3``; ``bits`` 3..31).  ``values`` is 1-D uint32 with any positive
    stride (a column of a 2-D array is read in place); ``table`` a writable C-contiguous uint8 array
    of at least ``2**bits / 8`` bytes.  What numpy would do by sorting, in one pass.
    """
    bits = operator.index(bits)
    if values.dtype != np.uint32 or values.ndim != 1 or (len(values) > 1 and (values.strides[0] <= 0 or values.strides[0] % 4)):
        raise ValueError("values must be a 1-D uint32 array with a positive stride")
    if not 3 <= bits <= 31:
        raise ValueError("bits must be between 3 and 31")
    if table.dtype != np.uint8 or not table.flags.c_contiguous or not table.flags.writeable or table.size * 8 < 1 << bits:
        raise ValueError(f"table must be a writable C-contiguous uint8 array of at least {1 << bits >> 3} bytes")
    if len(values):
        stride = values.strides[0] // 4 if len(values) > 1 else 1
        if load().bz_set_bits(values.ctypes.data, len(values), stride, bits, table.ctypes.data) != 0:
            raise OSError("bluezone_native: bz_set_bits refused its arguments")
