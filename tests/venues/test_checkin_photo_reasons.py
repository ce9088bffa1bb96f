"""`checkin --image` of odd photos: each refusal says its own true reason in one line, exit 2, no store
made.  A valid 16,000,000 x 1 PNG was "not an image Pillow can read (ValueError)": the QR reader's limit on
a side (note27); a photo of two venues' posters checked in at whichever zxing read first."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from bluezone.cli import cli
from bluezone.clock import VirtualClock

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
