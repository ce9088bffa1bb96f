"""Reading a venue's QR code from a photo (zxing-cpp), for ``bluezone checkin --image``."""

from __future__ import annotations

import io
from pathlib import Path

from bluezone.errors import VenueError
from bluezone.readfile import read_regular_file
from bluezone.venues.location import Venue

#: A phone camera's photo is at most ~50 MP; a larger image is a decompression bomb, not a poster.
MAX_PHOTO_PIXELS = 64_000_000
#: A phone's photo file is a few MB; a much larger file is not one.
MAX_PHOTO_BYTES = 100 * 1024 * 1024
TOO_LARGE = f"{{photo}} has more pixels than a photo of a poster (at most {MAX_PHOTO_PIXELS // 10**6} megapixels)"
#: What cameras, phones and screenshots write.  Pillow opens some forty formats, and hands EPS
#: (PostScript, a program) to Ghostscript where it is installed: a "photo" is not run.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")


def read_qr_texts(photo: Path) -> list[str]:
    """The text of every QR code zxing-cpp finds in the image (Pillow opens any common format)."""
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise VenueError(f"reading QR photos needs zxing-cpp and Pillow ({exc.name} is missing): pip install zxing-cpp") from None
    data = read_regular_file(photo, MAX_PHOTO_BYTES, "photo", VenueError)  # a FIFO or /dev/zero: refused at once
    try:
        # reads the header only: the size is known before any pixel
        with Image.open(io.BytesIO(data), formats=PHOTO_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_PHOTO_PIXELS:
                raise VenueError(TOO_LARGE.format(photo=photo))
            image.load()
            results = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    except VenueError:
        raise
    except Image.DecompressionBombError:  # larger still: Pillow refuses it while reading the header
        raise VenueError(TOO_LARGE.format(photo=photo)) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise VenueError(f"{photo} is not an image Pillow can read ({type(exc).__name__})") from None
    return [r.text for r in results if r.valid and r.text]


def venue_from_photo(photo: Path) -> Venue:
    """The venue of the (first valid) check-in QR code in ``photo``."""
    texts = read_qr_texts(Path(photo))
    if not texts:
        raise VenueError(f"no QR code found in {photo}")
    errors = []
    for text in texts:
        try:
            return Venue.from_url(text)
        except VenueError as exc:
            errors.append(str(exc))
    raise VenueError(f"the QR code in {photo} is not a venue check-in code: {errors[0]}")
