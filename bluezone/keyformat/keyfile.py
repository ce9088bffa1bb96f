"""Diagnosis key files: the keys of people who reported a positive test.

In memory the keys are a numpy structured array (``KEY_DTYPE``, ``bluezone.keyformat.keys``),
one row per daily key.  On disk the JSON form follows the GAEN publish API
(exposure-notifications-server ``v1/publish``)::

    {"temporaryExposureKeys": [{"key": "<base64, 16 bytes>", "rollingStartNumber": 2650000,
                                "rollingPeriod": 144, "transmissionRisk": 0}]}

``publish_body`` writes the same keys as a whole ``/v1/publish`` request (code, padding).

``load_keys`` also reads GAEN export files (``export.bin`` with the ``EK Export v1``
header, or the ``.zip`` holding it), through ``bluezone.keyformat.export``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bluezone.crypto.intervals import ROLLING_PERIOD
from bluezone.crypto.keys import KEY_LENGTH
from bluezone.errors import ExportSignatureError, KeyFileError
from bluezone.keyformat.export import EXPORT_HEADER, open_export, parse_export_bin, parse_export_zip
from bluezone.keyformat.exportstream import KeySink
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.keyformat.keys import (
    MAX_DAYS_SINCE_ONSET,
    MAX_JSON_VALUES,
    MAX_KEY_FILE_BYTES,
    MAX_REPORT_TYPE,
    MAX_TRANSMISSION_RISK,
    NO_DAYS_SINCE_ONSET,
    empty_keys,
    json_values,
)

ZIP_MAGIC = b"PK\x03\x04"

_INT32_MAX = np.iinfo(np.int32).max


# --- JSON ---------------------------------------------------------------------------------


def _int_field(entry: dict[str, Any], name: str, where: str, required: bool, default: int) -> int:
    if name not in entry:
        if required:
            raise KeyFileError(f"{where}: missing field {name!r}")
        return default
    value = entry[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeyFileError(f"{where}: {name!r} must be an integer, got {type(value).__name__}")
    return value


def _parse_entry(entry: Any, where: str) -> tuple[bytes, int, int, int, int, int]:
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where}: must be an object, got {type(entry).__name__}")
    if "key" not in entry:
        raise KeyFileError(f"{where}: missing field 'key'")
    raw = entry["key"]
    if not isinstance(raw, str):
        raise KeyFileError(f"{where}: 'key' must be a base64 string, got {type(raw).__name__}")
    try:
        key = base64.b64decode(raw.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise KeyFileError(f"{where}: 'key' is not valid base64") from None
    if len(key) != KEY_LENGTH:
        raise KeyFileError(f"{where}: 'key' must decode to {KEY_LENGTH} bytes, got {len(key)}")
    start = _int_field(entry, "rollingStartNumber", where, True, 0)
    if not 0 <= start <= _INT32_MAX:
        raise KeyFileError(f"{where}: 'rollingStartNumber' must be 0-{_INT32_MAX}, got {start}")
    period = _int_field(entry, "rollingPeriod", where, True, ROLLING_PERIOD)
    if not 0 <= period <= ROLLING_PERIOD:
        raise KeyFileError(f"{where}: 'rollingPeriod' must be 0-{ROLLING_PERIOD}, got {period}")
    if period == 0:  # as Google does: an unset period means a whole day
        period = ROLLING_PERIOD
    if start + period > _INT32_MAX:
        raise KeyFileError(f"{where}: 'rollingStartNumber' + 'rollingPeriod' overflows")
    risk = _int_field(entry, "transmissionRisk", where, False, 0)
    if not 0 <= risk <= MAX_TRANSMISSION_RISK:
        raise KeyFileError(f"{where}: 'transmissionRisk' must be 0-{MAX_TRANSMISSION_RISK}, got {risk}")
    report = _int_field(entry, "reportType", where, False, 0)
    if not 0 <= report <= MAX_REPORT_TYPE:
        raise KeyFileError(f"{where}: 'reportType' must be 0-{MAX_REPORT_TYPE}, got {report}")
    dsos = _int_field(entry, "daysSinceOnsetOfSymptoms", where, False, NO_DAYS_SINCE_ONSET)
    if dsos != NO_DAYS_SINCE_ONSET and not -MAX_DAYS_SINCE_ONSET <= dsos <= MAX_DAYS_SINCE_ONSET:
        raise KeyFileError(
            f"{where}: 'daysSinceOnsetOfSymptoms' must be {-MAX_DAYS_SINCE_ONSET}-{MAX_DAYS_SINCE_ONSET}, got {dsos}"
        )
    return key, start, period, risk, report, dsos


def parse_keys_json(data: bytes | str) -> np.ndarray:
    """Diagnosis keys from GAEN publish-API JSON; any defect raises KeyFileError naming the entry."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    if (values := json_values(data)) > MAX_JSON_VALUES:
        raise KeyFileError(
            f"key file holds too many JSON values (~{values:,}, limit {MAX_JSON_VALUES:,}): "
            "more keys than the largest real day, which come as an export .zip"
        )
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KeyFileError(f"key file is not valid JSON: {msg}") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"key file must be a JSON object, got {type(doc).__name__}")
    if "temporaryExposureKeys" not in doc:
        raise KeyFileError("key file has no 'temporaryExposureKeys' list")
    entries = doc["temporaryExposureKeys"]
    if not isinstance(entries, list):
        raise KeyFileError(f"'temporaryExposureKeys' must be a list, got {type(entries).__name__}")
    keys = empty_keys(len(entries))
    for i, entry in enumerate(entries):
        keys[i] = _parse_entry(entry, f"temporaryExposureKeys[{i}]")
    return keys


