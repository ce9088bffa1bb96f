"""A venue owner's directory: the public poster files and the venue's secrets (0600).

``venue create`` writes, in ``DIR``:

* ``venue.json``: the public facts (name, address, type, URL, location id) for the owner's records;
* ``poster.png``, ``poster.svg``: the printable check-in poster;
* ``venue-secret.json`` (mode 0600): the QR payload and the beacon key.  The beacon key lets
  ``venue beacon`` broadcast rotating tokens; with the payload it lets the owner ask the health
  authority to warn visitors of a time window (``venue warn``).  Keep it off shared drives.

Everything is rendered before the first file is written, and a directory that already holds a
venue's secrets is never overwritten, so a failed or repeated ``create`` leaves nothing half-made.
``venue poster`` draws the two poster files again from the stored venue (a lost or spoilt print).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluezone.errors import VenueError
from bluezone.printable import printable_line
from bluezone.venues.location import Venue

SECRET_FILE = "venue-secret.json"
#: The secret file's format, written in it since the first release; another version of it is a newer bluezone's.
SECRET_FORMAT = "bluezone-venue-secret/1"
#: A secret file is a few hundred bytes (the QR payload and the beacon key).
MAX_SECRET_FILE_BYTES = 64 * 1024
PUBLIC_FILE = "venue.json"
POSTER_PNG = "poster.png"
POSTER_SVG = "poster.svg"
BEACON_KEY_BYTES = 32


@dataclass(frozen=True)
class VenueSecrets:
    """What only the venue owner holds: the venue (with its payload) and the beacon key."""

    venue: Venue
    beacon_key: bytes

    def as_json(self) -> str:
        return json.dumps(
            {
                "format": SECRET_FORMAT,
                "payload": base64.urlsafe_b64encode(self.venue.payload).decode("ascii"),
                "beacon_key": self.beacon_key.hex(),
            },
            indent=2,
        ) + "\n"


def _write_files(out: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Write each ``name: (bytes, mode)`` in ``out`` whole (``writefile``: every file on the disk before
    the first rename, never through a link or FIFO planted in a shared folder): a failed write leaves
    nothing half-made, and an older file it was to replace stays."""
    from bluezone.writefile import write_files

    try:
        _make_dirs(out)
        write_files(out, files)
    except OSError as exc:
        raise VenueError(f"cannot write the venue's files to {out}: {exc.strerror or exc}") from None


def _make_dirs(out: Path) -> None:
    """``out`` and its missing parents, writable by the owner alone whatever the umask (at most 0755): under a umask of
    0 they were 0777, and another user could put their own venue-secret.json in place of the owner's.  A directory
    already there keeps its mode."""
    missing = []
    while not out.exists() and out != out.parent:
        missing.append(out)
        out = out.parent
    for d in reversed(missing):
        d.mkdir(mode=0o755, exist_ok=True)  # (filtered by the umask too: 077 makes it 0700)


def _poster_files(venue: Venue) -> dict[str, tuple[bytes, int]]:
    """The poster as ``create`` and ``poster`` write it, rendered whole before any file is written."""
    from bluezone.venues.poster import poster_png, poster_svg

    return {POSTER_PNG: (poster_png(venue), 0o644), POSTER_SVG: (poster_svg(venue).encode("utf-8"), 0o644)}


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise VenueError(f"--out {out} is a file, not a directory")


