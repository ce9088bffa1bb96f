"""Reading a venue's QR code from a photo (zxing-cpp), for ``bluezone checkin --image``."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Any

from bluezone.errors import VenueError
from bluezone.printable import printable_line
from bluezone.readfile import read_regular_file
from bluezone.venues.location import Venue
from bluezone.venues.pngtext import text_past_limits

#: Pixels decoded at most.  Reading takes about 7 bytes a pixel at its peak (the image as decoded,
#: its grey copy, zxing's binarised one): a 16 MP photo ~160 MiB; a 64 MP PNG took 487 MiB.
MAX_DECODED_PIXELS = 16_000_000
#: A JPEG, what cameras write, is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg scales while it
#: decodes, and reads only the grey channel) to fit MAX_DECODED_PIXELS: the largest phone photos
#: (108 MP) read in the memory of a 12 MP one, and a QR code on a poster keeps pixels enough.
MAX_JPEG_PIXELS = 120_000_000
#: A phone's photo file is a few MB; a much larger file is not one.
MAX_PHOTO_BYTES = 100 * 1024 * 1024
TOO_LARGE = "{photo} has more pixels than a photo of a poster ({width} x {height}; at most {limit} megapixels{kind})"
#: What cameras, phones and screenshots write.  Pillow opens some forty formats, and hands EPS
#: (PostScript, a program) to Ghostscript where it is installed: a "photo" is not run.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")


#: zxing-cpp's limit on either side of the image it reads (its ValueError said "Maximum image width/height").
MAX_SIDE = 65_535
#: The other ways to check in, said after what was wrong with the photo.
INSTEAD = "or type the URL printed under its QR code (`bluezone checkin URL`)"


def read_qr_texts(photo: Path) -> list[str]:
    """The text of every QR code zxing-cpp finds in the image (Pillow opens any common format).  Each way
    it can fail is its own VenueError: not an image read here, a damaged one, one too large to read."""
    try:
        import zxingcpp
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise VenueError(f"reading QR photos needs zxing-cpp and Pillow ({exc.name} is missing): pip install zxing-cpp") from None
    data = read_regular_file(photo, MAX_PHOTO_BYTES, "photo", VenueError)  # a FIFO or /dev/zero: refused at once
    if not data:
        raise VenueError(f"{photo} is empty (0 bytes): give a photo of the poster, {INSTEAD}")
    if _is_svg(data):  # `venue create` writes poster.svg beside poster.png: "not an image Pillow can read" puzzled
        raise VenueError(
            f"{photo} is an SVG drawing, not a photo (Pillow reads none): check in with the URL printed under its"
            " QR code (bluezone checkin URL), or with a photo or PNG of the poster"
        )
    kind = None  # the format, once Pillow has read the header: a failure after it is a damaged image
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning on a large JPEG: its size is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)  # reads the header only
        with image:
            kind = image.format
            _refuse_too_large(photo, image)
            if image.format == "JPEG":
                scale = next(s for s in (1, 2, 4, 8) if image.width * image.height <= MAX_DECODED_PIXELS * s * s)
                image.draft("L", (image.width // scale, image.height // scale))
            _refuse_too_long(photo, image)  # the size it decodes to
            image.load()
            grey = image.convert("L")
    except VenueError:
        raise
    except Image.DecompressionBombError:  # larger still: Pillow refuses it while reading the header
        raise VenueError(f"{photo} has more pixels than a photo of a poster (at most {MAX_JPEG_PIXELS // 10**6} megapixels)") from None
    # Pillow says a broken file in more ways than OSError: SyntaxError (a PNG chunk), RuntimeError and
    # SyntaxError (its AVIF decoder), EOFError; ValueError (a PNG's text past its limits)
    except (OSError, ValueError, SyntaxError, RuntimeError, EOFError) as exc:
        raise VenueError(_refusal(photo, data, kind, exc)) from None
    del data, image  # only the grey copy is left for zxing
    results = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    return [r.text for r in results if r.valid and r.text]


def _refusal(photo: Path, data: bytes, kind: str | None, exc: BaseException) -> str:
    """What to say of a photo Pillow refused: named as the kind of image its first bytes say it is (a PNG whose
    header is damaged was "not an image bluezone can read"), with the reason Pillow gave."""
    from PIL import Image, UnidentifiedImageError

    kind = kind or _format_by_signature(data)
    if kind == "PNG" and isinstance(exc, ValueError) and (text := text_past_limits(data)):
        return f"{photo} is a PNG whose {text}: save it again without its metadata, {INSTEAD}"
    if kind is None and isinstance(exc, UnidentifiedImageError):
        return f"{photo} is not an image bluezone can read: give a photo of the poster ({', '.join(PHOTO_FORMATS)}), {INSTEAD}"
    reason = _reason(exc)
    if kind is not None and isinstance(exc, UnidentifiedImageError):  # Pillow keeps its plugin's reason to itself
        try:
            Image.OPEN[kind][0](io.BytesIO(data), "").close()
        except (SyntaxError, IndexError, TypeError, struct.error) as opening:  # what Image.open takes as "not this format"
            short = isinstance(opening, struct.error) or isinstance(opening.__cause__, struct.error)
            reason = "its header is cut short" if short else _reason(opening)  # (not Python's words for a short read)
    article = "an" if kind and kind[0] in "AEFHILMNORSX" else "a"  # (an AVIF, an MPO: said as letters)
    what = f"{article} {kind} image that cannot be decoded" if kind else "not an image bluezone can read"
    return f"{photo} is {what} ({reason}): it may be damaged or cut short; copy or take the photo again, {INSTEAD}"


def _format_by_signature(data: bytes) -> str | None:
    """The photo format whose signature ``data`` starts with (Pillow's own test of each), if any."""
    from PIL import Image

    Image.init()
    for kind in PHOTO_FORMATS:
        accept = Image.OPEN[kind][1] if kind in Image.OPEN else None
        if accept is not None and accept(data[:16]) is True:  # (a str is Pillow's "maybe, but")
            return kind
    return None


def _reason(exc: BaseException) -> str:
    """Pillow's words for a broken image, one short printable line (its type's name when it gave none)."""
    said = printable_line(str(exc)).strip()
    return said[:100] if said else type(exc).__name__


def _is_svg(data: bytes) -> bool:
    """Whether ``data`` is an SVG document (XML whose root is <svg>), from its first kilobyte."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head)


def _refuse_too_large(photo: Path, image: Any) -> None:
    """Refuse, from its header alone, an image larger than a photo of a poster can be read in bounded memory."""
    width, height = image.size
    jpeg = image.format == "JPEG"
    limit = MAX_JPEG_PIXELS if jpeg else MAX_DECODED_PIXELS
    if width * height > limit:
        kind = "" if jpeg else f" as {image.format}; a JPEG up to {MAX_JPEG_PIXELS // 10**6}"
        raise VenueError(TOO_LARGE.format(photo=photo, width=width, height=height, limit=limit // 10**6, kind=kind))


def _refuse_too_long(photo: Path, image: Any) -> None:
    """Refuse an image the QR reader cannot take however few its pixels (16,000,000 x 1: zxing's ValueError
    was said as "not an image Pillow can read")."""
    width, height = image.size
    if max(width, height) > MAX_SIDE:
        raise VenueError(
            f"{photo} is {width} x {height} pixels: longer on one side than the QR reader takes (at most {MAX_SIDE:,});"
            f" crop it to the poster, {INSTEAD}"
        )


def venue_from_photo(photo: Path) -> Venue:
    """The venue of the check-in QR code in ``photo`` (other QR codes beside it left out); the codes of two
    venues are refused, not the first of them taken: the visitor says which."""
    texts = read_qr_texts(Path(photo))
    if not texts:
        raise VenueError(
            f"no QR code found in {photo}: take the photo again with the whole code in the frame, sharp and lit,"
            " or type the URL printed under it (`bluezone checkin URL`)"
        )
    venues: dict[bytes, Venue] = {}
    errors = []
    for text in texts:
        try:
            venue = Venue.from_url(text)
        except VenueError as exc:
            errors.append(str(exc))
        else:
            venues.setdefault(venue.location_id, venue)
    if len(venues) == 1:
        return next(iter(venues.values()))
    if venues:
        names = "; ".join(printable_line(v.description) for v in venues.values())
        raise VenueError(
            f"{photo} holds the check-in codes of {len(venues)} venues ({names}): photograph the poster of the one"
            f" you are at, {INSTEAD}"
        )
    which = f"the QR code in {photo} is not" if len(texts) == 1 else f"none of the {len(texts)} QR codes in {photo} is"
    raise VenueError(f"{which} a venue check-in code: {errors[0]}")