def dump_keys_json(keys: np.ndarray) -> bytes:
    """GAEN publish-API JSON for ``keys`` (optional fields only when set)."""
    out = []
    for row in keys:
        entry: dict[str, Any] = {
            "key": base64.b64encode(row["key"].tobytes()).decode("ascii"),
            "rollingStartNumber": int(row["rolling_start"]),
            "rollingPeriod": int(row["rolling_period"]),
            "transmissionRisk": int(row["transmission_risk"]),
        }
        if row["report_type"]:
            entry["reportType"] = int(row["report_type"])
        if row["days_since_onset"] != NO_DAYS_SINCE_ONSET:
            entry["daysSinceOnsetOfSymptoms"] = int(row["days_since_onset"])
        out.append(entry)
    return (json.dumps({"temporaryExposureKeys": out}, indent=1) + "\n").encode()


def publish_body(
    keys: np.ndarray, code: str, symptom_onset_interval: int | None = None, revision_token: str | None = None,
    checkins: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``/v1/publish`` JSON, padded with random bytes so its size says little."""
    body: dict[str, Any] = {
        "temporaryExposureKeys": [
            {
                "key": base64.b64encode(bytes(k["key"])).decode("ascii"),
                "rollingStartNumber": int(k["rolling_start"]),
                "rollingPeriod": int(k["rolling_period"]),
                "transmissionRisk": int(k["transmission_risk"]),
            }
            for k in keys
        ],
        "verificationPayload": code,
        "padding": base64.b64encode(secrets.token_bytes(secrets.randbelow(512) + 64)).decode("ascii"),
    }
    if symptom_onset_interval is not None:
        body["symptomOnsetInterval"] = symptom_onset_interval
    if revision_token is not None:
        body["revisionToken"] = revision_token
    if checkins:
        body["checkInProtectedReports"] = list(checkins)  # {"day", "report"}: bluezone/venues/upload.py
    return body


def write_keys_json(keys: np.ndarray, path: str | Path) -> None:
    """Write ``keys`` as publish-API JSON to a file only its owner can read."""
    write_private(path, dump_keys_json(keys))


def _foreign_fifo(fd: int, path: str | Path) -> bool:
    """Whether ``fd`` is a named FIFO another user owns: planted at --out in a shared folder, its owner
    reading it, it took the keys (exit 0).  A pipe (``>(gpg -e)``, /dev/stdout) has no name of its own
    to resolve to, so ``sudo ... --out >(gpg -e)`` still writes into its user's pipe."""
    opened = os.fstat(fd)
    if not stat.S_ISFIFO(opened.st_mode) or opened.st_uid == os.geteuid():
        return False
    try:
        named = os.lstat(os.path.realpath(path))
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _not_writable(path: str | Path) -> str:
    """Why opening ``path`` for writing gave ENXIO, as an error says it."""
    from bluezone.readfile import file_kind

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return os.strerror(errno.ENXIO)
    return "a FIFO (named pipe) nobody reads from" if stat.S_ISFIFO(mode) else f"{file_kind(mode)}, not a file or a pipe"


def write_private(path: str | Path, data: bytes, *, new: bool = False) -> None:
    """Write ``data`` to a file only its owner can read: daily keys reveal every RPI the device sent.

    ``new``: refuse (FileExistsError) a file already there, for what cannot be written twice; one that
    cannot be written whole (a full disk) is removed, so the retry is not refused for it.  Otherwise a file
    (or none) is replaced whole (``writefile``; a link of this user's: the file it names; another user's
    is refused, ``writefile.link_target``): a write that fails
    leaves the old file as it was, where truncating it first left a full disk's export empty or cut short.
    Anything else there (a terminal, a pipe: /dev/stdout, ``>(gpg -e)``) is written into as it is; a FIFO
    nobody reads is refused (OSError ENXIO) rather than waited on for ever (one planted in a shared folder)."""
    if not new:
        try:
            there = os.stat(path)
        except FileNotFoundError:
            there = None
        if there is None or stat.S_ISREG(there.st_mode):
            from bluezone.writefile import link_target, write_file

            write_file(link_target(Path(path)), data, 0o600)
            return
    try:
        # not blocking: opening a FIFO for writing waited for a reader for ever
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_EXCL if new else os.O_TRUNC), 0o600)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads from, a Unix socket (it was called such a FIFO)
            raise OSError(errno.ENXIO, _not_writable(path)) from None
        raise
    if _foreign_fifo(fd, path):  # (not new: O_EXCL made the file)
        os.close(fd)
        raise OSError(errno.EPERM, "a FIFO (named pipe) of another user's: whoever reads it would get the keys")
    os.set_blocking(fd, True)  # a reader (``>(gpg -e)``) may be slower than the writes
    try:
        with os.fdopen(fd, "wb") as f:
            regular = stat.S_ISREG(os.fstat(f.fileno()).st_mode)
            if regular:  # a device's mode is everybody's: /dev/null made 0600
                os.fchmod(f.fileno(), 0o600)  # the mode above is filtered by the umask, and an old file keeps its own
            f.write(data)
            if regular:  # on the disk, name and all, before the caller says it wrote it (as ``write_file`` does)
                f.flush()
                os.fsync(f.fileno())
        if regular and new:
            from bluezone.writefile import sync_directory

            sync_directory(Path(path).parent)
    except BaseException:
        if new:  # created above, so ours: half an F0 list would pass for the one to hand over
            os.unlink(path)
        raise


