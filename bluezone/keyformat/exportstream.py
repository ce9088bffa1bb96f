"""An ``export.bin`` read as a stream, in bounded memory, with no Python object per key.

A 6M-key day is a ~200 MB ``export.bin`` (115 MB zipped).  Parsed whole it is held three times (the zip, the
inflated bytes, protobuf's parse).  Here it is read ``PIECE`` bytes at a time from a stream (a
zip member inflating as it goes, or a file), hashed on the way for its signature, and each
piece parsed at once: the keys are top-level fields 7 and 8, each a tag byte and a one-byte
length as every server writes them, so where they lie is found by following those lengths
for all candidate positions together (pointer doubling in numpy, no loop per key), and
``tekwire`` decodes their fields column-wise straight into the output rows.  The few other
top-level fields (time window, region, batch, signature infos, unknown ones) are read one by
one.  What stays in memory is the keys' output array and a piece or two.

Protobuf's semantics hold: fields in any order, repeated fields split and interleaved, unknown
fields skipped, the last value of a scalar wins.  What this reader does not handle itself (a
multi-byte tag, a group, a key message ``tekwire`` leaves alone, a long non-key field, a
truncated or corrupt file, a file of many small odd fields) makes ``stream_export_bin`` return
None, and the caller parses the whole file through protobuf instead, which also words the
error: so the result is always protobuf's, and the files servers write stay bounded.

With a ``KeySink`` the keys (field 7) are not kept at all: each piece's keys are handed to it as
they are decoded (a national day is matched as it inflates, ``bluezone.matching.filecheck``), and
only the revised keys (field 8, few) are returned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np
from google.protobuf.message import DecodeError

from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.keyformat.tekwire import PADDING, broken_rule, decode_entries, fill_keys, take

if TYPE_CHECKING:
    import bluezone.keyformat.gaen_export_pb2 as pb

#: Bytes of ``export.bin`` read and parsed at a time (the first piece an eighth of it, 64 kB, ~2,200 keys: a
#: check with more than one job hands its workers the first keys sooner, ~10 ms of parsing earlier).
PIECE = 512 << 10
#: The 16-byte header every ``export.bin`` starts with (``export.EXPORT_HEADER``).
HEADER = b"EK Export v1    "
#: The header of a key server's venue-warning file (``venue_export``), which sits beside key files.
VENUE_HEADER = b"BZ Venues v1".ljust(16)


def header_problem(head: bytes) -> str:
    """Why an export.bin starting with ``head`` is no key export; a venue-warning file, taken from
    the same export directory by mistake, is named as one."""
    if head.startswith(VENUE_HEADER):
        return "a venue-warning file (BZ Venues v1), not diagnosis keys: `bluezone check --server URL` reads those"
    return f"export.bin must start with the 16-byte header {HEADER!r}"
_KEYS, _REVISED = 0x3A, 0x42  # the tags of fields 7 and 8, length-delimited
#: Fewest bytes a valid key takes as an entry: its tag and length, key_data's tag, length and 16 bytes.
_MIN_VALID_ENTRY = 20
#: Top-level fields outside runs of keys before a file is left to protobuf (servers write ~10).
_MAX_OTHER_FIELDS = 10_000
#: A non-key field longer than this is left to protobuf (a region or signature info is tens of bytes).
_MAX_OTHER_BYTES = 1 << 20


class KeySink(Protocol):
    """Where the keys of a streamed file go, in file order, instead of one array."""

    def add(self, keys: np.ndarray) -> None:
        """The next ``keys`` (KEY_DTYPE) of the file, each valid (a file with a bad key raises at its end)."""

    def restart(self) -> None:
        """Forget every key given so far: they come again from the first (the file is being
        parsed whole by protobuf after all)."""


class _LeaveToProtobuf(Exception):
    """Something only protobuf's parse of the whole file may judge."""


@dataclass
class StreamedExport:
    """What ``stream_export_bin`` read: the fields of ``ExportFile``, raw, and the file's SHA-256."""

    digest: bytes
    problem: str | None  # the first rule the file breaks (header, a key), raised after the signature check
    cut_short: bool = False  # a key broke a rule and, asked to stop there, the rest was only hashed
    start_timestamp: int = 0
    end_timestamp: int = 0
    region: str = ""
    batch_num: int = 0
    batch_size: int = 0
    signature_infos: list[pb.SignatureInfo] = field(default_factory=list)
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, KEY_DTYPE))  # empty: given to a sink
    key_count: int = 0  # of ``keys``, or of the keys given to the sink
    revised_keys: np.ndarray = field(default_factory=lambda: np.empty(0, KEY_DTYPE))


