"""Rolling Proximity Identifiers and Associated Encrypted Metadata, one at a time or in batches.

RPI_i = AES-128-ECB(RPIK, "EN-RPI" || 0x000000000000 || LE32(ENIntervalNumber_i))
AEM   = AES-128-CTR(AEMK, IV=RPI, metadata)

The batched form derives every RPI of many keys with one ECB call per key over a
preallocated buffer: the padded blocks of all keys differ only in their interval bytes,
so they are built for a whole chunk of keys at once with numpy.  Per key, what costs is
Python-level set-up, not AES (docs/benchmarks.md). With the optional compiled helper
(``bluezone-native``, the ``bluezone[fast]`` extra) a whole batch is derived in one call
through OpenSSL; without it the batched path derives RPIKs with hashlib from precomputed
HMAC pad states and opens each ECB context without ``Cipher``'s argument checks (every path
checked against the plain one in tests). ``BLUEZONE_NATIVE=0`` turns the helper off.
``rpis_passing`` gives only the RPIs that pass the matcher's pre-filter (a ``Sieve``): the
helper (0.2 on) tests each key's RPIs while they are in cache, the fallback with numpy.
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD
from bluezone.errors import ConfigError


log = logging.getLogger(__name__)

RPI_LENGTH = 16
AEM_LENGTH = 4
_PREFIX = b"EN-RPI" + bytes(6)
_CHUNK = 2048  # keys per numpy chunk: bounded memory (2048*144*16 B = 4.7 MB)
#: Most intervals a key the compiled helper derives (``bluezone_native.rpis_into``); more go to Python.
NATIVE_MAX_COUNT = 1 << 24
#: ``BLUEZONE_NATIVE`` values, as click reads a flag from the environment.
_OFF, _ON = {"0", "false", "f", "no", "n", "off"}, {"", "1", "true", "t", "yes", "y", "on"}


def padded_data(interval: int) -> bytes:
    """The 16-byte block an RPI encrypts: ``EN-RPI``, six zero bytes, the interval (little endian)."""
    return _PREFIX + (interval & 0xFFFFFFFF).to_bytes(4, "little")


def rpi(rpik: bytes, interval: int) -> bytes:
    """The RPI broadcast during ``interval`` by the key whose RPIK is ``rpik``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
    return enc.update(padded_data(interval)) + enc.finalize()


def aem(aemk: bytes, rpi_value: bytes, metadata: bytes) -> bytes:
    """Encrypt (or, being CTR, decrypt) the 4 metadata bytes sent beside ``rpi_value``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ctx = Cipher(algorithms.AES(aemk), modes.CTR(rpi_value)).encryptor()
    return ctx.update(metadata) + ctx.finalize()


def rpis_for_key(tek: bytes, start: int, count: int = ROLLING_PERIOD) -> np.ndarray:
    """All ``count`` RPIs of one daily key from interval ``start``: uint8 array (count, 16)."""
    return rpis_for_keys(np.frombuffer(tek, np.uint8).reshape(1, 16), np.array([start]), count)[0]


def _interval_count(count: int) -> int:
    """``count`` as a Python int of at least 0 (a numpy integer, a key's rolling_period, would wrap in
    the buffer sizes), or a ValueError that says so rather than numpy's or range()'s."""
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"count is how many intervals to derive: 0 or more, not {count}")
    return count


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
    (n, count, 16) where ``[k, i]`` is key k's RPI for interval ``starts[k] + i`` (count 0: empty;
    a negative count is a ValueError).
    ``out``, if given, is a C-contiguous uint8 buffer of at least ``n * count * 16 + 15``
    bytes that is reused instead of allocating (the matcher passes one per chunk).

    Per key the cost is one HKDF and one ECB call over all ``count`` blocks; the plaintext
    is shared between keys with the same start (most keys start at UTC midnight), so
    nothing is built per key in Python.
    """
    count = _interval_count(count)
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
    if count == 0:
        return buffer[:0].reshape(n, 0, 16)
    native = _native_rpis() if count <= NATIVE_MAX_COUNT else None
    if native is None:
        return _python_rpis(teks, starts, count, buffer)
    native(teks, (starts & 0xFFFFFFFF).astype(np.uint32), count, buffer)
    return buffer[: n * row_bytes].reshape(n, count, 16)


