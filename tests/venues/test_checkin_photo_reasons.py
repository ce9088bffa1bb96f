"""`checkin --image` of odd photos: each refusal says its own true reason in one line, exit 2, no store
made.  A valid 16,000,000 x 1 PNG was "not an image Pillow can read (ValueError)": the QR reader's limit on
a side (note27); a photo of two venues' posters checked in at whichever zxing read first."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.venues.pngtext import text_past_limits

T0 = 1_796_400_000.0  # 2026-12-04 16:00 UTC


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj={"clock": VirtualClock(T0)})


def _venue(tmp_path: Path, name: str) -> Image.Image:
    """A venue's poster, grey, as `venue create` draws it."""
    out = tmp_path / name
    assert _run("venue", "create", "--name", name, "--address", "1 Lê Lợi", "--out", str(out)).exit_code == 0
    with Image.open(out / "poster.png") as poster:
        return poster.convert("L")


def _side_by_side(*images: Image.Image) -> Image.Image:
    sheet = Image.new("L", (sum(i.width for i in images), max(i.height for i in images)), 255)
    x = 0
    for image in images:
        sheet.paste(image, (x, 0))
        x += image.width
    return sheet


def _qr(text: str) -> Image.Image:
    import segno

    buffer = io.BytesIO()
    segno.make(text).save(buffer, kind="png", scale=10)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def _refused(tmp_path: Path, photo: Path) -> str:
    db = tmp_path / "visitor.db"
    result = _run("checkin", "--image", str(photo), "--db", str(db))
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert not db.exists()
    return result.output.strip()


def test_each_broken_photo_says_its_own_reason(tmp_path: Path) -> None:
    poster = _venue(tmp_path, "Cà phê Sữa")
    wide = tmp_path / "wide.png"
    Image.new("L", (16_000_000, 1), 255).save(wide)  # 16 MP: within the pixels, past the reader's side
    assert _refused(tmp_path, wide) == (
        f"Error: {wide} is 16000000 x 1 pixels: longer on one side than the QR reader takes (at most 65,535); crop it"
        " to the poster, or type the URL printed under its QR code (`bluezone checkin URL`)"
    )
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert _refused(tmp_path, empty) == (
        f"Error: {empty} is empty (0 bytes): give a photo of the poster, or type the URL printed under its QR code"
        " (`bluezone checkin URL`)"
    )
    whole = io.BytesIO()
    poster.save(whole, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    assert _refused(tmp_path, cut).startswith(
        f"Error: {cut} is a PNG image that cannot be decoded (image file is truncated): it may be damaged or cut short;"
        " copy or take the photo again, or type the URL printed under its QR code (`bluezone checkin URL`)"
    )
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    assert _refused(tmp_path, notes).startswith(f"Error: {notes} is not an image bluezone can read: give a photo")
    for said in map(lambda p: _refused(tmp_path, p), (wide, empty, cut, notes)):
        assert "Pillow" not in said and "Error" not in said.removeprefix("Error: "), said


def test_two_venues_in_one_photo_are_refused_not_the_first_taken(tmp_path: Path) -> None:
    cafe, shop = _venue(tmp_path, "Cà phê Sữa"), _venue(tmp_path, "Shop")
    both = tmp_path / "both.png"
    _side_by_side(cafe, shop).save(both)
    said = _refused(tmp_path, both)
    assert said.startswith(f"Error: {both} holds the check-in codes of 2 venues (") and "Cà phê Sữa" in said and "Shop" in said
    assert said.endswith("photograph the poster of the one you are at, or type the URL printed under its QR code"
                         " (`bluezone checkin URL`)")
    # the same venue's code twice, or beside a QR code that is not a venue's: that venue
    for name, sheet in (("twice.png", _side_by_side(cafe, cafe)), ("beside.png", _side_by_side(_qr("https://example.org/menu"), cafe))):
        sheet.save(tmp_path / name)
        result = _run("checkin", "--image", str(tmp_path / name), "--db", str(tmp_path / f"{name}.db"), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["checkin"]["description"] == "Cà phê Sữa"


def test_qr_codes_that_are_not_a_venues_say_so(tmp_path: Path) -> None:
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    _qr("https://example.org/menu").save(one)
    _side_by_side(_qr("https://example.org/menu"), _qr("WIFI:S:cafe;;")).save(two)
    assert _refused(tmp_path, one).startswith(f"Error: the QR code in {one} is not a venue check-in code: ")
    assert _refused(tmp_path, two).startswith(f"Error: none of the 2 QR codes in {two} is a venue check-in code: ")


def test_a_jpeg_past_pillows_warning_size_checks_in_without_its_warning(tmp_path: Path) -> None:
    """A 90 MP JPEG (within bluezone's 120 MP, past Pillow's 89 MP warning) printed Pillow's
    DecompressionBombWarning and the line of Pillow's source under it before checking in."""
    poster = _venue(tmp_path, "Cà phê Sữa")
    photo = tmp_path / "wall.jpg"
    frame = Image.new("L", (9_500, 9_500), 235)
    frame.paste(poster.resize((poster.width * 4, poster.height * 4)), (3_000, 3_000))
    frame.save(photo, quality=80)
    del frame
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = _run("checkin", "--image", str(photo), "--db", str(tmp_path / "visitor.db"), "--json")
    assert result.exit_code == 0, result.output
    assert [str(w.message) for w in said] == []


@pytest.mark.parametrize("size", [(65_536, 10), (10, 65_536)])
def test_the_readers_limit_is_a_side_over_65535(tmp_path: Path, size: tuple[int, int]) -> None:
    photo = tmp_path / "strip.png"
    Image.new("L", size, 255).save(photo)
    assert "longer on one side than the QR reader takes" in _refused(tmp_path, photo)
    Image.new("L", (65_535, 10), 255).save(photo)  # at the limit: read, and no code in it
    assert "no QR code found in" in _refused(tmp_path, photo)


def _png_with(*chunks: tuple[bytes, bytes], after_pixels: bool = False) -> bytes:
    """A small white PNG with ``chunks`` (type, body) put before its pixels (IDAT) or after them."""
    buffer = io.BytesIO()
    Image.new("L", (40, 40), 255).save(buffer, "PNG")
    png = buffer.getvalue()
    at = png.index(b"IEND" if after_pixels else b"IDAT") - 4
    extra = b"".join(
        struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body)) for cid, body in chunks
    )
    return png[:at] + extra + png[at:]


