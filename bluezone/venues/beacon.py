"""The venue beacon's 31-byte advert: the venue's QR payload, encrypted and cut into frames.

A venue beacon (``bluezone venue beacon DIR``, e.g. a Raspberry Pi at the door) lets bluezone
devices nearby check in with nothing to scan.  What it sends, per 10-minute *epoch* ``e``
(Unix time // 600, the GAEN interval):

* ``k = HMAC-SHA256(beacon_key, "bluezone-venue-beacon" || e as 8 bytes big-endian)``;
  ``set_id = k[0:4]``, ``key = k[4:20]`` (AES-128).
* ``sealed = AES-128-GCM(key, nonce = 12 zero bytes, QR payload, aad = set_id)`` (ciphertext
  and 16-byte tag; a nonce used once, because each epoch's key is used once).
* ``blob = sealed || (key XOR SHA-256(sealed)[0:16])``: an all-or-nothing package (Rivest
  1997): the key comes out only with *every* byte of ``sealed``, so a passer-by who caught
  some frames learns nothing, and a device that stayed for a whole cycle reads exactly what the
  poster says.
* ``blob`` is cut into frames of 13 bytes; frame ``i`` of ``n`` is the 20-byte service data
  ``0x10 | set_id | i | n | 13 bytes`` (the last frame zero-padded).  The beacon sends one frame
  a second, round and round.

On the air (a legacy, non-connectable advert, 31 bytes like GAEN's): Flags ``02 01 06``,
16-bit service UUID list ``03 03 56 42``, service data ``18 16 56 42`` + the 20 bytes.  0x4256
is not a SIG-assigned UUID (see docs/venues.md).

A bystander sees 4-byte set ids and ciphertext that change every 10 minutes, derived from a key
only the venue holds: nothing links one epoch's frames to the next, or today's to tomorrow's,
without staying long enough to decrypt, and then they learn what the poster on the door says.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.errors import VenueError
from bluezone.proximity.backends.fd6f import VENUE_BEACON_UUID
from bluezone.venues.copies import paddings
from bluezone.venues.framesets import FrameSets
from bluezone.venues.location import Venue

#: The beacon's 16-bit service UUID (0x4256, "BV"), in BlueZ/bleak's 128-bit string form.
UUID16 = 0x4256
SERVICE_UUID = VENUE_BEACON_UUID  # what the real backends pass on to the daemon's listener
VERSION = 0x10
FRAME_BYTES = 20
CHUNK_BYTES = 13
EPOCH_SECONDS = INTERVAL_SECONDS
LABEL = b"bluezone-venue-beacon"
#: Opened sets kept, those heard least recently forgotten first.  Anyone can make venues: a flood of them,
#: a hundred sets opened a second, pushed a venue still heard out of the 32 kept (the oldest opened went
#: first), and its frames then counted only once a whole round was heard again.
MAX_OPENED_SETS = 1024
_NONCE = bytes(12)


def epoch_of(t: float) -> int:
    """The beacon epoch number of time ``t``."""
    return int(t // EPOCH_SECONDS)


def epoch_keys(beacon_key: bytes, epoch: int) -> tuple[bytes, bytes]:
    """(set id, AES-128 key) of one epoch."""
    k = hmac.new(beacon_key, LABEL + struct.pack(">Q", epoch), hashlib.sha256).digest()
    return k[:4], k[4:20]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def seal_blob(payload: bytes, beacon_key: bytes, epoch: int) -> tuple[bytes, bytes]:
    """(set id, all-or-nothing blob) the beacon sends in ``epoch``."""
    set_id, key = epoch_keys(beacon_key, epoch)
    sealed = AESGCM(key).encrypt(_NONCE, bytes(payload), set_id)
    return set_id, sealed + _xor(key, hashlib.sha256(sealed).digest()[:16])


def open_blob(set_id: bytes, blob: bytes) -> bytes:
    """The payload in a complete blob; :class:`VenueError` if it does not decrypt."""
    if len(blob) < 32:
        raise VenueError("venue beacon blob too short")
    sealed, masked = blob[:-16], blob[-16:]
    key = _xor(masked, hashlib.sha256(sealed).digest()[:16])
    try:
        return AESGCM(key).decrypt(_NONCE, sealed, set_id)
    except InvalidTag:
        raise VenueError("venue beacon frames do not decrypt (mixed or damaged frames)") from None


def frames(payload: bytes, beacon_key: bytes, epoch: int) -> list[bytes]:
    """The 20-byte service-data frames of one epoch, in order."""
    set_id, blob = seal_blob(payload, beacon_key, epoch)
    chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)]
    if len(chunks) > 255:
        raise VenueError("the venue payload is too long for the beacon (at most 255 frames)")
    return [bytes([VERSION]) + set_id + bytes([i, len(chunks)]) + c.ljust(CHUNK_BYTES, b"\0") for i, c in enumerate(chunks)]


def advert_bytes(frame: bytes) -> bytes:
    """The complete 31-byte legacy advertising data of one frame (what a sniffer sees)."""
    uuid = struct.pack("<H", UUID16)
    return b"\x02\x01\x06" + b"\x03\x03" + uuid + bytes([3 + len(frame), 0x16]) + uuid + frame


@dataclass(frozen=True)
class Frame:
    """One advert of a venue beacon: a chunk of the payload set it belongs to."""

    set_id: bytes
    index: int
    count: int
    chunk: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> Frame:
        if len(data) != FRAME_BYTES or data[0] != VERSION:
            raise VenueError("not a venue beacon frame")
        index, count = data[5], data[6]
        if count == 0 or index >= count:
            raise VenueError("venue beacon frame numbering is out of range")
        return cls(bytes(data[1:5]), index, count, bytes(data[7:]))


@dataclass(frozen=True, eq=False)
class _Opened:
    """A set that opened: its venue and the very frames that opened it (only those count for it)."""

    venue: Venue
    frames: tuple[bytes, ...]


class FrameAssembler:
    """Collects frames per set (set id and frame count) until a whole blob is there, then opens it (once per set).

    Frames heard weaker than ``min_rssi`` open no set (the beacon of the café next door is not
    this room), but those of a set already opened are passed on with it, so the listener can weigh
    how strongly the venue is heard (``nearby.py``); incomplete sets are forgotten after ``max_age`` seconds.

    A set id is no proof of a venue: anyone can seal their own venue under the café's set id (the key travels
    in the blob).  Only the frames of an opened set, byte for byte, count for its venue: a foreign set that
    opened first under the café's set id used to take every later café frame for the whole epoch (the visitor
    was checked in to the foreign venue); now the café's frames are collected and opened as a set of their own.
    """

    def __init__(self, min_rssi: int = -90, max_age: float = 2 * EPOCH_SECONDS) -> None:
        self.min_rssi = min_rssi
        self.max_age = max_age
        self._partial = FrameSets()  # the sets being collected (bounded: framesets.py)
        self._opened: dict[bytes, _Opened] = {}  # by each of its frames' 20 bytes
        self._recent: dict[_Opened, None] = {}  # the opened sets, the most recently heard last
        self._opened_keys: set[tuple[bytes, int]] = set()  # their (set id, frame count)s
        self.malformed = 0

    def add(self, data: bytes, rssi: int, t: float) -> tuple[bytes, Venue | None] | None:
        """Feed one heard frame; (set id, venue or None if it would not open) once its set is whole.

        A set keeps every copy of a chunk it hears and tries combinations of them, within a budget of openings per
        set and per second (``copies.py``): junk sent with a venue's set id and frame count, before or after its
        genuine frames, delays the set rather than keeping it out.

        Returns the result again for every later frame of a set already opened (the same 20 bytes), so the
        caller can count presence by the frames it hears.
        """
        try:
            frame = Frame.from_bytes(data)
        except VenueError:
            self.malformed += 1
            return None
        opened = self._opened.get(bytes(data))
        if opened is not None:  # weaker ones too: how strong the venue is heard is the caller's to judge
            del self._recent[opened]
            self._recent[opened] = None
            return frame.set_id, opened.venue
        if rssi < self.min_rssi:
            return None
        # a set id and count that opened already: another venue sealed under it still opens, a round later (its
        # frames come again every round), but junk sent once is never let in (it bought 24 openings a second)
        partial = self._partial.heard(bytes(data), t, repeated_only=(frame.set_id, frame.count) in self._opened_keys)
        if partial is None:
            return None  # a new set while the table is full: its first frame waits for a second
        partial.copies.add(frame.index, frame.chunk)
        if not partial.copies.complete:
            return None
        tried = False
        for combination in partial.copies.tries(t):  # junk under its set id: each combination once, within a budget
            tried = True
            venue = self._open(frame.set_id, b"".join(c.chunk for c in combination))
            if venue is not None:
                self._partial.remove((frame.set_id, frame.count))
                header = bytes([VERSION]) + frame.set_id
                done = _Opened(venue, tuple(header + bytes([c.index, partial.count]) + c.chunk for c in combination))
                self._opened.update(dict.fromkeys(done.frames, done))
                self._recent[done] = None
                self._opened_keys.add((frame.set_id, frame.count))
                return frame.set_id, venue
        return (frame.set_id, None) if tried else None  # a foreign or damaged frame among them: more copies may come

    def _open(self, set_id: bytes, blob: bytes) -> Venue | None:
        # the last frame was zero-padded: the blob's true end is unknown, so try each trim its zeros allow
        for pad in paddings(blob[-CHUNK_BYTES:]):
            candidate = blob[: len(blob) - pad]
            try:
                return Venue.from_payload(open_blob(set_id, candidate))
            except VenueError:
                continue
        self.malformed += 1
        return None

    def forget_before(self, t: float) -> None:
        self._partial.forget_before(t - self.max_age)
        if len(self._recent) > MAX_OPENED_SETS:  # old sets are never heard again once their epoch is over
            for done in list(self._recent)[: -MAX_OPENED_SETS // 2]:
                del self._recent[done]
                for data in done.frames:
                    if self._opened.get(data) is done:  # (a later set sharing a frame keeps it)
                        del self._opened[data]
            self._opened_keys = {(d.frames[0][1:5], d.frames[0][6]) for d in self._recent}


def beacon_vector(payload: bytes, beacon_key: bytes, epoch: int) -> dict[str, object]:
    """Everything docs/venues.md lists for one epoch (and tests/venues check)."""
    set_id, key = epoch_keys(beacon_key, epoch)
    _, blob = seal_blob(payload, beacon_key, epoch)
    out = frames(payload, beacon_key, epoch)
    return {
        "epoch": epoch,
        "set_id": set_id.hex(),
        "aes_key": key.hex(),
        "blob": blob.hex(),
        "frames": [f.hex() for f in out],
        "first_advert": advert_bytes(out[0]).hex(),
    }