class Sieve(NamedTuple):
    """A pre-filter on RPIs by their low bits: an RPI passes when bit ``w0 & (2**bits1 - 1)`` of
    ``table1`` and bit ``w1 & (2**bits2 - 1)`` of ``table2`` are set, w0 and w1 its first two
    little-endian 32-bit words.  Tables are uint8 bit sets (bit v is bit ``v & 7`` of byte ``v >> 3``)
    of at least 2**bits bits.  The matcher builds one from the stored RPIs (no false negatives)."""

    table1: np.ndarray
    bits1: int
    table2: np.ndarray
    bits2: int

    def passing(self, rpis: np.ndarray) -> np.ndarray:
        """Flat positions of the RPIs (uint8 (..., 16), contiguous) that pass, in order."""
        quads = rpis.reshape(-1, 16).view("<u4")
        first = np.flatnonzero(_has_bits(self.table1, quads[:, 0] & ((1 << self.bits1) - 1)))
        return first[_has_bits(self.table2, quads[first, 1] & ((1 << self.bits2) - 1))]


def bit_set(values: np.ndarray, bits: int) -> np.ndarray:
    """A bit set of 2**bits bits (uint8; bit b is bit ``b & 7`` of byte ``b >> 3``) holding
    ``values & (2**bits - 1)`` (uint32, 1-D, any stride): a ``Sieve``'s table.  The compiled
    helper (0.2 on) sets the bits in one pass over the values as they lie; otherwise numpy sorts."""
    native = _native_set_bits()
    if native is None:
        return _sorted_bit_set(values & np.uint32((1 << bits) - 1), bits)
    table = np.zeros(1 << (bits - 3), np.uint8)
    native(values, bits, table)
    return table


def _sorted_bit_set(values: np.ndarray, bits: int) -> np.ndarray:
    """``bit_set`` of values already below 2**bits, by sorting them and OR-reducing runs of equal
    bytes (~10x faster than ufunc.at; sorted as uint32, which numpy sorts ~3x faster than int64)."""
    table = np.zeros(1 << (bits - 3), np.uint8)
    if len(values) == 0:
        return table
    values = np.sort(values)
    byte = values >> 3
    bit = np.left_shift(np.uint8(1), (values & 7).astype(np.uint8))
    runs = np.r_[0, np.flatnonzero(byte[1:] != byte[:-1]) + 1]
    table[byte[runs]] = np.bitwise_or.reduceat(bit, runs)
    return table