# --- any format ---------------------------------------------------------------------------


def sniff_key_format(data: bytes) -> str:
    """"json", "zip" (GAEN export archive) or "export" (a bare export.bin)."""
    if data.startswith(ZIP_MAGIC):
        return "zip"
    if data.startswith(EXPORT_HEADER.rstrip()):
        return "export"
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{") or head.startswith(b"["):
        return "json"
    raise KeyFileError("not a key file: expected GAEN JSON, an export.bin or an export .zip")


def parse_keys(data: bytes) -> np.ndarray:
    """Diagnosis keys from the bytes of any supported key file, dispatched on content."""
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file too large ({len(data)} bytes, limit {MAX_KEY_FILE_BYTES})")
    kind = sniff_key_format(data)
    if kind == "json":
        return parse_keys_json(data)
    if kind == "zip":
        return parse_export_zip(data)
    return parse_export_bin(data)


def load_keys(path: str | Path) -> np.ndarray:
    """Diagnosis keys from a file (JSON, export.bin or export .zip); errors are KeyFileError.

    An export is streamed (``export.open_export``): memory holds its keys, not the file."""
    keys, _ = _load(Path(path))
    return keys


def load_signed_keys(path: str | Path, public_key: ec.EllipticCurvePublicKey, key_id: str | None = None) -> np.ndarray:
    """Diagnosis keys of a signed export zip, only if its signature verifies with ``public_key``
    (``check --keys FILE --server-key K``): with a key given, a missing, broken or foreign
    signature, or a file that carries none (JSON, a bare export.bin), is ExportSignatureError."""
    keys, _ = _load(Path(path), public_key, key_id)
    return keys


def stream_keys(
    path: str | Path, sink: KeySink, public_key: ec.EllipticCurvePublicKey | None = None, key_id: str | None = None
) -> np.ndarray:
    """Hand the keys of a key file to ``sink`` as they are read, and return its revised keys
    (``load_keys`` is ``apply_revisions`` of the two): an export's keys are never all in memory.
    Errors as ``load_keys`` (``load_signed_keys`` with ``public_key``), raised once the whole file
    is read: only then is it known to be good (and signed), so until then the keys are tentative."""
    return _load(Path(path), public_key, key_id, sink)[0]


def _load(
    path: Path,
    public_key: ec.EllipticCurvePublicKey | None = None,
    key_id: str | None = None,
    sink: KeySink | None = None,
) -> tuple[np.ndarray, str]:
    """(keys, format) of the key file at ``path``; every error names the file.  With ``sink`` the
    keys (revisions not applied) go to it, and the keys returned are the revised ones."""
    from bluezone.readfile import open_regular_file

    # a FIFO or /dev/zero behind the name is refused at once; the cap holds whatever st_size says
    with open_regular_file(path, MAX_KEY_FILE_BYTES, "key file", KeyFileError) as file:
        try:
            kind = sniff_key_format(file.read(64))
            if public_key is not None and kind != "zip":
                raise ExportSignatureError(
                    f"a {'JSON key file' if kind == 'json' else 'bare export.bin'} carries no signature, and "
                    "--server-key verifies signed export .zip files only (leave --server-key out to match it unverified)"
                )
            file.seek(0)
            if kind == "json":
                keys = parse_keys_json(file.read(MAX_KEY_FILE_BYTES + 1))
                if sink is None:
                    return keys, kind
                sink.add(keys)
                return empty_keys(0), kind
            export, _ = open_export(file, public_key, key_id, sink)
            return (export.current_keys() if sink is None else export.revised_keys), kind
        except KeyFileError as exc:
            raise type(exc)(f"{path}: {exc}") from None
