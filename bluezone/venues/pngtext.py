"""Which chunk of a PNG passes Pillow's limits on text, in words: ``checkin --image`` said such a PNG was "not an
image bluezone can read" (Pillow's ValueError names only its constants).  Pillow decompresses a text chunk (zTXt,
iTXt) or colour profile (iCCP) up to ``MAX_TEXT_CHUNK`` and reads ``MAX_TEXT_MEMORY`` of text in all: guards
against decompression bombs that no photo of a poster meets.  The chunks are walked as Pillow walks them, in order."""

from __future__ import annotations

import struct
import zlib

from PIL.PngImagePlugin import MAX_TEXT_CHUNK, MAX_TEXT_MEMORY

from bluezone.printable import printable_line

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def text_past_limits(data: bytes) -> str | None:
    """What in the PNG ``data`` passes the reader's limits on text ("zTXt text chunk 'Comment' (2,046 bytes)
    decompresses to more than ..."), or None if nothing does."""
    if not data.startswith(_SIGNATURE):
        return None
    at, total = len(_SIGNATURE), 0
    while at + 8 <= len(data):
        length, cid = struct.unpack_from(">I4s", data, at)
        body = data[at + 8 : at + 8 + length]
        at += 12 + length
        if cid == b"IEND":
            break
        keyword, compressed, text = _parts(cid, body)
        name = f"{cid.decode('latin-1')} {'colour profile' if cid == b'iCCP' else 'text'} chunk" + (
            f" {printable_line(keyword.decode('latin-1'))[:79]!r}" if keyword and cid != b"iCCP" else ""
        )
        if compressed is not None:
            inflater = zlib.decompressobj()
            try:
                text = inflater.decompress(compressed, MAX_TEXT_CHUNK)
            except zlib.error:  # Pillow takes a corrupt stream as no text
                continue
            if inflater.unconsumed_tail:
                return f"{name} ({length:,} bytes) decompresses to more than the {_mib(MAX_TEXT_CHUNK)} a chunk the image reader takes"
        if text is not None and keyword and cid != b"iCCP":
            total += len(text)
            if total > MAX_TEXT_MEMORY:
                return (
                    f"text chunks hold more than the {_mib(MAX_TEXT_MEMORY)} of text in all the image reader takes"
                    f" ({total:,} bytes up to its {name}, {length:,} bytes)"
                )
    return None


def _parts(cid: bytes, body: bytes) -> tuple[bytes, bytes | None, bytes | None]:
    """A chunk's keyword, its compressed part (to be decompressed, or None) and its plain text (None if it has no text
    Pillow counts), split as PngImagePlugin's chunk_tEXt, chunk_zTXt, chunk_iTXt and chunk_iCCP split them."""
    keyword, _, rest = body.partition(b"\0")
    if cid == b"tEXt":
        return keyword, None, rest
    if cid == b"zTXt":
        return (keyword, rest[1:], None) if rest[:1] == b"\0" else (keyword, None, None)
    if cid == b"iCCP":
        return keyword, (rest[1:] if rest[:1] == b"\0" else None), None
    if cid == b"iTXt" and len(rest) >= 2:
        fields = rest[2:].split(b"\0", 2)
        if len(fields) == 3:
            if rest[0] == 0:
                return keyword, None, fields[2]
            return keyword, (fields[2] if rest[1] == 0 else None), None
    return b"", None, None


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"
