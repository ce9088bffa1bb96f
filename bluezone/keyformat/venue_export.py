"""Published venue warnings: a signed zip beside the GAEN key batches in the same ``index.txt``.

Same container and signature as a key batch (``export.bin`` + ``export.sig``, ECDSA P-256 over
``export.bin``, the server's one signing key), so clients verify both with the key they pinned.
``export.bin`` is the 16-byte header ``BZ Venues v1`` (space padded) and CWA's
``TraceWarningPackage`` with ``CheckInProtectedReport``s only; real reports and the server's fake
ones are shuffled together.  The file name says what it is: ``<stamp>-venues-<tag>.zip``.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence

from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError

import bluezone.keyformat.presence_pb2 as pb
from bluezone.errors import KeyFileError, VenueError
from bluezone.keyformat.export import SignatureInfo, read_signed_export_zip, sign_export, write_export_zip
from bluezone.keyformat.exportstream import VENUE_HEADER
from bluezone.keyformat.venue_reports import ProtectedReport

#: How a venue-warning file is named in ``index.txt`` (key batches never contain "-venues-").
VENUE_FILE = re.compile(r"^[0-9]+-venues-[A-Za-z0-9]+(-[0-9]+)?\.zip$")
#: A batch holds at most this many reports (about 150 bytes each: 15 MB).
MAX_REPORTS_PER_FILE = 100_000


def is_venue_file(name: str) -> bool:
    """Whether an index entry names a venue-warning file (not a key batch)."""
    return VENUE_FILE.fullmatch(name) is not None


def build_venue_bin(reports: Sequence[ProtectedReport], region: str, hour: int) -> bytes:
    """The venue-warning file for one hour: header + TraceWarningPackage of ``reports``."""
    package = pb.TraceWarningPackage(interval_number=hour, region=region)
    package.check_in_protected_reports.extend(r.to_message() for r in reports)
    return VENUE_HEADER + package.SerializeToString(deterministic=True)


def read_venue_bin(data: bytes, naming: Container[bytes] | None = None) -> list[ProtectedReport]:
    """The reports of a venue ``export.bin``; a report of the wrong shape is skipped, not fatal.

    Given ``naming`` (location-id hashes), only the reports that name one of them: a device can open only its
    own venues' reports, and a country's files held as objects took ~365 MiB a million reports."""
    if not data.startswith(VENUE_HEADER):
        raise KeyFileError(f"venue export.bin must start with the header {VENUE_HEADER!r}")
    package = pb.TraceWarningPackage()
    try:
        package.ParseFromString(data[len(VENUE_HEADER) :])
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise KeyFileError(f"venue export.bin is not a TraceWarningPackage: {exc}") from None
    reports = []
    for message in package.check_in_protected_reports:
        if naming is not None and message.location_id_hash not in naming:
            continue
        try:
            reports.append(ProtectedReport.from_message(message))
        except VenueError:
            continue
    return reports


def signed_venue_zip(
    reports: Sequence[ProtectedReport], private_key: ec.EllipticCurvePrivateKey, info: SignatureInfo, region: str, hour: int
) -> bytes:
    """A venue-warning file signed as a GAEN export is, in the same zip layout."""
    export_bin = build_venue_bin(reports, region, hour)
    return write_export_zip(export_bin, sign_export(export_bin, private_key, info))


def open_signed_venue_zip(
    data: bytes, public_key: ec.EllipticCurvePublicKey, key_id: str | None = None, naming: Container[bytes] | None = None
) -> list[ProtectedReport]:
    """The reports of a venue-warning zip (those ``naming`` one of these hashes, if given), only if its signature
    verifies against the pinned key."""
    export_bin, _ = read_signed_export_zip(data, public_key, key_id)  # verified before it is held
    return read_venue_bin(export_bin, naming)