def _has_bits(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bool array: which ``values`` are set in the bit set ``table``."""
    return ((table[values >> 3] >> (values & 7).astype(np.uint8)) & 1).view(np.bool_)


def rpis_passing(
    teks: np.ndarray, starts: np.ndarray, count: int, sieve: Sieve, *, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(flat positions ``k * count + i`` int64, RPIs uint8 (m, 16)) of the RPIs of
    ``rpis_for_keys(teks, starts, count)`` that pass ``sieve``, in order.

    With the compiled helper each key's RPIs are tested while still in cache and the others are
    never written out (the matcher's hot loop: ~1 in 1,000 passes); otherwise they are derived
    into ``out`` (as ``rpis_for_keys``) and tested with numpy.
    """
    count = _interval_count(count)
    teks = np.ascontiguousarray(teks, dtype=np.uint8).reshape(-1, 16)
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    native = _native_passing() if 0 < count <= _PASSING_MAX_COUNT and len(teks) == len(starts) else None
    if native is None:
        rpis = rpis_for_keys(teks, starts, count, out=out).reshape(-1, 16)
        positions = sieve.passing(rpis)
        return positions, rpis[positions]
    return native(teks, (starts & 0xFFFFFFFF).astype(np.uint32), count, sieve.table1, sieve.bits1, sieve.table2, sieve.bits2)


def _python_rpis(teks: np.ndarray, starts: np.ndarray, count: int, buffer: np.ndarray) -> np.ndarray:
    """``rpis_for_keys`` in Python, into ``buffer`` (``n * count * 16 + 15`` bytes at least)."""
    n, row_bytes = len(teks), count * 16
    out_view = memoryview(buffer)  # type: ignore[arg-type]  # numpy arrays are buffers
    open_ecb = _ecb_opener()
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        unique_starts, which = np.unique(starts[lo:hi], return_inverse=True)
        plain = memoryview(_padded_blocks(unique_starts, count).reshape(-1))  # type: ignore[arg-type]
        # Slices made up front in comprehensions: the loop below is the hot path.
        plains = [plain[a : a + row_bytes] for a in range(0, len(unique_starts) * row_bytes, row_bytes)]
        outs = [out_view[b : b + row_bytes + 15] for b in range(lo * row_bytes, hi * row_bytes, row_bytes)]
        for rpik, u, dest in zip(rpi_keys(teks[lo:hi]), which.tolist(), outs):
            open_ecb(rpik).update_into(plains[u], dest)
    return buffer[: n * row_bytes].reshape(n, count, 16)


NativeRpis = Callable[[np.ndarray, np.ndarray, int, np.ndarray], None]
NativePassing = Callable[[np.ndarray, np.ndarray, int, np.ndarray, int, np.ndarray, int], tuple[np.ndarray, np.ndarray]]
_PASSING_MAX_COUNT = 4096  # bluezone_native.PASSING_MAX_COUNT


def derivation_path() -> str:
    """Which code derives RPIs in batches here, and why: for ``doctor`` and ``benchmark``."""
    return _select_native()[1]


def _native_passing() -> NativePassing | None:
    """``bluezone_native.rpis_passing`` if the helper derives here and has one that filters a probe
    as the Python path does (0.2 on); else None: numpy then filters what ``rpis_for_keys`` derives."""
    return _checked_passing(_native_rpis())


def _native_set_bits() -> Callable[[np.ndarray, int, np.ndarray], None] | None:
    """``bluezone_native.set_bits`` if the helper derives here and has one that fills a probe's
    table as numpy does (0.2 on); else None."""
    return _checked_set_bits(_native_rpis())


def _probed(name: str, rpis_into: NativeRpis | None, what: str, probe: Callable[[Any], bool]) -> Any:
    """``bluezone_native.<name>`` if it comes from the helper that derives here and ``probe`` finds it
    answering as the Python path does; else None (a broken or older build leaves numpy's way in use)."""
    module = sys.modules.get("bluezone_native")
    function = getattr(module, name, None)
    if rpis_into is None or function is None or getattr(module, "rpis_into", None) is not rpis_into:
        return None
    try:
        same = probe(function)
    except Exception as exc:  # noqa: BLE001 - a broken build: any failure leaves numpy's way in use
        log.debug("compiled %s unusable: %s", what, exc)
        return None
    if not same:
        log.debug("compiled %s differs from the Python path on a probe: not used", what)
        return None
    return function


def _set_bits_probe(set_bits: Callable[[np.ndarray, int, np.ndarray], None]) -> bool:
    # spread values (high bits the mask drops) read with a stride, as a column of RPI words
    values = (np.arange(0, 6000, 7, dtype=np.uint64) * 2654435761 % 2**32).astype(np.uint32).reshape(-1, 2)[:, 1]
    table = np.zeros(1 << 11, np.uint8)
    set_bits(values, 14, table)
    return bool(np.array_equal(table, _sorted_bit_set(values & np.uint32(0x3FFF), 14)))


def _passing_probe(passing: NativePassing) -> bool:
    rpis_into = _native_rpis()
    if rpis_into is None:
        return False
    teks, starts, rpis = _PROBE_TEKS, _PROBE_STARTS, _probe_rpis(rpis_into)  # checked against the Python path's
    words = rpis.view("<u4")
    tables = [np.zeros(1 << 13, np.uint8), np.zeros(1 << 13, np.uint8)]  # 16 bits each
    for table, column in zip(tables, (words[::3, 0], words[::4, 1])):
        values = column & 0xFFFF
        np.bitwise_or.at(table, values >> 3, np.left_shift(np.uint8(1), (values & 7).astype(np.uint8)))
    sieve = Sieve(tables[0], 16, tables[1], 16)
    expected = sieve.passing(rpis)
    positions, got = passing(teks, (starts & 0xFFFFFFFF).astype(np.uint32), ROLLING_PERIOD, *sieve)
    return len(expected) > 0 and bool(np.array_equal(positions, expected)) and bool(np.array_equal(got, rpis[expected]))


@functools.cache
def _checked_set_bits(rpis_into: NativeRpis | None) -> Callable[[np.ndarray, int, np.ndarray], None] | None:
    return _probed("set_bits", rpis_into, "bit sets", _set_bits_probe)  # type: ignore[no-any-return]


@functools.cache
def _checked_passing(rpis_into: NativeRpis | None) -> NativePassing | None:
    return _probed("rpis_passing", rpis_into, "pre-filter", _passing_probe)  # type: ignore[no-any-return]


def _native_rpis() -> NativeRpis | None:
    """``bluezone_native.rpis_into`` if the compiled helper is usable here, else None."""
    return _select_native()[0]


@functools.cache
def _select_native() -> tuple[NativeRpis | None, str]:
    """Load the compiled helper once, check it against the Python path, say what was chosen.

    It is optional: not installed, no OpenSSL 3, ``BLUEZONE_NATIVE=0`` (or false/no/off), or any
    difference from the Python path on a probe (never expected; it would be a broken build) all
    leave the Python path in use.  Logged at debug level; no key is ever logged.
    """
    setting = os.environ.get("BLUEZONE_NATIVE", "").strip()
    if setting.lower() not in _OFF | _ON:
        raise ConfigError(f"BLUEZONE_NATIVE={setting} is not understood: use 0 (off) or 1 (on, the default)")
    if setting.lower() in _OFF:
        chosen: tuple[NativeRpis | None, str] = (None, f"python (compiled helper turned off by BLUEZONE_NATIVE={setting})")
    else:
        chosen = _load_native()
    log.debug("batched RPI derivation: %s", chosen[1])
    return chosen


#: Three daily keys whose RPIs probe the compiled helper, intervals wrapping past 2**32 - 1 among them.
_PROBE_TEKS = np.frombuffer(bytes(range(48)), np.uint8).reshape(3, 16)
_PROBE_STARTS = np.array([2_940_000, 2**32 - 3, 7])
#: SHA-256 of their 3 x 144 RPIs as the Python path derives them (a test derives them again): the
#: helper is held to this digest rather than to a derivation here, so a check that uses it never
#: imports ``cryptography`` (~8 ms of every check's serial start, docs/benchmarks.md).
PROBE_RPIS_SHA256 = "ba9dde8596ef8a982fb80edf8d1a21d7d6aa07f05d15383e4d0d7dd14c532bf3"


def _probe_rpis(rpis_into: NativeRpis) -> np.ndarray:
    """The probe keys' RPIs by ``rpis_into``: uint8 (3 * 144, 16)."""
    got = np.zeros(len(_PROBE_TEKS) * ROLLING_PERIOD * 16, np.uint8)
    rpis_into(_PROBE_TEKS, (_PROBE_STARTS & 0xFFFFFFFF).astype(np.uint32), ROLLING_PERIOD, got)
    return got.reshape(-1, 16)


def _load_native() -> tuple[NativeRpis | None, str]:
    try:
        import bluezone_native
    except Exception as exc:  # noqa: BLE001 - a broken install raises whatever its code does (SyntaxError, ...)
        if isinstance(exc, ImportError) and exc.name == "bluezone_native":
            return None, "python (compiled helper bluezone-native not installed)"
        return None, f"python (compiled helper unusable: it failed to import: {type(exc).__name__}: {exc})"
    try:
        openssl = bluezone_native.openssl_version()
        got = _probe_rpis(bluezone_native.rpis_into)
    except Exception as exc:  # noqa: BLE001 - an optional helper of another version or a broken build: any failure
        return None, f"python (compiled helper unusable: {exc})"
    import hashlib

    if hashlib.sha256(got.tobytes()).hexdigest() != PROBE_RPIS_SHA256:
        return None, "python (compiled helper gave different RPIs from the Python path: not used)"
    return bluezone_native.rpis_into, f"native (bluezone-native {getattr(bluezone_native, '__version__', 'of no stated version')}, {openssl})"


@functools.cache
def _extract_pads() -> tuple[Any, Any]:
    """HKDF-SHA256 with no salt (RFC 5869: HashLen zero bytes) and a 16-byte output is two HMACs:
    PRK = HMAC(0^32, TEK), RPIK = HMAC(PRK, "EN-RPIK" || 0x01)[:16].  The first HMAC's key is
    constant, so its inner and outer pad states are hashed once, at the first use: hashlib (~3 ms)
    is then not among the imports a check makes before it starts reading its store."""
    import hashlib

    return hashlib.sha256(b"\x36" * 64), hashlib.sha256(b"\x5c" * 64)


def rpi_keys(teks: np.ndarray) -> list[bytes]:
    """RPIK = HKDF-SHA256(TEK, salt=None, info="EN-RPIK", 16) of each row of uint8 (n, 16)."""
    return _hkdf16(teks, b"EN-RPIK")


def aem_keys(teks: np.ndarray) -> list[bytes]:
    """AEMK = HKDF-SHA256(TEK, salt=None, info="EN-AEMK", 16) of each row of uint8 (n, 16)."""
    return _hkdf16(teks, b"EN-AEMK")


def _hkdf16(teks: np.ndarray, info: bytes) -> list[bytes]:
    """16 bytes of HKDF-SHA256 without salt of each row of ``teks`` (an ``info`` of 7 bytes)."""
    n = len(teks)
    data = np.ascontiguousarray(teks, np.uint8).tobytes()
    import hashlib

    inner_pad, outer_pad = _extract_pads()
    inner_copy, outer_copy, sha256 = inner_pad.copy, outer_pad.copy, hashlib.sha256
    prks = []
    for i in range(0, 16 * n, 16):
        inner = inner_copy()
        inner.update(data[i : i + 16])
        outer = outer_copy()
        outer.update(inner.digest())
        prks.append(outer.digest())
    # Expand: the PRK is the HMAC key; its pads are built for all keys at once with numpy.
    prk = np.frombuffer(b"".join(prks), np.uint8).reshape(n, 32)
    inner_msgs = np.empty((n, 72), np.uint8)
    inner_msgs[:, :64] = 0x36
    inner_msgs[:, :32] ^= prk
    inner_msgs[:, 64:] = np.frombuffer(info + b"\x01", np.uint8)
    outer_pads = np.full((n, 64), 0x5C, np.uint8)
    outer_pads[:, :32] ^= prk
    ib, ob = inner_msgs.tobytes(), outer_pads.tobytes()
    inner_digests = [sha256(ib[a : a + 72]).digest() for a in range(0, 72 * n, 72)]
    return [sha256(ob[64 * j : 64 * j + 64] + d).digest()[:16] for j, d in enumerate(inner_digests)]


def _ecb_opener() -> Callable[[bytes], Any]:
    """A function key -> AES-128-ECB encryption context with ``update_into``.

    cryptography's ``Cipher(...).encryptor()`` spends most of its ~3 us in Python-level
    checks of arguments that are right by construction here.  Its Rust binding opens the same
    OpenSSL context directly, and one ``AES128`` object is re-keyed instead of built (and
    checked) per key; the binding copies the key into the context at once.  None of that is
    public API, so it is checked here against the public path and any difference falls back
    to it (tests compare both).
    """
    from cryptography.hazmat.primitives.ciphers import algorithms, modes

    ecb = modes.ECB()
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        create = rust_openssl.ciphers.create_encryption_ctx
        algorithm = algorithms.AES128(bytes(16))

        def open_ecb(key: bytes) -> Any:
            algorithm.key = key
            return create(algorithm, ecb)

        probe, block = bytes(range(16)), bytes(range(16, 32))
        first = open_ecb(probe).update(block)
        if open_ecb(bytes(16)).update(block) == first or first != _public_ecb_opener()(probe).update(block):
            raise ValueError("re-keying does not reach the context")
    except Exception:  # pragma: no cover - depends on the installed cryptography
        return _public_ecb_opener()
    return open_ecb


def import_aes() -> None:
    """Import cryptography's AES (~10 ms) ahead of its first use: a check with more than one job
    does it while its workers derive, not after its last key, where its exposures' AEMs need it."""
    _ecb_opener()


def _public_ecb_opener() -> Callable[[bytes], Any]:
    """The public-API path of ``_ecb_opener`` (the fallback, and the reference in tests)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ecb, aes = modes.ECB(), algorithms.AES
    return lambda key: Cipher(aes(key), ecb).encryptor()


def decrypt_aems(teks: np.ndarray, key_rows: np.ndarray, rpis: np.ndarray, aems: np.ndarray) -> np.ndarray:
    """Metadata of many AEMs at once: uint8 (m, 4), row i sent with ``rpis[i]`` by key ``teks[key_rows[i]]``.

    AES-CTR with the RPI as counter block encrypts 4 bytes with the first 4 bytes of
    AES-ECB(AEMK, RPI), so each distinct (key, RPI) costs one block of one ECB call per key
    and the XOR is done by numpy: ~10x cheaper than a CTR context per advert.
    """
    rpis = np.ascontiguousarray(rpis, np.uint8).reshape(-1, 16)
    aems = np.ascontiguousarray(aems, np.uint8).reshape(-1, 4)
    key_rows = np.asarray(key_rows, np.int64)
    if len(rpis) == 0:
        return np.empty((0, 4), np.uint8)
    # The distinct (key, RPI) pairs, grouped by key: sorted by key, then the RPI's two words (an
    # integer lexsort; np.unique of a structured array compares record by record: 18x slower for
    # 7,200 matched sightings).
    words = rpis.view("<u8")
    order = np.lexsort((words[:, 1], words[:, 0], key_rows))
    sorted_keys, sorted_words = key_rows[order], words[order]
    new = np.ones(len(order), bool)
    new[1:] = (sorted_keys[1:] != sorted_keys[:-1]) | (sorted_words[1:] != sorted_words[:-1]).any(axis=1)
    distinct = np.flatnonzero(new)
    inverse = np.empty(len(order), np.int64)
    inverse[order] = np.cumsum(new) - 1
    unique_keys = sorted_keys[distinct]
    keys_used, first = np.unique(unique_keys, return_index=True)
    bounds = np.r_[first, len(distinct)]
    plain = rpis[order[distinct]]
    stream = np.empty((len(distinct), 16), np.uint8)
    open_ecb = _ecb_opener()
    for aemk, a, b in zip(aem_keys(np.asarray(teks, np.uint8)[keys_used]), bounds[:-1].tolist(), bounds[1:].tolist()):
        stream[a:b] = np.frombuffer(open_ecb(aemk).update(plain[a:b].tobytes()), np.uint8).reshape(-1, 16)
    return aems ^ stream[inverse.reshape(-1), :4]


def decrypt_aem(tek: bytes, rpi_value: bytes, aem_value: bytes) -> bytes:
    """Metadata bytes from a received AEM, given the daily key that made the RPI."""
    from bluezone.crypto.keys import aem_key

    return aem(aem_key(tek), rpi_value, aem_value)