def create_venue_dir(out: Path, venue: Venue, beacon_key: bytes | None = None) -> dict[str, Any]:
    """Write the venue's files to ``out``; returns ``venue.as_dict()`` plus the file paths."""
    out = Path(out)
    _check_out_dir(out)
    if (out / SECRET_FILE).exists():
        raise VenueError(f"{out} already holds a venue ({SECRET_FILE}); choose another directory")
    secrets = VenueSecrets(venue, os.urandom(BEACON_KEY_BYTES) if beacon_key is None else bytes(beacon_key))
    public = {**venue.as_dict(), "poster_png": POSTER_PNG, "poster_svg": POSTER_SVG}
    _write_files(out, {
        **_poster_files(venue),
        PUBLIC_FILE: ((json.dumps(public, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), 0o644),
        SECRET_FILE: (secrets.as_json().encode("ascii"), 0o600),
    })
    return {**public, "dir": str(out), "secret_file": str(out / SECRET_FILE)}


def load_venue_dir(path: Path) -> VenueSecrets:
    """Read a venue directory's secrets (``path`` may be the directory or the secret file)."""
    from bluezone.readfile import read_regular_file

    path = Path(path)
    file = path / SECRET_FILE if path.is_dir() else path
    if not file.exists() and not file.is_symlink():
        raise VenueError(f"{file} not found: give the directory `bluezone venue create --out` made")
    # not read_text: a FIFO named here hung `venue beacon`/`venue warn` for ever, /dev/zero filled the memory
    raw = read_regular_file(file, MAX_SECRET_FILE_BYTES, "venue secret file", VenueError)
    refused = None
    try:
        data = json.loads(raw.decode("utf-8"))
        refused = _format_refused(file, data)
        payload = base64.urlsafe_b64decode(data["payload"])
        beacon_key = bytes.fromhex(data["beacon_key"])
    except FileNotFoundError:
        raise VenueError(f"{file} not found: give the directory `bluezone venue create --out` made") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
        if refused is not None:  # (another format may name its fields otherwise)
            raise VenueError(refused) from None
        if file.name != SECRET_FILE:  # e.g. the public venue.json beside the secrets
            raise VenueError(
                f"{file} is not a bluezone venue secret file: give the directory `bluezone venue create --out` "
                f"made (it holds {SECRET_FILE})"
            ) from None
        raise VenueError(f"{file} is not a bluezone venue secret file ({type(exc).__name__})") from None
    if refused is not None:
        raise VenueError(refused)
    if len(beacon_key) != BEACON_KEY_BYTES:
        raise VenueError(f"{file}: the beacon key has {len(beacon_key)} bytes, not {BEACON_KEY_BYTES}")
    return VenueSecrets(Venue.from_payload(payload), beacon_key)


def _format_refused(file: Path, data: object) -> str | None:
    """Why a secret file of another format is refused (None: it is this one's).  One a newer bluezone wrote (its key
    or payload may mean something else there) was read as this one's without a word.  A file without the field is
    read as the first format."""
    found = data.get("format", SECRET_FORMAT) if isinstance(data, dict) else SECRET_FORMAT
    if found == SECRET_FORMAT:
        return None
    if isinstance(found, str) and found.startswith(SECRET_FORMAT.split("/")[0] + "/"):
        return (f"{file} is in the format {printable_line(found)}, newer than this bluezone reads ({SECRET_FORMAT}):"
                " upgrade bluezone")
    return f"{file} is not a bluezone venue secret file (its format is {printable_line(str(found))})"


def load_venue(path: Path) -> Venue:
    """The venue stored at ``path``: the directory ``create`` made, its secret file or its public
    ``venue.json`` (a poster needs only the public facts, so a copy of venue.json alone redraws it)."""
    from bluezone.readfile import read_regular_file

    path = Path(path)
    if path.is_dir():
        secret = path / SECRET_FILE
        path = secret if secret.exists() or secret.is_symlink() else path / PUBLIC_FILE
    if not path.exists() and not path.is_symlink():
        raise VenueError(f"{path} not found: give the directory `bluezone venue create --out` made, or its {PUBLIC_FILE}")
    raw = read_regular_file(path, MAX_SECRET_FILE_BYTES, "venue file", VenueError)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VenueError(f"{path} is not a bluezone venue file (not JSON: {type(exc).__name__})") from None
    if isinstance(data, dict) and "beacon_key" in data:
        return load_venue_dir(path).venue
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise VenueError(f"{path} is not a bluezone venue file (no check-in URL in it): give the directory"
                         " `bluezone venue create --out` made")
    try:
        return Venue.from_url(data["url"])
    except VenueError as exc:
        raise VenueError(f"{path}: {exc}") from None


def write_poster(out: Path, venue: Venue, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Draw the venue's poster (PNG, SVG) again in ``out``, as ``create`` drew it: its code reads as
    the URL ``create`` printed.  Returns (files drawn, files kept).  A file already there is kept unless
    ``force`` (a printed poster's only copy, or the owner's own edit, may be the file), and the lost
    one drawn beside it; with both there it refuses."""
    out = Path(out)
    _check_out_dir(out)
    files = _poster_files(venue)
    there = [out / name for name in files if (out / name).exists() or (out / name).is_symlink()]
    if len(there) == len(files) and not force:
        raise VenueError(f"{there[0]} already exists: give --force to draw over it, or --out another directory")
    kept = [] if force else there
    _write_files(out, {name: made for name, made in files.items() if out / name not in kept})
    return [out / name for name in files if out / name not in kept], kept
