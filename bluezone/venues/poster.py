"""A printable A4 check-in poster for a venue: the QR code (segno), the venue's name, address
and check-in URL, as PNG (Pillow, 150 dpi) and SVG (vector, for print shops)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import segno

from bluezone.venues.location import Venue

A4_MM = (210, 297)
PNG_DPI = 150
HOW_TO = "Check in: scan with your phone's camera, or run bluezone checkin URL"
PRIVACY = "Your visit stays on your device. Only if you test positive and agree is it shared, encrypted."
URL_FAMILY = "DejaVu Sans Mono, monospace"


def qr_code(venue: Venue) -> segno.QRCode:
    """The venue's URL as a QR code (error correction M: survives a dirty or creased poster)."""
    return segno.make(venue.url, error="m", micro=False)


def _url_lines(url: str, width: int) -> list[str]:
    return [url[i : i + width] for i in range(0, len(url), width)]


def _font(size: int, file: str = "DejaVuSans.ttf"):  # type: ignore[no-untyped-def]
    """DejaVu Sans (shipped with matplotlib, a dependency): Pillow's own font has no Vietnamese."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / file), size)
    except (ImportError, OSError):  # pragma: no cover - a stripped matplotlib
        return ImageFont.load_default(size=size)


def url_font():  # type: ignore[no-untyped-def]
    """The URL under the code, which a visitor may type (`bluezone checkin URL`), in DejaVu Sans Mono:
    in DejaVu Sans a capital I and a small l are the same glyph, and base64url has both."""
    return _font(20, "DejaVuSansMono.ttf")


def poster_png(venue: Venue) -> bytes:
    """The poster as PNG bytes (A4 portrait at 150 dpi)."""
    from PIL import Image, ImageDraw

    width, height = (round(mm / 25.4 * PNG_DPI) for mm in A4_MM)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    title, body, small = (_font(size) for size in (64, 30, 20))

    y = 110
    for line in textwrap.wrap(venue.description, 30):
        draw.text((width / 2, y), line, font=title, fill=0, anchor="mt")
        y += 80
    for line in textwrap.wrap(venue.address, 60):
        draw.text((width / 2, y + 10), line, font=body, fill=0, anchor="mt")
        y += 40

    code = qr_code(venue)
    size = code.symbol_size(scale=1, border=4)[0]
    scale = max(1, int(width * 0.7) // size)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=4)
    qr_image = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    top = y + 60
    image.paste(qr_image, ((width - qr_image.width) // 2, top))
    y = top + qr_image.height + 40

    draw.text((width / 2, y), HOW_TO, font=body, fill=0, anchor="mt")
    y += 60
    for line in _url_lines(venue.url, 90):
        draw.text((width / 2, y), line, font=url_font(), fill=0, anchor="mt")
        y += 26
    draw.text((width / 2, height - 90), PRIVACY, font=small, fill=0, anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(PNG_DPI, PNG_DPI))
    return out.getvalue()


def poster_svg(venue: Venue) -> str:
    """The poster as an SVG document in millimetres (A4 portrait)."""
    w, h = A4_MM
    code = qr_code(venue)
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=1, border=4, xmldecl=False, svgns=False, omitsize=True, nl=False)
    qr_svg = buffer.getvalue().decode("utf-8")
    qr_mm = 140
    top = 70
    qr_svg = qr_svg.replace("<svg ", f'<svg x="{(w - qr_mm) / 2}" y="{top}" width="{qr_mm}" height="{qr_mm}" ', 1)

    def text(y: float, content: str, size: float, weight: str = "normal", family: str = "sans-serif") -> str:
        return (
            f'<text x="{w / 2}" y="{y}" font-family="{family}" font-size="{size}" font-weight="{weight}"'
            f' text-anchor="middle">{escape(content)}</text>'
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm" viewBox="0 0 {w} {h}">',
        f"<title>{escape(venue.description)}</title>",
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
    ]
    y = 30.0
    for line in textwrap.wrap(venue.description, 30):
        parts.append(text(y, line, 11, "bold"))
        y += 13
    for line in textwrap.wrap(venue.address, 60):
        parts.append(text(y, line, 5.5))
        y += 7
    parts.append(qr_svg)
    y = top + qr_mm + 14
    parts.append(text(y, HOW_TO, 5))
    y += 9
    for line in _url_lines(venue.url, 90):
        parts.append(text(y, line, 3.2, family=URL_FAMILY))  # as the PNG's url_font(): I and l told apart
        y += 4.5
    parts.append(text(h - 14, PRIVACY, 3.5))
    parts.append(f"<desc>{escape(venue.url)}</desc>")
    parts.append(f'<a href={quoteattr(venue.url)}><rect x="{(w - qr_mm) / 2}" y="{top}" width="{qr_mm}" height="{qr_mm}" fill="none"/></a>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
