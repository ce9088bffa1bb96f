"""Owner and visitor commands through the CLI: create, show, checkin (URL, photo, past visit),
checkout, checkins, automatic check-out, retention, and bad input (exit 2, nothing stored)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.owner import load_venue_dir

T0 = 1_796_400_000.0  # 2026-12-04 16:00 UTC


def run(clock: VirtualClock, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), obj={"clock": clock})


@pytest.fixture()
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture()
def cafe(tmp_path: Path, clock: VirtualClock) -> dict:
    out = tmp_path / "cafe"
    result = run(
        clock, "venue", "create", "--name", "Café Hoa", "--address", "12 Trần Phú, Hà Nội",
        "--type", "food-service", "--default-minutes", "45", "--out", str(out), "--json",
    )
    assert result.exit_code == 0, result.output
    return {**json.loads(result.output), "out": out}


def test_the_directory_create_makes_is_writable_by_its_owner_alone(tmp_path: Path, clock: VirtualClock) -> None:
    """Under a umask of 0 the venue's new directory was 0777: another user could put their own venue-secret.json in
    place of the owner's (the file is 0600, its folder was not), and `venue beacon` sent that venue, `venue warn` warned
    of it.  The files are readable as before (the poster is for the print shop); the directory is not writable by
    others, whatever the umask."""
    out = tmp_path / "shop"
    old = os.umask(0)
    try:
        result = run(clock, "venue", "create", "--name", "Shop", "--address", "Main St 1", "--out", str(out))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "venue-secret.json").stat().st_mode) == 0o600


def test_create_writes_poster_secrets_and_prints_the_url(tmp_path: Path, clock: VirtualClock) -> None:
    out = tmp_path / "shop"
    result = run(clock, "venue", "create", "--name", "Shop", "--address", "Main St 1", "--out", str(out))
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("https://e.coronawarn.app?v=1#")
    for name in ("poster.png", "poster.svg", "venue.json", "venue-secret.json"):
        assert (out / name).is_file()
    assert stat.S_IMODE(os.stat(out / "venue-secret.json").st_mode) == 0o600
    assert load_venue_dir(out).venue.url == url
    svg = (out / "poster.svg").read_text()
    assert "Shop" in svg and "<svg" in svg
    assert ">Check in: scan with your phone's camera, or run bluezone checkin URL<" in svg.replace("&#x27;", "'")  # one space
    # the same directory is never overwritten
    again = run(clock, "venue", "create", "--name", "Other", "--address", "x", "--out", str(out))
    assert again.exit_code == 2 and "already holds a venue" in again.output
    assert load_venue_dir(out).venue.url == url


def test_show_decodes_the_url(cafe: dict, clock: VirtualClock) -> None:
    result = run(clock, "venue", "show", cafe["url"], "--json")
    assert result.exit_code == 0
    shown = json.loads(result.output)
    assert shown["description"] == "Café Hoa" and shown["type"] == "food-service"
    assert shown["default_minutes"] == 45 and shown["location_id"] == cafe["location_id"]


def test_show_as_text_says_a_missing_default_stay_plainly(tmp_path: Path, clock: VirtualClock) -> None:
    made = run(clock, "venue", "create", "--name", "Shop", "--address", "Main St 1", "--out", str(tmp_path / "s"))
    result = run(clock, "venue", "show", made.stdout.strip())
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["default_minutes"] == "-" and lines["stay_minutes"] == "15"
    assert "None" not in result.stdout


def test_checkin_checkout_and_list(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    db = str(tmp_path / "visitor.db")
    assert run(clock, "checkin", cafe["url"], "--db", db).exit_code == 0
    again = run(clock, "checkin", cafe["url"], "--db", db)
    assert again.exit_code == 2 and "already checked in" in again.output
    clock.advance(20 * 60)
    out = run(clock, "checkout", "--db", db, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["minutes"] == 20.0
    assert run(clock, "checkout", "--db", db).exit_code == 2  # not checked in any more
    listed = json.loads(run(clock, "checkins", "--db", db, "--json").output)["checkins"]
    assert len(listed) == 1 and listed[0]["checked_out"] and listed[0]["description"] == "Café Hoa"


def test_checkout_ends_a_beacons_check_in_beside_the_qr_one(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    """A QR check-in at the café and the shop's beacon's beside it: `checkout` ends both (the visitor left);
    --json keeps the newest's fields and lists the other under also_ended."""
    from bluezone.venues.checkins import check_in_by_beacon
    from bluezone.venues.location import Venue

    db = str(tmp_path / "visitor.db")
    assert run(clock, "checkin", cafe["url"], "--db", db).exit_code == 0
    with SightingStore.open(db) as store:
        assert check_in_by_beacon(store, Venue.create("Shop", "3 Main St"), T0 + 600, start=T0 + 300) is not None
    clock.advance(10 * 60)
    out = run(clock, "checkout", "--db", db, "--json")
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert (shown["description"], shown["minutes"]) == ("Shop", 5.0)
    assert [(v["description"], v["minutes"]) for v in shown["also_ended"]] == [("Café Hoa", 10.0)]
    assert run(clock, "checkout", "--db", db).exit_code == 2  # nothing open any more


