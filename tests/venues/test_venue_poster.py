"""``bluezone venue poster``: a venue's poster drawn again from its stored files, its QR code read
back with zxing-cpp (what ``checkin --image`` uses); an existing poster kept without --force; a
missing or malformed venue file one line, exit 2, with nothing written."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.errors import VenueError
from bluezone.venues.owner import load_venue
from bluezone.venues.scan import read_qr_texts

T0 = 1_796_400_000.0  # 2026-12-04 16:00 UTC
POSTERS = ("poster.png", "poster.svg")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), obj={"clock": VirtualClock(T0)})


@pytest.fixture()
def cafe(tmp_path: Path) -> tuple[Path, str]:
    """A venue made by `venue create`, and the URL it printed."""
    out = tmp_path / "cafe"
    made = run("venue", "create", "--name", "Café Hoa", "--address", "12 Trần Phú, Hà Nội", "--type", "food-service",
               "--default-minutes", "45", "--out", str(out))
    assert made.exit_code == 0, made.output
    return out, made.stdout.strip()


def _one_line_exit_2(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    return str(result.output)


def test_a_lost_poster_is_drawn_again_as_create_drew_it(cafe: tuple[Path, str]) -> None:
    out, url = cafe
    drawn = {name: (out / name).read_bytes() for name in POSTERS}
    for name in POSTERS:
        (out / name).unlink()
    result = run("venue", "poster", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == url
    assert read_qr_texts(out / "poster.png") == [url]
    assert {name: (out / name).read_bytes() for name in POSTERS} == drawn


@pytest.mark.parametrize("given_file", ["venue.json", "venue-secret.json"])
def test_a_venue_file_and_out_elsewhere(cafe: tuple[Path, str], tmp_path: Path, given_file: str) -> None:
    """venue.json alone (a copy on the print shop's machine) is enough; --out is made if missing."""
    out, url = cafe
    elsewhere = tmp_path / "print" / "again"
    result = run("venue", "poster", str(out / given_file), "--out", str(elsewhere), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["url"] == url and shown["poster_png"] == str(elsewhere / "poster.png")
    assert read_qr_texts(elsewhere / "poster.png") == [url]
    assert (elsewhere / "poster.svg").read_bytes() == (out / "poster.svg").read_bytes()


def test_an_existing_poster_is_kept_without_force(cafe: tuple[Path, str]) -> None:
    out, url = cafe
    (out / "poster.svg").write_text("the owner's own edit")
    png = (out / "poster.png").read_bytes()
    message = _one_line_exit_2(run("venue", "poster", str(out)))
    assert "poster.png already exists" in message and "--force" in message
    assert (out / "poster.svg").read_text() == "the owner's own edit" and (out / "poster.png").read_bytes() == png
    # a lost PNG beside the owner's SVG: the PNG is drawn, the SVG kept (it refused, and --force would have
    # drawn over the edit; README: "draws a lost poster.png, poster.svg again (--force: over ones there)")
    (out / "poster.png").unlink()
    lost = run("venue", "poster", str(out))
    assert lost.exit_code == 0, lost.output
    assert f"{out / 'poster.svg'} kept as it was" in lost.stderr and str(out / "poster.png") in lost.stderr
    assert (out / "poster.png").read_bytes() == png and (out / "poster.svg").read_text() == "the owner's own edit"
    (out / "poster.png").unlink()
    shown = json.loads(run("venue", "poster", str(out), "--json").output)
    assert shown["drawn"] == [str(out / "poster.png")] and shown["kept"] == [str(out / "poster.svg")]
    forced = run("venue", "poster", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    assert read_qr_texts(out / "poster.png") == [url] and "<svg" in (out / "poster.svg").read_text()


def test_a_missing_venue_is_one_line_exit_2(tmp_path: Path) -> None:
    assert "not found" in _one_line_exit_2(run("venue", "poster", str(tmp_path / "nowhere")))
    assert "venue.json not found" in _one_line_exit_2(run("venue", "poster", str(tmp_path)))  # an empty directory
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("venue.json", b"\x89PNG not json", "not a bluezone venue file (not JSON"),
        ("venue.json", b'{"description": "Cafe"}', "no check-in URL in it"),
        ("venue.json", b"[1, 2]", "no check-in URL in it"),
        ("venue.json", b'{"url": "https://e.coronawarn.app?v=1#CAESJAgBEgdD"}', "venue.json: the code is not a CWA venue"),
        ("venue.json", b'{"url": "https://example.com/"}', "venue.json: not a venue check-in URL"),
        ("venue-secret.json", b'{"beacon_key": "00"}', "not a bluezone venue secret file"),
    ],
)
def test_a_malformed_venue_file_is_one_line_exit_2_and_kept(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    assert message in _one_line_exit_2(run("venue", "poster", str(tmp_path)))
    assert [p.name for p in tmp_path.iterdir()] == [name] and (tmp_path / name).read_bytes() == content


def test_out_that_is_a_file_is_one_line_exit_2(cafe: tuple[Path, str]) -> None:
    out, _ = cafe
    message = _one_line_exit_2(run("venue", "poster", str(out), "--out", str(out / "venue.json")))
    assert "is a file, not a directory" in message


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["url", "beacon_key", "payload"]), inner),
    max_leaves=8,
).map(lambda value: json.dumps(value).encode())))
def test_whatever_a_venue_file_holds_it_is_a_venue_or_a_venue_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "venue.json").write_bytes(content)
        try:
            load_venue(Path(tmp))
        except VenueError as exc:
            assert "\n" not in str(exc)


def _ink(font, glyph: str):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageDraw
    import numpy as np

    image = Image.new("L", (48, 48), 255)
    ImageDraw.Draw(image).text((12, 8), glyph, font=font, fill=0)
    return np.asarray(image) < 128


@pytest.mark.parametrize("pair", ["Il", "I1", "l1", "O0"])
def test_the_url_under_the_code_tells_look_alikes_apart(cafe: tuple[Path, str], pair: str) -> None:
    """The poster says 'or run bluezone checkin URL' and an SVG poster is told to check in with the URL
    printed; in DejaVu Sans a capital I and a small l are the same glyph (0 of their ink differs at the
    poster's size), and a base64url URL has both (walk14's café: 'EglDYW...SBIb2E'). A tenth of the
    ink at least tells each pair apart; the SVG asks for the same monospace family."""
    from bluezone.venues.poster import URL_FAMILY, url_font

    a, b = (_ink(url_font(), glyph) for glyph in pair)
    assert (a ^ b).sum() >= 0.1 * (a | b).sum()
    out, url = cafe
    svg = (out / "poster.svg").read_text()
    url_lines = [line for line in svg.splitlines() if line.startswith("<text") and url[:40] in line]
    assert url_lines and all(f'font-family="{URL_FAMILY}"' in line for line in url_lines)
    assert "monospace" in URL_FAMILY and read_qr_texts(out / "poster.png") == [url]