def test_a_png_whose_text_passes_the_readers_limits_says_which_chunk(tmp_path: Path) -> None:
    """Such a PNG was "not an image bluezone can read (Decompressed data too large for
    PngImagePlugin.MAX_TEXT_CHUNK): it may be damaged", though it is a whole PNG."""
    bomb = zlib.compress(b"a" * 2_000_000)
    photos = {
        "ztxt.png": (_png_with((b"zTXt", b"Comment\0\0" + bomb)), f"zTXt text chunk 'Comment' ({len(bomb) + 9:,} bytes)"),
        "itxt.png": (_png_with((b"iTXt", b"XML:com.adobe.xmp\0\1\0en\0\0" + bomb)),
                     f"iTXt text chunk 'XML:com.adobe.xmp' ({len(bomb) + 24:,} bytes)"),
        "after.png": (_png_with((b"zTXt", b"Note\0\0" + bomb), after_pixels=True), f"zTXt text chunk 'Note' ({len(bomb) + 6:,} bytes)"),
        "iccp.png": (_png_with((b"iCCP", b"sRGB\0\0" + bomb)), f"iCCP colour profile chunk ({len(bomb) + 6:,} bytes)"),
    }
    for name, (png, chunk) in photos.items():
        (tmp_path / name).write_bytes(png)
        assert _refused(tmp_path, tmp_path / name) == (
            f"Error: {tmp_path / name} is a PNG whose {chunk} decompresses to more than the 1 MiB a chunk the image"
            " reader takes: save it again without its metadata, or type the URL printed under its QR code"
            " (`bluezone checkin URL`)"
        )
    texts = tmp_path / "texts.png"  # 65 chunks of 1 MiB: each within a chunk's limit, past the 64 MiB in all
    texts.write_bytes(_png_with(*((b"tEXt", b"k%d\0" % n + b"a" * 2**20) for n in range(65))))
    assert _refused(tmp_path, texts) == (
        f"Error: {texts} is a PNG whose text chunks hold more than the 64 MiB of text in all the image reader takes"
        f" ({65 * 2**20:,} bytes up to its tEXt text chunk 'k64', {2**20 + 4:,} bytes): save it again without its"
        " metadata, or type the URL printed under its QR code (`bluezone checkin URL`)"
    )


def test_a_damaged_png_or_jpeg_is_named_as_what_it_is(tmp_path: Path) -> None:
    """A PNG or JPEG Pillow could not open was "not an image bluezone can read: give a photo of the poster (JPEG,
    PNG, ...)", or not one "(Truncated File Read)": its first bytes say what it is, its plugin why it failed."""
    png = _png_with()
    jpeg = io.BytesIO()
    Image.new("L", (64, 64), 200).save(jpeg, "JPEG")
    photos = {
        "checksum.png": (png[:29] + b"\0\0\0\0" + png[33:], "a PNG image that cannot be decoded (broken PNG file (bad header checksum in b'IHDR'))"),
        "signature.png": (png[:8], "a PNG image that cannot be decoded (its header is cut short)"),
        "cut.jpg": (jpeg.getvalue()[:30], "a JPEG image that cannot be decoded (Truncated File Read)"),
        "marker.jpg": (jpeg.getvalue()[:2] + b"\xff\x01\x00\x04ab" + jpeg.getvalue()[2:], "a JPEG image that cannot be decoded (no marker found)"),
    }
    for name, (data, what) in photos.items():
        (tmp_path / name).write_bytes(data)
        assert _refused(tmp_path, tmp_path / name) == (
            f"Error: {tmp_path / name} is {what}: it may be damaged or cut short; copy or take the photo again, or type"
            " the URL printed under its QR code (`bluezone checkin URL`)"
        )


_LIMIT = PngImagePlugin.MAX_TEXT_CHUNK
_CHUNKS = st.tuples(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"iCCP"]), st.sampled_from([0, 10, _LIMIT, _LIMIT + 1]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(_CHUNKS, max_size=4), after_pixels=st.booleans())
def test_the_text_past_limits_is_found_exactly_where_pillow_refuses(chunks: list[tuple[bytes, int]], after_pixels: bool) -> None:
    """text_past_limits walks the chunks as Pillow reads them: it names a chunk exactly when Pillow refuses the PNG."""
    def body(cid: bytes, size: int) -> bytes:
        text = b"a" * size
        if cid == b"tEXt":
            return b"k\0" + text
        if cid == b"iTXt":
            return b"k\0\1\0\0\0" + zlib.compress(text)
        return b"k\0\0" + zlib.compress(text)

    png = _png_with(*((cid, body(cid, size)) for cid, size in chunks), after_pixels=after_pixels)
    try:
        with Image.open(io.BytesIO(png)) as image:
            image.load()
        refused = False
    except ValueError:
        refused = True
    assert (text_past_limits(png) is not None) == refused