def test_automatic_checkout_after_the_default_stay(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    db = str(tmp_path / "visitor.db")
    run(clock, "checkin", cafe["url"], "--db", db)
    clock.advance(3 * 3600)
    [visit] = json.loads(run(clock, "checkins", "--db", db, "--json").output)["checkins"]
    assert visit["minutes"] == 45.0 and not visit["open"] and not visit["checked_out"]
    assert run(clock, "checkout", "--db", db).exit_code == 2


def test_a_new_checkin_ends_the_open_one(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    db = str(tmp_path / "visitor.db")
    other = run(clock, "venue", "create", "--name", "Market", "--address", "Chợ", "--out", str(tmp_path / "m"), "--json")
    run(clock, "checkin", cafe["url"], "--db", db)
    clock.advance(600)
    result = json.loads(run(clock, "checkin", json.loads(other.output)["url"], "--db", db, "--json").output)
    assert result["ended"]["description"] == "Café Hoa" and result["ended"]["minutes"] == 10.0


def test_checkin_from_the_poster_photo(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    db = str(tmp_path / "visitor.db")
    result = run(clock, "checkin", "--image", str(cafe["out"] / "poster.png"), "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checkin"]["source"] == "image"


def test_the_svg_poster_given_as_a_photo_says_what_to_use_instead(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    """`venue create` writes poster.svg beside poster.png; `checkin --image poster.svg` said "poster.svg is
    not an image Pillow can read (UnidentifiedImageError)".  Now it says what it is and what works."""
    db = tmp_path / "visitor.db"
    result = run(clock, "checkin", "--image", str(cafe["out"] / "poster.svg"), "--db", str(db))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "poster.svg is an SVG drawing, not a photo" in result.output and "bluezone checkin URL" in result.output
    assert "UnidentifiedImageError" not in result.output and not db.exists()


def test_a_postscript_photo_is_never_handed_to_ghostscript(tmp_path: Path, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow opens EPS with Ghostscript where it is installed: `checkin --image` ran the PostScript
    program of whatever file it was given.  Only the formats cameras and phones write are opened."""
    from PIL import EpsImagePlugin

    ran: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: ran.append(args))
    photo = tmp_path / "poster.eps"
    photo.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n")
    result = run(clock, "checkin", "--image", str(photo), "--db", str(tmp_path / "v.db"))
    assert result.exit_code == 2 and "not an image" in result.output, result.output
    assert ran == []


def test_photo_without_a_code_is_one_clear_error(tmp_path: Path, clock: VirtualClock) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    db = tmp_path / "visitor.db"
    result = run(clock, "checkin", "--image", str(blank), "--db", str(db))
    assert result.exit_code == 2 and "no QR code" in result.output
    # walk15: and what to do about it (the poster prints its URL under the code)
    assert "or type the URL printed under it (`bluezone checkin URL`)" in result.output
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    result = run(clock, "checkin", "--image", str(not_image), "--db", str(db))
    assert result.exit_code == 2 and "not an image" in result.output
    assert "give a photo of the poster (" in result.output and "`bluezone checkin URL`" in result.output
    assert not db.exists()


def _png_with_a_broken_chunk() -> bytes:
    """A grey PNG whose image data goes on in a chunk with a non-letter type: Pillow's SyntaxError."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"".join(b"\x00" + bytes(64) for _ in range(48)))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", pixels[:10]) + chunk(b"I\xbaND", pixels[10:]) + chunk(b"IEND", b"")


def test_a_broken_photo_is_one_clear_error_whatever_pillow_raises(tmp_path: Path, clock: VirtualClock) -> None:
    """attack12 (fuzzing photos): a broken PNG chunk was 'Error: SyntaxError: broken PNG file', a cut AVIF
    'SyntaxError' or 'RuntimeError: Failed to decode', each exit 1 instead of one line, exit 2; then 'not an image
    Pillow can read' (cli28: it is one, damaged), now with the format Pillow read and its words."""
    import io

    from PIL import Image, features

    photos = {"broken.png": _png_with_a_broken_chunk()}
    if features.check("avif"):  # Pillow >= 11.2 built with libavif, as the wheels are
        avif = io.BytesIO()
        Image.new("RGB", (64, 48), (1, 2, 3)).save(avif, "AVIF")
        photos["cut.avif"] = avif.getvalue()[:-10]
    for name, data in photos.items():
        (tmp_path / name).write_bytes(data)
        result = run(clock, "checkin", "--image", str(tmp_path / name), "--db", str(tmp_path / "visitor.db"))
        assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
        assert f"{name} is a" in result.output and "image that cannot be decoded (" in result.output, result.output
    assert not (tmp_path / "visitor.db").exists()


def test_a_photo_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, clock: VirtualClock) -> None:
    """A FIFO named as the photo hung checkin for ever; /dev/zero would never end."""
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    for photo in (fifo, Path("/dev/zero")):
        result = run(clock, "checkin", "--image", str(photo), "--db", str(tmp_path / "visitor.db"))
        assert result.exit_code == 2 and "not a photo" in result.output, result.output
    missing = run(clock, "checkin", "--image", str(tmp_path / "none.jpg"), "--db", str(tmp_path / "visitor.db"))
    assert missing.exit_code == 2 and "No such file" in missing.output


@pytest.mark.parametrize("size", [(9_000, 9_000), (8_000, 8_000), (4_001, 4_000)])
def test_a_huge_photo_is_one_clear_error(tmp_path: Path, clock: VirtualClock, size: tuple[int, int]) -> None:
    """A small file that decodes to many megapixels (a decompression bomb: Pillow refused it with an
    exit-1 'DecompressionBombError', or only warned and loaded 81 MP; a 64 MP PNG was read, 487 MiB)
    is refused from its header, before any pixel is decoded: a PNG is decoded whole, so 16 MP at most."""
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    Image.new("1", size, 1).save(bomb)
    assert bomb.stat().st_size < 200_000
    result = run(clock, "checkin", "--image", str(bomb), "--db", str(tmp_path / "visitor.db"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {bomb} has more pixels than a photo of a poster ({size[0]} x {size[1]}; at most 16 megapixels as PNG;"
        " a JPEG up to 120)"
    )
    assert not (tmp_path / "visitor.db").exists()


def test_a_jpeg_past_pillows_own_limit_is_one_clear_error(tmp_path: Path, clock: VirtualClock) -> None:
    from PIL import Image

    bomb = tmp_path / "bomb.jpg"
    Image.new("L", (20_000, 10_000), 255).save(bomb, quality=1)  # 200 MP: Pillow refuses it while opening
    result = run(clock, "checkin", "--image", str(bomb), "--db", str(tmp_path / "visitor.db"))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "has more pixels than a photo of a poster" in result.output and "120 megapixels" in result.output


def _poster_in_a_photo(poster: Path, photo: Path, size: tuple[int, int]) -> None:
    """The poster, as a camera of ``size`` pixels sees it on a wall: a third of the frame's height."""
    from PIL import Image

    with Image.open(poster) as p:
        frame = Image.new("L", size, 235)
        h = size[1] // 3
        frame.paste(p.convert("L").resize((h * p.width // p.height, h)), (size[0] // 3, size[1] // 3))
    frame.save(photo, quality=90)


def test_a_large_jpeg_is_read_at_a_fraction_of_its_size(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    """A 48 MP phone photo (8000 x 6000, JPEG) is decoded at half its size, grey only: the code is found."""
    photo = tmp_path / "wall.jpg"
    _poster_in_a_photo(cafe["out"] / "poster.png", photo, (8000, 6000))
    result = run(clock, "checkin", "--image", str(photo), "--db", str(tmp_path / "visitor.db"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checkin"]["source"] == "image"


def test_reading_a_64_megapixel_jpeg_takes_the_memory_of_a_16_megapixel_one(tmp_path: Path, cafe: dict) -> None:
    """Decoded whole, this grey 64 MP JPEG peaked at 304 MiB (the whole process; an RGB one 487 MiB);
    at a quarter of its pixels, 111 MiB.  Measured as VmHWM in a process of its own (ru_maxrss would
    start from this one's peak: fork and exec keep it)."""
    import subprocess
    import sys

    photo = tmp_path / "wall.jpg"
    _poster_in_a_photo(cafe["out"] / "poster.png", photo, (8000, 8000))
    script = (
        "import sys; from pathlib import Path; from bluezone.venues.scan import read_qr_texts;"
        " texts = read_qr_texts(Path(sys.argv[1]));"
        " hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1];"
        " print(len(texts), int(hwm) // 1024)"
    )
    out = subprocess.run([sys.executable, "-c", script, str(photo)], capture_output=True, text=True, check=True).stdout
    found, peak_mib = (int(x) for x in out.split())
    assert found == 1 and peak_mib < 200, peak_mib


def test_past_visit_and_its_bad_forms(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    db = tmp_path / "visitor.db"

    def at(seconds_ago: float) -> str:
        import datetime as dt

        return dt.datetime.fromtimestamp(T0 - seconds_ago, dt.UTC).isoformat()

    ok = run(clock, "checkin", cafe["url"], "--start", at(7200), "--end", at(5400), "--db", str(db), "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["checkin"]["minutes"] == 30.0
    bad = [
        (at(6000), at(3000), "overlaps"),
        (at(600), at(-600), "future"),
        (at(3000), at(3600), "end after it starts"),
        (at(15 * 86400), at(15 * 86400 - 600), "14 days"),
        ("yesterday", at(0), "ISO 8601"),
    ]
    for start, end, message in bad:
        result = run(clock, "checkin", cafe["url"], "--start", start, "--end", end, "--db", str(db))
        assert result.exit_code == 2 and message in result.output, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1
    with SightingStore.open(db, purge_now=T0) as store:
        assert len(store.checkin_rows()) == 1


@pytest.mark.parametrize("start, end", [("18:30", "2026-12-04T15:15"), ("2026-12-04T14:30", "quarter past three")])
def test_a_mistyped_past_visit_leaves_no_store_behind(
    tmp_path: Path, cafe: dict, clock: VirtualClock, start: str, end: str
) -> None:
    """A newcomer's first `checkin URL --start 18:30 ...` was refused, yet left a new, empty store at --db."""
    db = tmp_path / "new.db"
    result = run(clock, "checkin", cafe["url"], "--start", start, "--end", end, "--db", str(db))
    assert result.exit_code == 2 and "ISO 8601" in result.output, result.output
    assert not db.exists() and not list(tmp_path.glob("new.db*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["checkin", "https://e.coronawarn.app?v=1#QUJD"], "not a CWA venue payload"),
        # the poster's URL with its last character lost in copying: said so, not in protobuf's words
        (["checkin", "https://e.coronawarn.app?v=1#CAESKAgBEglDYWbDqSBIb2EaGTEyIFRy4bqnbiBQaMO6LCBIw6AgTuG7mWkaFAgBGhDgSLL_"
          "fONNOfVgJOIhAitnIgYIARAEGC"], "not a CWA venue payload (cut short or damaged: copy the whole URL"),
        (["checkin", "https://example.org/"], "not a venue check-in URL"),
        (["venue", "show", "nonsense"], "not a venue check-in URL"),
        (["venue", "create", "--name", "x" * 101, "--address", "a", "--out", "OUT"], "at most 100"),
        (["venue", "create", "--name", "a", "--address", "a", "--type", "zoo", "--out", "OUT"], "unknown venue type"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, clock: VirtualClock, args: list[str], message: str) -> None:
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = run(clock, *args, "--db", str(tmp_path / "v.db")) if args[0] == "checkin" else run(clock, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "v.db").exists() and not (tmp_path / "out").exists()


def test_a_file_or_folder_given_for_the_url_is_told_what_to_give(cafe: dict, clock: VirtualClock, tmp_path: Path) -> None:
    """`checkin photo.jpg` (no --image) and `venue show cafe/` said only 'not a venue check-in URL' (user29)."""
    out, db = cafe["out"], tmp_path / "v.db"
    cases = [
        (["checkin", str(out / "poster.png"), "--db", str(db)],
         f"{out / 'poster.png'} is a file, not a check-in URL: a photo of the poster goes with --image"
         f" (bluezone checkin --image {out / 'poster.png'})"),
        (["checkin", str(out), "--db", str(db)], f"{out} is a venue's folder, not a check-in URL: the URL is printed"),
        (["venue", "show", str(out)], f"{out} is a venue's folder, not a check-in URL"),
        (["venue", "show", str(out / "venue.json")], f"{out / 'venue.json'} is a venue's file, not a check-in URL"),
        (["venue", "show", str(out / "poster.png")], "not a venue check-in URL (expected"),  # no --image to point to
    ]
    for args, message in cases:
        result = run(clock, *args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert 'kept as "url" in the folder\'s venue.json' in run(clock, "venue", "show", str(out)).output
    assert not db.exists()
    assert json.loads((out / "venue.json").read_text())["url"] == cafe["url"]  # where the message says it is


@pytest.mark.parametrize(
    "start, end, note",
    [
        ("2026-12-09T11:00Z", "2026-12-09T15:00Z", "note: Wedding starts 2026-12-09 11:00 UTC: checked in now all the same"),
        ("2026-12-02T11:00Z", "2026-12-02T15:00Z", "note: Wedding ended 2026-12-02 15:00 UTC: checked in now all the same"),
        ("2026-12-04T15:00Z", "2026-12-04T19:00Z", None),  # T0 is 16:00: the event is on
    ],
)
def test_a_check_in_now_outside_an_events_times_is_kept_and_said(
    tmp_path: Path, clock: VirtualClock, start: str, end: str, note: str | None
) -> None:
    """An invitation's QR code scanned days before the wedding checked in at once without a word (user29); CWA warns
    before an event's start and after its end, and keeps the check-in, as this does."""
    import time

    out, db = tmp_path / "wedding", tmp_path / "v.db"
    with pytest.MonkeyPatch.context() as zone:
        zone.setenv("TZ", "UTC")
        time.tzset()  # (the variable alone moved nothing: the note said '+14' under TZ=Pacific/Kiritimati)
        try:
            made = run(VirtualClock(T0 - 5 * 86400), "venue", "create", "--name", "Wedding", "--address", "Hall 3", "--type",
                       "private-event", "--start", start, "--end", end, "--out", str(out))  # made before the event, as owners do
            result = run(clock, "checkin", made.stdout.strip(), "--db", str(db))
        finally:
            zone.undo()
            time.tzset()
    assert made.exit_code == 0, made.output
    assert result.exit_code == 0 and result.stdout.startswith("checked in at Wedding (Hall 3)"), result.output
    assert result.stderr == ("" if note is None else note + " (check out with `bluezone checkout`, or give a visit's"
                             " times with --start and --end)\n")
    assert "[here now" in run(clock, "checkins", "--db", str(db)).stdout


@pytest.mark.parametrize("zone", ["Asia/Ho_Chi_Minh", "America/Los_Angeles"])
@pytest.mark.parametrize(
    "start, end",
    [
        ("0001-01-01T00:00", "2026-12-04T11:00"),  # no zone: this machine's, before year 1 in UTC+7
        ("2026-12-04T10:00Z", "9999-12-31T23:59"),  # and after year 9999 in UTC-8
        ("2026-12-04T10:00Z", "9999-12-31T23:59-14:00"),  # parsed, but past year 9999 in UTC
        ("0001-01-01T00:00+14:00", "2026-12-04T11:00Z"),
    ],
)
def test_times_at_the_ends_of_the_calendar_are_one_line_exit_2(
    tmp_path: Path, cafe: dict, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, zone: str, start: str, end: str
) -> None:
    """They ended in 'ValueError: year 0 is out of range' or 'year 10000 ...' (exit 1), from the
    check-in, the event of a new venue or an owner's warning."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for args in (
            ["checkin", cafe["url"], "--start", start, "--end", end, "--db", str(tmp_path / "v.db")],
            ["venue", "create", "--name", "Fest", "--address", "a", "--type", "cultural-event",
             "--start", start, "--end", end, "--out", str(tmp_path / "fest")],
            ["venue", "warn", str(cafe["out"]), "--server", "http://keys.test", "--code", "12345678",
             "--start", start, "--end", end, "--yes"],
        ):
            result = run(clock, *args)
            assert result.exit_code == 2, (args, result.output)
            assert len(result.output.strip().splitlines()) == 1 and "between 1970 and 9999" in result.output, result.output
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert not (tmp_path / "fest").exists()


def test_checkins_are_purged_with_sightings_after_14_days(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    db = str(tmp_path / "visitor.db")
    run(clock, "checkin", cafe["url"], "--db", db)
    clock.advance(14 * 86400 - 3600)
    assert len(json.loads(run(clock, "checkins", "--db", db, "--json").output)["checkins"]) == 1
    clock.advance(3600 + 46 * 60)  # 14 days after the automatic check-out, and a minute
    assert json.loads(run(clock, "checkins", "--db", db, "--json").output)["checkins"] == []


def test_venue_beacon_runs_on_the_emulated_radio(cafe: dict, clock: VirtualClock) -> None:
    result = run(clock, "venue", "beacon", str(cafe["out"]), "--backend", "emulated", "--duration", "700", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"venue": "Café Hoa", "frames_sent": 700, "epochs": 2}
    text = run(clock, "venue", "beacon", str(cafe["out"]), "--backend", "emulated", "--duration", "700")
    start, *on_air = text.stderr.splitlines()
    assert text.exit_code == 0 and start == (
        "venue beacon for Café Hoa on emulated:venue-beacon; a status line every 10 minutes (Ctrl-C stops)"
    )
    # a beacon runs for days: a line at each new epoch (the 10-minute key), so its journal shows it on air;
    # the first run left the clock at 16:11:40, so the next epoch begins 500 frames in, at 16:20
    assert len(on_air) == 1 and on_air[0].endswith("  on air: 500 frames in 2 epoch(s)"), text.stderr
    refused = run(clock, "venue", "beacon", str(cafe["out"]), "--backend", "carrier-pigeon")
    assert refused.exit_code == 2 and refused.output.strip().splitlines()[-1] == (  # the choices the beacon takes:
        "Error: unknown radio backend 'carrier-pigeon': use auto, bluez[:hciN] or emulated"  # not bumble, refused below
    )
    missing = run(clock, "venue", "beacon", str(cafe["out"] / "nowhere"))
    assert missing.exit_code == 2 and "not found" in missing.output
    # bumble cannot send 0x4256 service data: said before a dongle is opened (it was exit 1 on the
    # dongle, or on the first frame once one was plugged in)
    bumble = run(clock, "venue", "beacon", str(cafe["out"]), "--backend", "bumble:usb:0")
    assert bumble.exit_code == 2 and bumble.output.strip().splitlines()[-1].startswith(  # then "(see '... --help')"
        "Error: a venue beacon sends through BlueZ (--backend auto or bluez:hciN) or the emulated radio;"
        " the bumble backend cannot send its adverts yet"
    )


def test_upload_counts_visits_not_the_reports_they_split_into(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    """One visit across UTC midnight goes as two reports; the list before sending says one
    check-in (it said 'checked in at 2 place(s)').  A dry run: a real upload asks the server what the
    code is for before it lists the check-ins (there is no server here)."""
    from bluezone.crypto.keys import DailyKey

    now = clock.now()
    midnight = now - now % 86400
    db = tmp_path / "f0.db"
    with SightingStore.open(db) as store:
        store.save_daily_key(DailyKey.generate(midnight - 86400 + 3600))
    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

    result = run(clock, "checkin", cafe["url"], "--db", str(db), "--start", iso(midnight - 1800), "--end", iso(midnight + 1800))
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", str(db), "--include-today",
              "--dry-run"],
        obj={"clock": clock},
    )
    assert result.exit_code == 0, result.output
    assert "You also checked in 1 time(s) since then" in result.stderr
    assert result.stderr.count("Café") == 2  # its two halves, as they are sent


def test_the_public_venue_file_instead_of_the_directory_says_what_to_give(cafe: dict, clock: VirtualClock) -> None:
    """`venue warn cafe/venue.json` (the file beside the secrets) was '... not a bluezone venue
    secret file (KeyError)'; it says to give the directory."""
    public = cafe["out"] / "venue.json"
    result = run(clock, "venue", "warn", str(public), "--server", "http://127.0.0.1:9", "--code", "12345678",
                 "--start", "2026-12-04T08:00", "--end", "2026-12-04T09:00", "--yes")
    assert result.exit_code == 2, result.output
    assert "give the directory" in result.output and "KeyError" not in result.output
    assert load_venue_dir(cafe["out"] / "venue-secret.json").venue.url == cafe["url"]  # the secret file itself works


@pytest.mark.timeout(30)  # the FIFO hung before
@pytest.mark.parametrize("kind, message", [("fifo", "is a FIFO"), ("device", "is a device"), ("huge", "too large")])
@pytest.mark.parametrize("command", ["warn", "beacon"])
def test_a_secret_file_that_is_no_small_regular_file_is_refused_at_once(
    tmp_path: Path, clock: VirtualClock, kind: str, message: str, command: str
) -> None:
    """The venue's secrets were read with read_text: a FIFO named instead hung `venue beacon` and
    `venue warn` for ever, /dev/zero filled the memory (MemoryError, exit 1)."""
    named = tmp_path / "venue-secret.json"
    if kind == "fifo":
        os.mkfifo(named)
    elif kind == "device":
        named.symlink_to("/dev/null")  # (not /dev/zero: without the fix this test would fill the memory)
    else:
        named.write_bytes(b"{" + b" " * 100_000 + b"}")
    args = (["--server", "http://127.0.0.1:9", "--code", "12345678", "--start", "2026-12-04T08:00Z",
             "--end", "2026-12-04T09:00Z", "--yes"] if command == "warn" else ["--duration", "1", "--backend", "emulated"])
    result = run(clock, "venue", command, str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output




@pytest.mark.timeout(30)  # the FIFO hung before
@pytest.mark.parametrize("planted", ["link", "fifo"])
@pytest.mark.parametrize("command", ["create", "poster"])
def test_a_planted_temporary_name_neither_redirects_nor_holds_the_venue_files(
    tmp_path: Path, clock: VirtualClock, planted: str, command: str
) -> None:
    """Each file was first written as `.<name>.tmp`, opened following links: whoever can write into the
    venue's folder (a shared drive) put a link there, and `venue create` wrote the beacon key into the file
    it named (chmod 0600; venue-secret.json then a link to it); a FIFO there held it for ever.  Now each
    file is first written under a new random name (``writefile``), so a planted name is simply not used."""
    out = tmp_path / "cafe"
    if command == "poster":
        assert run(clock, "venue", "create", "--name", "Cafe", "--address", "a", "--out", str(out)).exit_code == 0
    out.mkdir(exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    names = ["venue-secret.json", "venue.json", "poster.png", "poster.svg"] if command == "create" else ["poster.png", "poster.svg"]
    for name in names:
        tmp = out / f".{name}.tmp"
        if planted == "link":
            tmp.symlink_to(victim)
        else:
            os.mkfifo(tmp)
    if command == "create":
        result = run(clock, "venue", "create", "--name", "Cafe", "--address", "a", "--out", str(out))
    else:
        result = run(clock, "venue", "poster", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    for name in names:  # the planted names are not ours: left as they are, neither written through nor opened
        assert (out / name).is_file() and not (out / name).is_symlink()
        planted_there = os.lstat(out / f".{name}.tmp").st_mode
        assert stat.S_ISLNK(planted_there) if planted == "link" else stat.S_ISFIFO(planted_there)
    assert stat.S_IMODE((out / "venue-secret.json").stat().st_mode) == 0o600
    assert load_venue_dir(out).venue.description == "Cafe"

@pytest.mark.wall_clock
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_beacon_closes_its_radio_and_says_what_it_sent(cafe: dict, sig: signal.Signals) -> None:
    """`systemctl stop` (SIGTERM) killed a beacon on the spot: no closing line, the radio never closed
    (BlueZ's advert left to the D-Bus disconnect), exit -15; Ctrl-C said 'Interrupted', exit 130. Now
    both stop it as `bluezone run` stops: the radio closed, the totals, exit 0 (walk12)."""
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluezone.cli", "venue", "beacon", str(cafe["out"]), "--backend", "emulated"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None and "venue beacon for Café Hoa on" in proc.stderr.readline()  # on air
        time.sleep(1.5)  # a frame or two
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # on the wall clock: a run across a 10-minute boundary (07:20:00 in walk17's full suite) is two epochs
    epochs = {beacon.epoch_of(started), beacon.epoch_of(time.time())}
    assert proc.returncode == 0, err
    assert out.startswith("venue beacon for Café Hoa: "), out
    assert f" frames in {len(epochs)} epoch(s)" in out or (len(epochs) == 2 and " frames in 1 epoch(s)" in out), out
    assert "Traceback" not in err and "Interrupted" not in err, err

#: The child: `bluezone venue beacon` sent SIGTERM (or SIGHUP) as it loads, before its stop is in place (as it reads
#: the venue's directory, the first step after its imports).
BEACON_LOADING = """
import os, signal, sys
import bluezone.venues.owner

real, sent = bluezone.venues.owner.load_venue_dir, getattr(signal, sys.argv[2])

def load_venue_dir(*args, **kwargs):
    os.kill(os.getpid(), sent)
    return real(*args, **kwargs)

bluezone.venues.owner.load_venue_dir = load_venue_dir
from bluezone.cli import main
sys.argv = ["bluezone", "venue", "beacon", sys.argv[1], "--backend", "emulated"]
main()
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_as_the_beacon_loads_is_its_clean_stop(cafe: dict, sig: str) -> None:
    """As `bluezone run`'s: before, it ended the beacon by the signal (exit -15, -1), where a later one is the stop."""
    done = subprocess.run([sys.executable, "-c", BEACON_LOADING, str(cafe["out"]), sig], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout == "venue beacon for Café Hoa: 0 frames in 0 epoch(s)\n", done.stdout
    assert "Traceback" not in done.stderr


def test_venue_beacon_without_bluetooth_does_not_advise_bumble(
    cafe: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # --backend auto failed with auto's advice "or give bluezone a controller of its own
    # (--backend bumble:usb:0)", which the beacon then refuses: the advice must be one that works
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    result = CliRunner().invoke(cli, ["venue", "beacon", str(cafe["out"]), "--duration", "1"], obj={})
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "D-Bus" in error and "bumble" not in error
    # and no start line above it, which read as a beacon on air ("venue beacon for Café Hoa on bluez (Ctrl-C stops)")
    assert result.output.strip().splitlines() == [error], result.output


def test_upload_lists_the_checkins_in_local_time_as_checkins_does(
    tmp_path: Path, cafe: dict, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """upload listed a visit at 13:10 in Hà Nội as '06:10', unlabelled (the UTC of its report), beside
    `bluezone checkins`, which says '13:10 +07': the list is there for the person to recognise the visits."""
    import time

    db = str(tmp_path / "v.db")
    assert run(clock, "checkin", cafe["url"], "--start", "2026-12-04T06:10:00+00:00", "--end", "2026-12-04T06:55:00+00:00",
               "--db", db).exit_code == 0
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    try:
        listed = run(clock, "checkins", "--db", db).output
        # a device with check-ins only, a dry run: nothing reaches the (absent) server (a real upload first asks it
        # what the code is for, then lists the check-ins)
        result = CliRunner().invoke(cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", db,
                                          "--dry-run"], obj={"clock": clock})
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "2026-12-04 13:10 +07" in listed
    assert result.exit_code == 0 and "  2026-12-04 13:10 +07    50 min  Café Hoa" in result.stderr  # on the 10-min grid, result.stderr


def test_a_poster_made_elsewhere_cannot_turn_the_text_around(tmp_path: Path, clock: VirtualClock) -> None:
    """Another app's poster whose name holds U+202E (right-to-left override) and a zero-width space:
    the check-in works, and every line bluezone shows (checkin, checkins, show, a poster made from it)
    has them as <U+XXXX>, never raw; `venue create` refuses such a name."""
    from bluezone.keyformat import presence_pb2 as pb
    from bluezone.venues.location import Venue
    from bluezone.venues.poster import poster_svg

    name = "Nhà thuốc \u202egpj.exe\u200b"
    payload = pb.QRCodePayload(
        version=1,
        location_data=pb.TraceLocation(version=1, description=name, address="14 Trần Phú\u2066"),
        crowd_notifier_data=pb.CrowdNotifierData(version=1, cryptographic_seed=bytes(16)),
        vendor_data=pb.CWALocationData(version=1, type=3).SerializeToString(),
    ).SerializeToString()
    url = Venue.from_payload(payload).url
    db = str(tmp_path / "s.db")
    outputs = [
        run(clock, "checkin", url, "--db", db),
        run(clock, "checkins", "--db", db),
        run(clock, "venue", "show", url),
        run(clock, "checkout", "--db", db),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert "\u202e" not in result.output and "\u200b" not in result.output and "\u2066" not in result.output
    assert "Nhà thuốc <U+202E>gpj.exe<U+200B> (14 Trần Phú<U+2066>)" in outputs[0].output
    assert "\u202e" not in poster_svg(Venue.from_payload(payload))
    refused = run(clock, "venue", "create", "--name", name, "--address", "x", "--out", str(tmp_path / "v"))
    assert refused.exit_code == 2 and "U+202E" in refused.output and not (tmp_path / "v").exists()


@pytest.mark.parametrize(
    ("command", "start", "end", "says"),
    [
        ("create", "1970-01-01T00:00Z", "1970-01-01T01:00Z", "the event ended at 1970-01-01 01:00 UTC, before now (2026-12-04"),
        ("create", "2026-11-01T10:00Z", "2026-11-02T10:00Z", "the event ended at 2026-11-02 10:00 UTC, before now"),
        ("create", "1970-01-01T00:00Z", "2026-12-24T22:00Z", "the event's start must be after 1970-01-01 00:00 UTC"),
        ("create", "2026-12-25T10:00Z", "2026-12-24T22:00Z", "start (2026-12-25 10:00 UTC) must come before its end (2026-12-24 22:00 UTC)"),
        ("checkin", "1970-01-01T00:00Z", "1970-01-01T01:00Z", "the visit starts more than 14 days ago"),
        ("warn", "1970-01-01T00:00Z", "1970-01-01T01:00Z", "the warning starts more than 14 days ago"),
    ],
)
def test_times_out_of_range_say_what_is_wrong(
    tmp_path: Path, cafe: dict, clock: VirtualClock, command: str, start: str, end: str, says: str
) -> None:
    """`venue create --start 1970-01-01T00:00Z` said "the event's start must come before its end"
    (the code's 0 means "no start", and the event had ended 56 years ago)."""
    args = {
        "create": ["venue", "create", "--name", "Fest", "--address", "a", "--type", "cultural-event", "--out", str(tmp_path / "fest")],
        "checkin": ["checkin", cafe["url"], "--db", str(tmp_path / "v.db")],
        "warn": ["venue", "warn", str(cafe["out"]), "--server", "http://keys.test", "--code", "12345678", "--yes"],
    }[command]
    result = run(clock, *args, "--start", start, "--end", end)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert says in result.output, result.output
    assert not (tmp_path / "fest").exists()


def test_an_event_to_come_or_under_way_is_created(tmp_path: Path, clock: VirtualClock) -> None:
    for i, (start, end) in enumerate([("2026-12-04T15:00Z", "2026-12-04T20:00Z"), ("2027-03-01T18:00Z", "2027-03-01T23:00Z")]):
        out = tmp_path / f"fest{i}"
        result = run(clock, "venue", "create", "--name", "Fest", "--address", "a", "--type", "cultural-event",
                     "--start", start, "--end", end, "--out", str(out), "--json")
        assert result.exit_code == 0, result.output
        assert load_venue_dir(out).venue.end == int(dt.datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp())


def test_an_owner_who_answers_no_is_told_nothing_was_sent(cafe: dict, clock: VirtualClock) -> None:
    """'n' to "Send the warning?" said click's bare "Aborted!": now that nothing went and the code still works."""
    result = CliRunner().invoke(
        cli, ["venue", "warn", str(cafe["out"]), "--server", "http://127.0.0.1:9", "--code", "12345678",
              "--start", "2026-12-04T08:00Z", "--end", "2026-12-04T09:00Z"],
        input="n\n", obj={"clock": clock},
    )
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == "nothing sent: the code is not used up (it stays valid until it expires)"


@pytest.mark.parametrize(("start", "end", "moved"), [("08:03", "09:03", True), ("08:00", "09:00", False)])
def test_an_owner_is_told_why_the_window_moved(
    cafe: dict, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, start: str, end: str, moved: bool
) -> None:
    """08:03-09:03 was shown as '08:00 UTC .. 09:00 UTC' without a word (walk14: read as a mistake); the
    prompt says what was asked and that it went on the 10-minute grid of check-ins."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        result = CliRunner().invoke(
            cli, ["venue", "warn", str(cafe["out"]), "--server", "http://127.0.0.1:9", "--code", "12345678",
                  "--start", f"2026-12-04T{start}Z", "--end", f"2026-12-04T{end}Z"],
            input="n\n", obj={"clock": clock},
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert result.exit_code == 1, result.output
    about = next(line for line in result.output.splitlines() if line.startswith("About to warn"))
    assert "08:00 UTC .. 2026-12-04 09:00 UTC" in about, about
    assert ("asked 2026-12-04 08:03 UTC .. 2026-12-04 09:03 UTC: put on the 10-minute grid" in about) is moved, about


def test_a_warning_with_nothing_on_stdin_says_to_pass_yes(cafe: dict, clock: VirtualClock) -> None:
    """An owner's script (cron, a pipe) without --yes: "Send the warning? [y/N]: Aborted!", exit 1, as
    `upload` said before it learnt to: now one line saying to pass --yes, exit 2 (walk12)."""
    result = CliRunner().invoke(
        cli, ["venue", "warn", str(cafe["out"]), "--server", "http://127.0.0.1:9", "--code", "12345678",
              "--start", "2026-12-04T08:00Z", "--end", "2026-12-04T09:00Z"],
        input="", obj={"clock": clock},
    )
    assert result.exit_code == 2, result.output
    assert "venue warn asks before sending but stdin is not a terminal: pass --yes" in result.output.splitlines()[-1]
    assert "Aborted" not in result.output


def test_upload_says_which_visits_are_too_short_to_send(tmp_path: Path, cafe: dict, clock: VirtualClock) -> None:
    """A visit under 5 minutes rounds to nothing on the 10-minute grid and is not sent; upload left it out
    of its list without a word, so the F0 could not tell a forgotten visit from one too short to matter."""
    db = str(tmp_path / "v.db")
    for start, end in (("2026-12-04T06:10:00+00:00", "2026-12-04T06:55:00+00:00"),
                       ("2026-12-04T08:01:00+00:00", "2026-12-04T08:04:00+00:00")):
        assert run(clock, "checkin", cafe["url"], "--start", start, "--end", end, "--db", db).exit_code == 0
    result = CliRunner().invoke(cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", db,
                                      "--dry-run"], obj={"clock": clock})  # a real upload would ask the server first
    assert result.exit_code == 0, result.output
    assert "checked in 1 time(s) in the last 14 days" in result.stderr and result.stderr.count("Café Hoa") == 1
    assert "(1 visit(s) under 5 minutes stay on this device: too short to place on the 10-minute grid" in result.stderr


def test_visit_errors_give_times_as_the_person_typed_them(
    tmp_path: Path, cafe: dict, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--start 2026-12-04T18:30` is read in this machine's zone, but the refusals answered in UTC ISO
    ('already checked in at Café Hoa since 2026-12-04T11:30:00+00:00'): now in the local zone, as `checkins`."""
    import time

    db = str(tmp_path / "v.db")
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    try:
        assert run(clock, "checkin", cafe["url"], "--db", db).exit_code == 0  # T0: 2026-12-04 16:00 UTC, 23:00 in Hanoi
        again = run(clock, "checkin", cafe["url"], "--db", db)
        future = run(clock, "checkin", cafe["url"], "--db", str(tmp_path / "w.db"), "--start", "2026-12-04T22:30",
                     "--end", "2026-12-05T01:00")
        warn = run(clock, "venue", "warn", str(cafe["out"]), "--server", "http://127.0.0.1:9", "--code", "12345678",
                   "--start", "2026-12-04T22:00", "--end", "2026-12-05T00:30", "--yes")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    start = dt.datetime.fromtimestamp(T0, dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m-%d %H:%M")
    assert again.exit_code == 2 and f"already checked in at Café Hoa since {start} +07 (`bluezone checkout` ends it)" in again.output
    assert future.exit_code == 2 and "the visit ends in the future (2026-12-05 01:00 +07)" in future.output, future.output
    assert warn.exit_code == 2 and "the warning ends in the future (2026-12-05 00:30 +07)" in warn.output, warn.output


def test_a_long_visit_mostly_before_the_days_sent_is_not_called_too_short(
    tmp_path: Path, cafe: dict, clock: VirtualClock
) -> None:
    """A device whose first daily key is of 1 December sends the check-ins from that day on: a visit of an
    hour that ends 3 minutes into it is not sent, as nothing before that day is.  Upload said '1 visit(s)
    under 5 minutes stay on this device', which it was not."""
    from bluezone.crypto.keys import DailyKey
    from bluezone.proximity.store import SightingStore

    db = str(tmp_path / "v.db")
    for start, end in (("2026-11-30T23:00:00+00:00", "2026-12-01T00:03:00+00:00"),
                       ("2026-12-02T06:10:00+00:00", "2026-12-02T06:55:00+00:00")):
        assert run(clock, "checkin", cafe["url"], "--start", start, "--end", end, "--db", db).exit_code == 0
    first = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()) // 600
    with SightingStore.open(db, create=False) as store:
        for day in range(3):
            store.save_daily_key(DailyKey(bytes([day + 1]) * 16, first + 144 * day))
    from bluezone.client.uploading import plan_upload

    with SightingStore.open(db, create=False) as store:
        plan = plan_upload(store, clock.now(), include_today=False)
    assert [r.visit.start for r in plan.checkins] == [dt.datetime(2026, 12, 2, 6, 10, tzinfo=dt.UTC).timestamp()]
    assert plan.checkins_too_short == 0


def test_a_code_with_an_event_past_year_9999_is_one_line_exit_2(clock: VirtualClock) -> None:
    """A check-in code made by another app may say any 64-bit time: `venue show` of one whose event
    starts in year 36812 printed the venue, then 'Error: ValueError: year 36812 is out of range' (exit 1)."""
    import base64

    from tests.venues.venue_helpers import event_payload

    payload = event_payload(2**40, 2**40 + 60)
    url = "https://e.coronawarn.app?v=1#" + base64.urlsafe_b64encode(payload).decode().rstrip("=")
    result = run(clock, "venue", "show", url)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "not a real event" in result.output, result.output


@pytest.mark.parametrize("fields", [{}, {"beacon_key": None, "beacon_seed": "00" * 32}], ids=["same fields", "renamed"])
@pytest.mark.parametrize("command", ["warn", "beacon"])
def test_a_secret_file_of_a_newer_format_is_refused_not_read_as_this_ones(
    cafe: dict, clock: VirtualClock, fields: dict, command: str
) -> None:
    """The secret file names its format (bluezone-venue-secret/1) but nothing read it: one a newer bluezone
    wrote was taken as this one's, its beacon key broadcast as if it meant the same.  Refused, one line, exit 2."""
    secret = cafe["out"] / "venue-secret.json"
    data = json.loads(secret.read_text()) | {"format": "bluezone-venue-secret/2"} | fields
    secret.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    args = (["--server", "http://127.0.0.1:9", "--code", "12345678", "--start", "2026-12-04T08:00Z",
             "--end", "2026-12-04T09:00Z", "--yes"] if command == "warn" else ["--duration", "1", "--backend", "emulated"])
    result = run(clock, "venue", command, str(cafe["out"]), *args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {secret} is in the format bluezone-venue-secret/2, newer than this bluezone reads"
        " (bluezone-venue-secret/1): upgrade bluezone"
    ]


def test_a_secret_file_of_another_format_is_no_venue_secret_and_one_without_one_is_read(cafe: dict) -> None:
    secret = cafe["out"] / "venue-secret.json"
    data = json.loads(secret.read_text())
    secret.write_text(json.dumps(data | {"format": "something-else/1"}))
    with pytest.raises(ValueError, match="not a bluezone venue secret file .its format is something-else/1.$"):
        load_venue_dir(cafe["out"])
    secret.write_text(json.dumps({k: v for k, v in data.items() if k != "format"}))  # as the first format
    assert load_venue_dir(cafe["out"]).venue.url == cafe["url"]