def stream_export_bin(
    stream: BinaryIO, size: int, sink: KeySink | None = None, *, stop_at_problem: bool = False
) -> StreamedExport | None:
    """Read the ``export.bin`` of ``size`` bytes from ``stream`` to its end; None: parse it whole
    through protobuf instead (see the module's docstring).  With ``sink``, the keys go to it.  With
    ``stop_at_problem`` the rest of the file is only hashed once a key breaks a rule (``cut_short``):
    a forged file of bad keys then costs its hash, not its parse, and protobuf's word on the rest is
    not sought."""
    hasher = hashlib.sha256()
    parser = _Parser(capacity=0 if sink is not None else max(size - len(HEADER), 0) // _MIN_VALID_ENTRY + 1, sink=sink)
    head = stream.read(len(HEADER))
    hasher.update(head)
    total = len(head)
    carry = b""
    no_export = head != HEADER  # then only its hash still counts: a bad signature is said first
    if no_export:
        parser.problem = header_problem(head)
    piece = max(PIECE // 8, 1)
    try:
        while True:
            data = stream.read(piece)
            piece = PIECE
            hasher.update(data)
            total += len(data)
            if total > size:
                return None  # longer than it said
            if no_export:
                if not data:
                    break
                continue
            end = len(carry) + len(data)
            if not data and not carry:
                break
            buf = np.empty(end + PADDING, np.uint8)
            buf[: len(carry)] = np.frombuffer(carry, np.uint8)
            buf[len(carry) : end] = np.frombuffer(data, np.uint8)
            buf[end:] = 0
            done = parser.feed(buf, end, final=not data)
            carry = buf[done:end].tobytes()
            if stop_at_problem and (parser.bad[_KEYS] or parser.bad[_REVISED]):
                no_export = parser.cut_short = True
            if not data:
                break
        parser.out.signature_infos = _signature_infos(parser.signature_infos)
    except _LeaveToProtobuf:
        return None
    return parser.result(hasher.digest())


def _signature_infos(raw: list[bytes]) -> list[pb.SignatureInfo]:
    """The signature infos read (field 6), parsed once the file has been: protobuf's message classes
    for the export (~12 ms to import) are then imported while a check's workers derive, not before
    they can start (issue 17)."""
    if not raw:
        return []
    import bluezone.keyformat.gaen_export_pb2 as pb

    try:
        return [pb.SignatureInfo.FromString(data) for data in raw]
    except (DecodeError, RuntimeWarning, ValueError):
        raise _LeaveToProtobuf from None


class _Parser:
    """The top level of a ``TemporaryExposureKeyExport``, fed piece by piece."""

    def __init__(self, capacity: int, sink: KeySink | None = None) -> None:
        self.out = StreamedExport(b"", None)
        self.sink = sink
        # every valid key takes _MIN_VALID_ENTRY bytes or more, so ``capacity`` rows hold all the
        # keys up to the first bad one: reserved at once, a row's memory is used only once written
        # (growing would zero-fill, and so touch, every new row).  Revised keys are few: grown.
        self.rows = {_KEYS: np.empty(capacity, KEY_DTYPE), _REVISED: np.empty(0, KEY_DTYPE)}
        self.count = {_KEYS: 0, _REVISED: 0}
        self.bad: dict[int, str | None] = {_KEYS: None, _REVISED: None}
        self.problem: str | None = None
        self.other_fields = 0
        self.cut_short = False
        self.signature_infos: list[bytes] = []  # field 6, raw (``_signature_infos``)

    def feed(self, buf: np.ndarray, end: int, final: bool) -> int:
        """Parse the fields in ``buf[:end]`` (``PADDING`` bytes follow); how many bytes were
        used (a field cut by the piece's end waits for the next piece)."""
        view = memoryview(buf)  # type: ignore[arg-type]  # a uint8 array: indexing gives ints
        links: _Links | None = None
        runs: list[np.ndarray] = []
        pos = 0
        while pos < end:
            tag = view[pos]
            if (tag == _KEYS or tag == _REVISED) and pos + 1 < end and view[pos + 1] < 0x80:
                links = links or _Links(buf, end)
                run = links.run(int(np.searchsorted(links.at, pos)))
                if links.after[run[-1]] > end:  # the last one continues in the next piece
                    run = run[:-1]
                if len(run):
                    runs.append(links.at[run])
                    pos = int(links.after[run[-1]])
                    continue
                if final:
                    raise _LeaveToProtobuf  # truncated
                break
            after = self._other_field(view, pos, end)
            if after is None:
                if final:
                    raise _LeaveToProtobuf  # truncated
                break
            pos = after
            self.other_fields += 1
            if self.other_fields > _MAX_OTHER_FIELDS:
                raise _LeaveToProtobuf
        if runs:
            self._add_keys(buf, np.concatenate(runs))
        return pos

    def _other_field(self, view: memoryview, pos: int, end: int) -> int | None:
        """Read the field at ``pos`` that is not a short key entry; where it ends, None if cut."""
        tag = view[pos]
        number, wire = tag >> 3, tag & 7
        if tag >= 0x80 or number == 0 or wire not in (0, 1, 2, 5):
            raise _LeaveToProtobuf  # a multi-byte tag, a group, or corrupt
        at = pos + 1
        value = 0
        if wire in (0, 2):
            got = _varint(view, at, end)
            if got is None:
                return None
            value, at = got
        if wire in (1, 5):
            width = 8 if wire == 1 else 4
            if at + width > end:
                return None
            value = int.from_bytes(view[at : at + width], "little")
            at += width
        data = b""
        if wire == 2:
            if value > _MAX_OTHER_BYTES or number in (7, 8):  # a key entry of 128 bytes or more
                raise _LeaveToProtobuf
            if at + value > end:
                return None
            data = bytes(view[at : at + value])
            at += value
        self._set(number, wire, value, data)
        return at

    def _set(self, number: int, wire: int, value: int, data: bytes) -> None:
        out = self.out
        if (number, wire) == (1, 1):
            out.start_timestamp = value
        elif (number, wire) == (2, 1):
            out.end_timestamp = value
        elif (number, wire) == (3, 2):
            out.region = data.decode("utf-8", "replace")
        elif (number, wire) in ((4, 0), (5, 0)):
            low = value & 0xFFFFFFFF  # int32: the low 32 bits of the varint
            setattr(out, "batch_num" if number == 4 else "batch_size", low - (1 << 32) if low >= 1 << 31 else low)
        elif (number, wire) == (6, 2):
            self.signature_infos.append(data)
        # anything else is an unknown field (or a known number with another wire type): skipped

    def _add_keys(self, buf: np.ndarray, at: np.ndarray) -> None:
        """Decode the key entries whose tags are at ``at`` into the output rows."""
        cols = decode_entries(buf, at + 2, buf[at + 1].astype(np.int64))
        if cols is None:
            raise _LeaveToProtobuf
        tags = buf[at]
        for tag, where in ((_KEYS, "keys"), (_REVISED, "revised_keys")):
            mine = tags == tag
            n = int(np.count_nonzero(mine))
            if not n:
                continue
            first = self.count[tag]
            self.count[tag] += n
            if self.bad[tag] is not None:
                continue  # the first bad key is what will be said; the rest need only parse
            part = take(cols, mine)
            self.bad[tag] = broken_rule(part, where, first)
            if self.bad[tag] is None and tag == _KEYS and self.sink is not None:
                rows = np.empty(n, KEY_DTYPE)
                fill_keys(part, rows)
                self.sink.add(rows)
            elif self.bad[tag] is None:
                rows = self.rows[tag]
                if first + n > len(rows):
                    rows.resize(max(first + n, 2 * len(rows)), refcheck=False)  # no view of it exists
                fill_keys(part, rows[first : first + n])

    def result(self, digest: bytes) -> StreamedExport:
        out = self.out
        out.digest = digest
        out.problem = self.problem or self.bad[_KEYS] or self.bad[_REVISED]
        out.cut_short = self.cut_short
        out.key_count = self.count[_KEYS]
        if out.problem is None:
            out.revised_keys = _trimmed(self.rows[_REVISED], self.count[_REVISED])
            if self.sink is None:
                out.keys = _trimmed(self.rows[_KEYS], self.count[_KEYS])
        return out


def _trimmed(rows: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows, the rest of the allocation given back (a shrinking realloc, no copy)."""
    rows.resize(n, refcheck=False)  # nothing else refers to it: it never left the parser
    return rows


def _varint(view: memoryview, at: int, end: int) -> tuple[int, int] | None:
    """(value, position after it) of the varint at ``at``; None if the piece ends inside it."""
    value = 0
    for i in range(10):
        if at + i >= end:
            return None
        byte = view[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, at + i + 1
    raise _LeaveToProtobuf  # longer than 10 bytes: corrupt


class _Links:
    """Every position of a piece that could start a short key entry (a key tag, a length below
    128), and where each such entry would end: the entries really there are the chain of
    positions that follow one another from a known start."""

    def __init__(self, buf: np.ndarray, end: int) -> None:
        tags, lengths = buf[: end - 1], buf[1:end]
        self.at = np.flatnonzero(((tags == _KEYS) | (tags == _REVISED)) & (lengths < 0x80))
        self.after = self.at + 2 + buf[self.at + 1]
        nxt = np.searchsorted(self.at, self.after)
        linked = nxt < len(self.at)
        linked[linked] = self.at[nxt[linked]] == self.after[linked]
        # jumps[k][i]: the candidate 2**k entries after candidate i; len(at) means none
        self.jumps = [np.append(np.where(linked, nxt, len(self.at)), len(self.at))]

    def run(self, first: int) -> np.ndarray:
        """The candidates chained from candidate ``first``, in order: by doubling, the chain's
        first 2**k entries and their 2**k-th successors give its first 2**(k+1)."""
        none = len(self.at)
        chain = np.array([first])
        for k in range(64):
            if k == len(self.jumps):
                self.jumps.append(self.jumps[-1][self.jumps[-1]])
            step = self.jumps[k][chain]
            step = step[step != none]
            if not len(step):
                break
            chain = np.concatenate([chain, step])
        return chain
